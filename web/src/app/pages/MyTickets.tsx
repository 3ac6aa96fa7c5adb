import { dateTime, seatIdName } from '../../shared/format';
import { keptOrders } from '../orders';
import { href } from '../router';

/** The orders bought in this browser. */
export function MyTickets() {
  const orders = keptOrders();
  return (
    <>
      <h1 className="page-title">My tickets</h1>
      {orders.length === 0 ? (
        <div className="card">
          <p>
            No tickets bought in this browser yet. <a href={href.events()}>Find an event</a>.
          </p>
        </div>
      ) : (
        <ul className="order-list">
          {orders.map((o) => (
            <li key={o.order_id}>
              <a className="card order-link" href={href.order(o.order_id)}>
                <strong>{o.event_name}</strong>
                <span className="muted">
                  {o.seats.length} ticket{o.seats.length === 1 ? '' : 's'}: {o.seats.map(seatIdName).join(', ')}
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
