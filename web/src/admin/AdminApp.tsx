import { useEffect } from 'react';

import { BroadcastForm } from './components/BroadcastForm';
import { CheckinPanel } from './components/CheckinPanel';
import { CreateEventForm } from './components/CreateEventForm';
import { EventsPanel } from './components/EventsPanel';
import { Login } from './components/Login';
import { OrderDesk } from './components/OrderDesk';
import { type Panel, PanelNav } from './components/PanelNav';
import { StatsPanel } from './components/StatsPanel';
import { WebhooksPanel } from './components/WebhooksPanel';
import { keptToken, useSession } from './session';
import { pollStats } from './stats';

/** The panels in the order of the page (one column on a phone and a tablet: the side column's
 *  last); the webhooks and check-in panels need the token itself. */
function panels(withToken: boolean): Panel[] {
  return [
    { id: 'stats', label: 'Statistics' },
    { id: 'events', label: 'Events' },
    { id: 'order-desk', label: 'Order desk' },
    { id: 'new-event', label: 'New event' },
    ...(withToken ? [{ id: 'webhooks', label: 'Webhooks' }] : []),
    { id: 'broadcast', label: 'Broadcast' },
    ...(withToken ? [{ id: 'door-checkin', label: 'Door check-in' }] : []),
  ];
}

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

  // Opened at a panel's address (/admin#door-checkin, a bookmark on the door phone): the panels
  // appear only once signed in, after the browser looked for the fragment, so go there now.
  useEffect(() => {
    if (!api) return;
    const id = window.location.hash.slice(1);
    if (id && panels(true).some((p) => p.id === id)) document.getElementById(id)?.scrollIntoView();
  }, [api]);

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
            {/* One column (≤ 1000 px): the list of panels stands in for the Webhooks link. */}
            {api && (
              <a href="#webhooks" className="admin-topnav--wide">
                Webhooks
              </a>
            )}
            {api && (
              <a href="#panels" className="admin-topnav--narrow">
                Panels
              </a>
            )}
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
          <>
            {/* The panels' headings are h2s: this is the page's h1, for those who move by headings. */}
            <h1 className="visually-hidden">Admin console</h1>
            <PanelNav panels={panels(token !== null)} />
            <div className="admin-grid">
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
          </>
        )}
      </main>
    </>
  );
}
