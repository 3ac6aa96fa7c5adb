import { useEffect, useState } from 'react';

import { eventDateTime, money, seatIdName, type Zoned } from '../../shared/format';
import { describeError } from '../../shared/http';
import type { EventSummary, Order, Ticket, TicketCheck } from '../../shared/types';
import { api, qrUrl } from '../api';
import { Feedback } from '../components/Feedback';
import { keptOrders } from '../orders';
import { href } from '../router';

/** One ticket: its QR code and what verification (GET /api/tickets/{code}) says now. */
function TicketCard({ ticket, showQr }: { ticket: Ticket; showQr: boolean }) {
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
  }, [ticket.code, ticket.status]);

  // A void ticket stays void (a check made before the order was cancelled is out of date).
  const status = ticket.status === 'void' ? 'void' : (check?.status ?? ticket.status);
  return (
    <li className={`ticket ticket--${status}`} data-testid={`ticket-${ticket.code}`}>
      {showQr && <img className="ticket__qr" data-testid="ticket-qr" src={qrUrl(ticket.code)} alt={`QR code of the ticket for ${seatIdName(ticket.seat_id)}`} width={180} height={180} />}
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

const REFUND_WORDS: Record<string, string> = {
  pending: 'Your refund is on its way: the payment provider has not confirmed it yet, and we keep trying until it does.',
  refunded: 'Refunded to your card.',
  manual: 'The box office refunds you directly.',
};

/** Cancelling: a button, then a confirmation step naming what happens. */
function CancelOrder({ order, onCancelled, orderKey, zone }: { order: Order; orderKey: string | null; zone: Zoned; onCancelled: (o: Order) => void }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const until = order.cancellable_until ? Date.parse(order.cancellable_until) : null;
  if (order.status !== 'paid') return null;
  if (until === null || until <= Date.now()) {
    return (
      <p className="muted small" data-testid="cancel-policy">
        {until === null ? 'This event does not allow cancellations.' : `Cancellations closed ${eventDateTime(order.cancellable_until ?? '', zone)}.`} The box office can help.
      </p>
    );
  }
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      onCancelled(await api.cancelOrder(order.order_id, orderKey));
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
      setAsking(false);
    }
  };
  return (
    <div className="cancel" data-testid="cancel-section">
      <p className="muted small">You can cancel until {eventDateTime(order.cancellable_until ?? '', zone)} and get {money(order.amount_cents, order.currency)} back.</p>
      {!asking ? (
        <button type="button" className="button button--ghost" data-testid="cancel-order" onClick={() => setAsking(true)}>
          Cancel this order
        </button>
      ) : (
        <div className="message message--notice" role="alertdialog" aria-label="Confirm the cancellation">
          <span>
            Cancel all {order.tickets.length} ticket{order.tickets.length === 1 ? '' : 's'}? They stop working at once and the seats go back on sale.
          </span>
          <button type="button" className="button button--primary" data-testid="confirm-cancel" onClick={() => void confirm()} disabled={busy}>
            {busy ? 'Cancelling…' : 'Yes, cancel and refund'}
          </button>
          <button type="button" className="button button--ghost" onClick={() => setAsking(false)} disabled={busy}>
            Keep my tickets
          </button>
        </div>
      )}
      <Feedback error={error} />
    </div>
  );
}

function DownloadPdf({ order, orderKey }: { order: Order; orderKey: string | null }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const download = async () => {
    setBusy(true);
    setError(null);
    try {
      const blob = await api.ticketsPdf(order.order_id, orderKey);
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = `tickets-${order.order_id}.pdf`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" className="button button--primary" data-testid="download-pdf" onClick={() => void download()} disabled={busy}>
        {busy ? 'Preparing the PDF…' : 'Download tickets (PDF)'}
      </button>
      <Feedback error={error} />
    </>
  );
}

export function OrderPage({ orderId, orderKey = null }: { orderId: string; orderKey?: string | null }) {
  const [order, setOrder] = useState<Order | null>(null);
  const [error, setError] = useState<string | null>(null);
  const kept = keptOrders().find((o) => o.order_id === orderId);
  // The event: its name (kept at checkout, else read), its start and its zone, in which the
  // order's times are shown (the kept zone until it is read, else the browser's, named).
  const [event, setEvent] = useState<EventSummary | null>(null);
  const eventName = event?.name ?? kept?.event_name ?? null;
  const zone: Zoned = event ?? kept;

  useEffect(() => {
    let current = true;
    api.order(orderId, orderKey).then(
      (o) => current && setOrder(o),
      (e: unknown) => current && setError(describeError(e)),
    );
    return () => {
      current = false;
    };
  }, [orderId, orderKey]);

  const eventId = order?.event_id;
  useEffect(() => {
    if (eventId === undefined) return;
    let current = true;
    api.event(eventId).then(
      (e) => current && setEvent(e),
      () => undefined, // the name and the zone are a nicety: "Event 7" and the browser's zone will do
    );
    return () => {
      current = false;
    };
  }, [eventId]);

  const cancelled = order?.status === 'cancelled';
  return (
    <>
      <a className="back" href={href.tickets()}>
        ← My tickets
      </a>
      <h1 className="page-title" data-testid="order-title">
        {cancelled ? 'Order cancelled' : 'Your tickets'}
      </h1>
      <Feedback error={error} />
      {!order && !error && <p className="muted">Loading order…</p>}
      {order && (
        <div className="card order" data-testid="order" data-status={order.status}>
          <p className="order__summary">
            <a href={href.event(order.event_id)}>{eventName ?? `Event ${order.event_id}`}</a>
            {event && (
              <>
                {' · '}
                <span data-testid="order-event-start">{eventDateTime(event.starts_at, event)}</span>
              </>
            )}
            {' · '}
            {order.tickets.length} ticket{order.tickets.length === 1 ? '' : 's'} · {money(order.amount_cents, order.currency)} · {cancelled ? 'cancelled' : 'paid'}{' '}
            {eventDateTime(order.created_at, zone)}
          </p>
          {cancelled ? (
            <div className="message message--notice" role="status" data-testid="order-cancelled">
              <span>
                This order is cancelled: its tickets are void and will not get you in. {REFUND_WORDS[order.refund ?? ''] ?? ''}
              </span>
            </div>
          ) : (
            <>
              <p className="muted small">
                Order {order.order_id}
                {order.email ? `, confirmation sent to ${order.email}` : ''}. Show the QR codes at the door; each one is checked against the server.
              </p>
              <div className="order__actions">
                <DownloadPdf order={order} orderKey={orderKey} />
              </div>
            </>
          )}
          <ul className="tickets">
            {order.tickets.map((t) => (
              <TicketCard key={t.code} ticket={t} showQr={!cancelled} />
            ))}
          </ul>
          <CancelOrder order={order} orderKey={orderKey} zone={zone} onCancelled={setOrder} />
        </div>
      )}
    </>
  );
}
