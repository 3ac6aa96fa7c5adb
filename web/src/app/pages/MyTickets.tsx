import { useEffect, useState } from 'react';

import { dateTime, seatIdName } from '../../shared/format';
import { describeError } from '../../shared/http';
import { currentCustomer, onIdentityChange, signOut } from '../../shared/identity';
import type { Order } from '../../shared/types';
import { api } from '../api';
import { Feedback } from '../components/Feedback';
import { keptOrders } from '../orders';
import { href } from '../router';

/** Event names for orders: from the kept orders, then the public event list. */
async function eventNames(orders: Order[]): Promise<Map<number, string>> {
  const names = new Map(keptOrders().map((o) => [o.event_id, o.event_name]));
  if (orders.some((o) => !names.has(o.event_id))) {
    try {
      for (const e of await api.events()) names.set(e.id, e.name);
    } catch {
      // names are a nicety: "Event 7" will do
    }
  }
  return names;
}

/** The user's orders: bought in this browser and, signed in by e-mail, every order bought for
 *  the address on any device. */
export function MyTickets() {
  const [customer, setCustomer] = useState(currentCustomer);
  const [orders, setOrders] = useState<Order[] | null>(null);
  const [names, setNames] = useState<Map<number, string>>(new Map());
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => onIdentityChange(() => setCustomer(currentCustomer())), []);

  useEffect(() => {
    let current = true;
    setOrders(null);
    api.myOrders().then(
      async (found) => {
        const named = await eventNames(found);
        if (!current) return;
        setNames(named);
        setOrders(found);
      },
      (e: unknown) => current && setError(describeError(e)),
    );
    return () => {
      current = false;
    };
  }, [customer?.token]);

  const everywhere = async () => {
    if (!customer) return;
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
          <p>
            Signed in as <strong data-testid="signed-in-email">{customer.email}</strong>.{' '}
            <button type="button" className="link-button" onClick={signOut} data-testid="sign-out">
              Sign out
            </button>{' '}
            ·{' '}
            <button type="button" className="link-button" onClick={() => void everywhere()} disabled={busy}>
              Sign out on every device
            </button>
          </p>
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
                <strong>{names.get(o.event_id) ?? `Event ${o.event_id}`}</strong>
                {o.status === 'cancelled' && <span className="badge badge--off">cancelled</span>}
                <span className="muted">
                  {o.tickets.length} ticket{o.tickets.length === 1 ? '' : 's'}: {o.tickets.map((t) => seatIdName(t.seat_id)).join(', ')}
                </span>
                <span className="muted small">bought {dateTime(o.created_at)}</span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
