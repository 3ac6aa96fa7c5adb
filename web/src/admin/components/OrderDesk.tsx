import { useCallback, useEffect, useRef, useState } from 'react';

import { dateTime, money, seatIdName } from '../../shared/format';
import { describeError } from '../../shared/http';
import type { AuditEntry, Order, OrderFile } from '../../shared/types';
import type { AdminApi } from '../api';
import { auditDetails, auditTime } from '../audit';
import { useEvents } from '../events';
import { describeRefusal, deskLabels } from '../fieldLabels';
import { refundSummary } from '../orderFile';
import { TableWrap } from './TableWrap';

/** One staff action: a reason (required, audited), then the button. */
function StaffAction({ label, testid, extra, run }: { label: string; testid: string; extra?: 'email'; run: (reason: string, email: string | null) => Promise<unknown> }) {
  const [reason, setReason] = useState('');
  const [email, setEmail] = useState('');
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | null>(null);
  const submit = async () => {
    setBusy(true);
    setOutcome(null);
    try {
      await run(reason.trim(), email.trim() || null);
      setOutcome({ ok: true, text: 'Done.' });
      setReason('');
    } catch (e) {
      setOutcome({ ok: false, text: describeRefusal(e, deskLabels) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <form
      className="inline-form"
      onSubmit={(e) => {
        e.preventDefault();
        void submit();
      }}
    >
      <label className="field field--grow">
        <span className="field__label">Reason (kept in the audit log)</span>
        <input value={reason} onChange={(e) => setReason(e.target.value)} maxLength={2000} data-testid={`${testid}-reason`} />
      </label>
      {extra === 'email' && (
        <label className="field">
          <span className="field__label">To another address (optional)</span>
          <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} maxLength={254} data-testid={`${testid}-email`} />
        </label>
      )}
      <button type="submit" className="button button--small" disabled={busy || reason.trim() === ''} data-testid={testid}>
        {label}
      </button>
      {outcome && (
        <span className={`small ${outcome.ok ? 'ok-text' : 'error-text'}`} role={outcome.ok ? 'status' : 'alert'}>
          {outcome.text}
        </span>
      )}
    </form>
  );
}

/** Staff actions, in a box that scrolls sideways on a narrow window (named `label`). */
function AuditTable({ entries, label }: { entries: AuditEntry[]; label: string }) {
  if (entries.length === 0) return <p className="muted small">No staff actions yet.</p>;
  return (
    <TableWrap label={label}>
      <table className="desk-table" data-testid="audit-table">
        <thead>
          <tr>
            <th>When</th>
            <th>Who</th>
            <th>What</th>
            <th>On</th>
            <th>Details</th>
            <th>Why</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((a) => (
            <tr key={a.id} data-testid="audit-entry">
              <td data-testid="audit-time">
                <time dateTime={a.at}>{auditTime(a.at)}</time>
              </td>
              <td>{a.actor}</td>
              <td>{a.action}</td>
              <td>
                <code>{a.target}</code>
              </td>
              {/* a webhook's URL or an announcement wraps rather than widening the table */}
              <td data-testid="audit-details" style={{ overflowWrap: 'anywhere' }}>
                {auditDetails(a.details)}
              </td>
              <td>{a.reason ?? '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

function FileView({ file, api, changed }: { file: OrderFile; api: AdminApi; changed: () => void }) {
  const { order } = file;
  const id = order.order_id;
  return (
    <div className="order-file" data-testid="order-file">
      <h3>
        {file.event_name} · <code>{id}</code>{' '}
        <span className={`badge ${order.status === 'paid' ? 'badge--good' : 'badge--off'}`} data-testid="order-file-status">
          {order.status}
        </span>
      </h3>
      <p className="small">
        {money(order.amount_cents, order.currency)} · bought {dateTime(order.created_at, { zone: true })} by <code>{file.user_id}</code> · e-mail {order.email ?? 'none'} · seats{' '}
        {order.tickets.map((t) => seatIdName(t.seat_id)).join(', ')}
      </p>
      <h4>Payments</h4>
      <table className="desk-table">
        <tbody>
          {file.payments.map((p) => (
            <tr key={p.payment_id}>
              <td>
                <code>{p.payment_id}</code>
              </td>
              <td data-testid="payment-status">{p.status}</td>
              <td>{money(p.amount_cents, p.currency)}</td>
              <td>{dateTime(p.updated_at, { zone: true })}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {file.refund && (
        <>
          <h4>Refund</h4>
          <p className="small" data-testid="refund-status">
            {refundSummary(file.refund)}
          </p>
        </>
      )}
      <h4>E-mails</h4>
      {file.deliveries.length === 0 ? (
        <p className="muted small">None (bought without an address).</p>
      ) : (
        <table className="desk-table">
          <tbody>
            {file.deliveries.map((d) => (
              <tr key={d.id} data-testid="delivery">
                <td>{d.kind.replace('_', ' ')}</td>
                <td>{d.recipient}</td>
                <td>{d.status}</td>
                <td>{d.sent_at ? dateTime(d.sent_at, { zone: true }) : d.skipped ?? d.last_error ?? ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h4>Staff actions</h4>
      <AuditTable entries={file.audit} label="Staff actions on this order" />
      <div className="desk-actions">
        {order.status === 'paid' && <StaffAction label="Cancel and refund" testid="desk-cancel" run={(reason) => api.cancelOrder(id, reason).then(changed)} />}
        <StaffAction label="Resend confirmation" testid="desk-resend" extra="email" run={(reason, email) => api.resend(id, reason, email).then(changed)} />
        {file.refund?.status === 'pending' && <StaffAction label="Refund manually (stop retrying)" testid="desk-manual" run={(reason) => api.refundManually(id, reason).then(changed)} />}
      </div>
    </div>
  );
}

/** Find an order (e-mail, order id, ticket code, seat), read its file, act on it; the audit log. */
export function OrderDesk({ api }: { api: AdminApi }) {
  const [query, setQuery] = useState('');
  const [found, setFound] = useState<Order[] | null>(null);
  const [file, setFile] = useState<OrderFile | null>(null);
  const [audit, setAudit] = useState<AuditEntry[]>([]);
  const [error, setError] = useState<string | null>(null);

  const [auditBusy, setAuditBusy] = useState(false);
  // Events created or changed from this console are audited too: read the log again after each.
  const eventChanges = useEvents((s) => s.changes);

  const loadAudit = useCallback(() => {
    setAuditBusy(true);
    api
      .audit()
      .then(setAudit, (e: unknown) => setError(describeError(e)))
      .finally(() => setAuditBusy(false));
  }, [api]);
  useEffect(loadAudit, [loadAudit, eventChanges]);

  // Each search starts over: the order file open before it closes at once (its Cancel and
  // Resend buttons must never stand under another search's results), and an answer to an
  // earlier search or opening that arrives late is dropped.
  const generation = useRef(0);

  const open = async (id: string, asOf = generation.current) => {
    try {
      const opened = await api.orderFile(id);
      if (asOf !== generation.current) return;
      setFile(opened);
      setError(null);
    } catch (e) {
      if (asOf === generation.current) setError(describeError(e));
    }
  };

  const search = async () => {
    const asOf = ++generation.current;
    setFile(null);
    setFound(null);
    setError(null);
    try {
      const orders = await api.searchOrders(query.trim());
      if (asOf !== generation.current) return;
      setFound(orders);
      if (orders.length === 1 && orders[0]) await open(orders[0].order_id, asOf);
    } catch (e) {
      if (asOf === generation.current) setError(describeError(e));
    }
  };

  const changed = () => {
    if (file) void open(file.order.order_id);
    loadAudit();
  };

  return (
    <section className="card" id="order-desk" aria-labelledby="desk-title">
      <h2 id="desk-title" className="card__title">
        Order desk
      </h2>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          void search();
        }}
      >
        <label className="field field--grow">
          <span className="field__label">E-mail, order id, ticket code or seat</span>
          <input value={query} onChange={(e) => setQuery(e.target.value)} maxLength={256} data-testid="desk-query" />
        </label>
        <button type="submit" className="button button--small" disabled={query.trim() === ''} data-testid="desk-search">
          Find
        </button>
      </form>
      {error && (
        <p className="message message--error" role="alert">
          {error}
        </p>
      )}
      {found && found.length === 0 && <p className="muted">No order matches.</p>}
      {found && found.length > 1 && (
        <ul className="admin-events">
          {found.map((o) => (
            <li key={o.order_id}>
              <button type="button" className="link-button" onClick={() => void open(o.order_id)} data-testid={`desk-result-${o.order_id}`}>
                {o.order_id}
              </button>{' '}
              <span className="muted small">
                {o.status} · {o.email ?? 'no e-mail'} · {o.tickets.map((t) => seatIdName(t.seat_id)).join(', ')}
              </span>
            </li>
          ))}
        </ul>
      )}
      {/* keyed by order: a reason typed for one order is not left in the form of the next */}
      {file && <FileView key={file.order.order_id} file={file} api={api} changed={changed} />}
      <div className="card__head">
        <h3>Audit log</h3>
        {/* Other staff act too (and the server audits more than this console does): on demand. */}
        <button type="button" className="button button--small button--ghost" onClick={loadAudit} disabled={auditBusy} data-testid="audit-refresh">
          {auditBusy ? 'Refreshing…' : 'Refresh'}
        </button>
      </div>
      <AuditTable entries={audit} label="Audit log" />
    </section>
  );
}
