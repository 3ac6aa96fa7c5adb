import { useEffect, useState } from 'react';

import { dateTime, money, seatIdName } from '../../shared/format';
import { describeError } from '../../shared/http';
import type { Order, Ticket, TicketCheck } from '../../shared/types';
import { api, qrUrl } from '../api';
import { Feedback } from '../components/Feedback';
import { keptOrders } from '../orders';
import { href } from '../router';

/** One ticket: its QR code and what verification (GET /api/tickets/{code}) says now. */
function TicketCard({ ticket }: { ticket: Ticket }) {
  const [check, setCheck] = useState<TicketCheck | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let current = true;
    api.ticket(ticket.code).then(
      (c) => current && setCheck(c),
      (e: unknown) => current && setError(describeError(e)),
    );
    return () => {
      current = false;
    };
  }, [ticket.code]);

  const status = check?.status ?? ticket.status;
  return (
    <li className={`ticket ticket--${status}`} data-testid={`ticket-${ticket.code}`}>
      <img className="ticket__qr" data-testid="ticket-qr" src={qrUrl(ticket.code)} alt={`QR code of the ticket for ${seatIdName(ticket.seat_id)}`} width={180} height={180} />
      <div className="ticket__body">
        <div className="ticket__seat">{seatIdName(ticket.seat_id)}</div>
        <div className="ticket__status">
          <span className={`badge ${status === 'valid' ? 'badge--good' : 'badge--off'}`} data-testid="ticket-status">
            {status}
          </span>
          <span className="muted small">{check ? 'verified just now' : error ? `could not verify: ${error}` : 'verifying…'}</span>
        </div>
        <code className="ticket__code" title="Ticket code">
          {ticket.code}
        </code>
      </div>
    </li>
  );
}

export function OrderPage({ orderId }: { orderId: string }) {
  const [order, setOrder] = useState<Order | null>(null);
  const [error, setError] = useState<string | null>(null);
  const kept = keptOrders().find((o) => o.order_id === orderId);

  useEffect(() => {
    let current = true;
    api.order(orderId).then(
      (o) => current && setOrder(o),
      (e: unknown) => current && setError(describeError(e)),
    );
    return () => {
      current = false;
    };
  }, [orderId]);

  return (
    <>
      <a className="back" href={href.tickets()}>
        ← My tickets
      </a>
      <h1 className="page-title">{order?.status === 'cancelled' ? 'Order cancelled' : 'Your tickets'}</h1>
      <Feedback error={error} />
      {!order && !error && <p className="muted">Loading order…</p>}
      {order && (
        <div className="card order">
          <p className="order__summary">
            {kept ? <a href={href.event(order.event_id)}>{kept.event_name}</a> : <a href={href.event(order.event_id)}>Event {order.event_id}</a>}
            {' · '}
            {order.tickets.length} ticket{order.tickets.length === 1 ? '' : 's'} · {money(order.amount_cents, order.currency)} · {order.status === 'paid' ? 'paid' : 'cancelled'} {dateTime(order.created_at)}
          </p>
          <p className="muted small">Order {order.order_id}. Show the QR codes at the door; each one is checked against the server.</p>
          <ul className="tickets">
            {order.tickets.map((t) => (
              <TicketCard key={t.code} ticket={t} />
            ))}
          </ul>
        </div>
      )}
    </>
  );
}
