import { useEffect, useRef, useState } from 'react';

import { eventDateTime, seatIdName } from '../../shared/format';
import { describeError } from '../../shared/http';
import { currentCustomer, onIdentityChange, signOut } from '../../shared/identity';
import type { Order } from '../../shared/types';
import { api } from '../api';
import { Feedback } from '../components/Feedback';
import { keptOrders } from '../orders';
import { href } from '../router';

/** What an order's line says of its event: the name, and the zone its times are shown in. */
interface EventFacts {
  name: string;
  timezone?: string;
}

/** Names and zones of the orders' events: from the kept orders, then the public event list. */
async function eventFacts(orders: Order[]): Promise<Map<number, EventFacts>> {
  const facts = new Map<number, EventFacts>(keptOrders().map((o) => [o.event_id, { name: o.event_name, timezone: o.timezone }]));
  if (orders.some((o) => facts.get(o.event_id)?.timezone === undefined)) {
    try {
      for (const e of await api.events()) facts.set(e.id, { name: e.name, timezone: e.timezone });
    } catch {
      // a nicety: "Event 7" and the browser's zone (named) will do
    }
  }
  return facts;
}

/** The user's orders: bought in this browser and, signed in by e-mail, every order bought for
 *  the address on any device. */
export function MyTickets() {
  const [customer, setCustomer] = useState(currentCustomer);
  const [orders, setOrders] = useState<Order[] | null>(null);
  const [events, setEvents] = useState<Map<number, EventFacts>>(new Map());
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => onIdentityChange(() => setCustomer(currentCustomer())), []);

  useEffect(() => {
    let current = true;
    setOrders(null);
    api.myOrders().then(
      async (found) => {
        const facts = await eventFacts(found);
        if (!current) return;
        setEvents(facts);
        setOrders(found);
      },
      (e: unknown) => current && setError(describeError(e)),
    );
    return () => {
      current = false;
    };
  }, [customer?.token]);

  // Signing out everywhere ends every device's sign-in: it asks first, and sits apart from the
  // plain "Sign out" so a slip of the thumb does neither.
  const [confirming, setConfirming] = useState(false);
  const everywhereButton = useRef<HTMLButtonElement>(null);
  const keep = () => {
    setConfirming(false);
    everywhereButton.current?.focus();
  };

  const everywhere = async () => {
    if (!customer) return;
    setConfirming(false);
    setBusy(true);
    try {
      await api.signOutEverywhere(customer.token);
      signOut();
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <h1 className="page-title">My tickets</h1>
      <div className="card identity" data-testid="identity">
        {customer ? (
          <>
            <p>
              Signed in as <strong data-testid="signed-in-email">{customer.email}</strong>.
            </p>
            <div className="identity__actions">
              <button type="button" className="button button--small" onClick={signOut} data-testid="sign-out">
                Sign out
              </button>
              <button
                type="button"
                ref={everywhereButton}
                className="button button--small button--ghost"
                onClick={() => setConfirming(true)}
                disabled={busy}
                data-testid="sign-out-everywhere"
              >
                Sign out on every device…
              </button>
            </div>
            {confirming && (
              <div
                className="message message--notice identity__confirm"
                role="alertdialog"
                aria-label="Sign out on every device?"
                aria-describedby="sign-out-everywhere-text"
                data-testid="confirm-sign-out-everywhere"
                onKeyDown={(e) => {
                  if (e.key === 'Escape') keep();
                }}
              >
                <span id="sign-out-everywhere-text">
                  Sign out on every device? Every phone and computer signed in as {customer.email}, this one too, has to sign in again to see these orders.
                </span>
                <span className="identity__confirm-buttons">
                  <button type="button" className="button button--small button--primary" onClick={() => void everywhere()} data-testid="confirm-sign-out-everywhere-yes">
                    Yes, sign out everywhere
                  </button>
                  <button type="button" className="button button--small button--ghost" onClick={keep} autoFocus>
                    Stay signed in
                  </button>
                </span>
              </div>
            )}
          </>
        ) : (
          <p>
            Bought tickets on another device? <a href={href.signin()} data-testid="sign-in-link">Sign in with your e-mail</a> to see every order bought for it.
          </p>
        )}
      </div>
      <Feedback error={error} />
      {!orders && !error && <p className="muted">Loading your orders…</p>}
      {orders && orders.length === 0 && (
        <div className="card">
          <p>
            No tickets yet. <a href={href.events()}>Find an event</a>.
          </p>
        </div>
      )}
      {orders && orders.length > 0 && (
        <ul className="order-list" data-testid="order-list">
          {orders.map((o) => (
            <li key={o.order_id}>
              <a className="card order-link" href={href.order(o.order_id)} data-testid={`order-${o.order_id}`}>
                <strong>{events.get(o.event_id)?.name ?? `Event ${o.event_id}`}</strong>
                {o.status === 'cancelled' && <span className="badge badge--off">cancelled</span>}
                <span className="muted">
                  {o.tickets.length} ticket{o.tickets.length === 1 ? '' : 's'}: {o.tickets.map((t) => seatIdName(t.seat_id)).join(', ')}
                </span>
                <span className="muted small">bought {eventDateTime(o.created_at, events.get(o.event_id))}</span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
