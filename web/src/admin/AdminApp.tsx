import { useEffect } from 'react';

import { BroadcastForm } from './components/BroadcastForm';
import { CheckinPanel } from './components/CheckinPanel';
import { CreateEventForm } from './components/CreateEventForm';
import { EventsPanel } from './components/EventsPanel';
import { Login } from './components/Login';
import { OrderDesk } from './components/OrderDesk';
import { StatsPanel } from './components/StatsPanel';
import { WebhooksPanel } from './components/WebhooksPanel';
import { keptToken, useSession } from './session';
import { pollStats } from './stats';

export function AdminApp() {
  const api = useSession((s) => s.api);
  const logout = useSession((s) => s.logout);
  const token = useSession((s) => s.token);

  // A token kept from an earlier visit is checked once at start.
  useEffect(() => {
    const kept = keptToken();
    if (kept && !useSession.getState().api) void useSession.getState().login(kept);
  }, []);

  useEffect(() => (api ? pollStats(api) : undefined), [api]);

  return (
    <>
      <header className="topbar topbar--admin">
        <div className="topbar__inner">
          <a className="brand" href="/admin">
            <span className="brand__mark" aria-hidden="true">♪</span> Concert-Hub <span className="brand__tag">Admin</span>
          </a>
          <nav className="topnav" aria-label="Main">
            <a href="/">Audience site</a>
            <a href="/api/docs">API docs</a>
            {api && <a href="#webhooks">Webhooks</a>}
          </nav>
          {api && (
            <button type="button" className="button button--small button--ghost-dark" onClick={logout} data-testid="admin-logout">
              Sign out
            </button>
          )}
        </div>
      </header>
      <main className="container">
        {!api ? (
          <Login />
        ) : (
          <div className="admin-grid">
            {/* The panels' headings are h2s: this is the page's h1, for those who move by headings
                (absolutely placed, it takes no cell of the grid). */}
            <h1 className="visually-hidden">Admin console</h1>
            <div className="admin-grid__main">
              <StatsPanel />
              <EventsPanel api={api} />
              <OrderDesk api={api} />
              <CreateEventForm api={api} />
              {token && <WebhooksPanel token={token} />}
            </div>
            <div className="admin-grid__side">
              <BroadcastForm api={api} />
              {token && <CheckinPanel api={api} token={token} />}
            </div>
          </div>
        )}
      </main>
    </>
  );
}
