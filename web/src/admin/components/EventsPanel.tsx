import { useEffect, useRef, useState } from 'react';

import { eventDateTime, eventZone, zoneName } from '../../shared/format';
import type { EventStatus } from '../../shared/types';
import type { AdminApi } from '../api';
import { useEvents, type AdminEvent } from '../events';
import { pacingPatch } from '../pacing';

const STATUS_ACTIONS: { status: EventStatus; label: string }[] = [
  { status: 'on_sale', label: 'Open sale' },
  { status: 'paused', label: 'Pause' },
  { status: 'closed', label: 'Close' },
];

/** After the server refused a setting, the boxes show what is in force, not what was refused
 *  (an operator glancing at the row during a sale must not read a rate that is not running);
 *  the message says why it was refused and that nothing was saved. */
const PACING_REFUSED = 'Not saved: the boxes show the pacing in force.';
const REFUND_REFUSED = 'Not saved: the box shows the refund policy in force.';

const KEEP: Record<EventStatus, string> = { on_sale: 'Keep it on sale', paused: 'Keep it paused', draft: 'Keep the draft', closed: 'Keep it closed' };

/** Closing a live sale is one click from the row: ask first, naming the event (as the audience
 *  app's order page does before cancelling), with the safe answer focused. */
function ConfirmClose({ event, onConfirm, onKeep }: { event: AdminEvent; onConfirm: () => void; onKeep: () => void }) {
  return (
    <div
      className="message message--notice admin-confirm"
      role="alertdialog"
      aria-label={`Close the sale of ${event.name}?`}
      aria-describedby={`confirm-close-text-${event.id}`}
      data-testid={`confirm-close-${event.id}`}
      onKeyDown={(e) => {
        if (e.key === 'Escape') onKeep();
      }}
    >
      <span id={`confirm-close-text-${event.id}`}>
        Close the sale of <strong>#{event.id} {event.name}</strong>? Nobody can hold seats or be let in from the queue until it is opened again.
      </span>
      <span className="admin-confirm__buttons">
        <button type="button" className="button button--small button--primary" onClick={onConfirm} data-testid={`confirm-close-yes-${event.id}`}>
          Yes, close the sale
        </button>
        <button type="button" className="button button--small button--ghost" onClick={onKeep} autoFocus data-testid={`confirm-close-no-${event.id}`}>
          {KEEP[event.status]}
        </button>
      </span>
    </div>
  );
}

function EventRow({ event, api }: { event: AdminEvent; api: AdminApi }) {
  const patch = useEvents((s) => s.patch);
  const busy = useEvents((s) => s.busy[event.id] ?? false);
  const outcome = useEvents((s) => s.outcome[event.id]);
  const [rate, setRate] = useState(String(event.admission_rate));
  const [shoppers, setShoppers] = useState(String(event.max_active_shoppers));
  const [mode, setMode] = useState(event.admission_mode ?? 'fixed');
  const [rateMin, setRateMin] = useState(String(event.admission_rate_min ?? 1));
  const [rateMax, setRateMax] = useState(String(event.admission_rate_max ?? 100));
  const [pow, setPow] = useState(String(event.pow_difficulty ?? 0));
  useEffect(() => {
    setMode(event.admission_mode ?? 'fixed');
    setRateMin(String(event.admission_rate_min ?? 1));
    setRateMax(String(event.admission_rate_max ?? 100));
    setPow(String(event.pow_difficulty ?? 0));
  }, [event.admission_mode, event.admission_rate_min, event.admission_rate_max, event.pow_difficulty]);

  // Show the server's values again after each change comes back.
  useEffect(() => {
    setRate(String(event.admission_rate));
    setShoppers(String(event.max_active_shoppers));
  }, [event.admission_rate, event.max_active_shoppers]);

  const [refundHours, setRefundHours] = useState(event.refund_cutoff_hours == null ? '' : String(event.refund_cutoff_hours));
  useEffect(() => {
    setRefundHours(event.refund_cutoff_hours == null ? '' : String(event.refund_cutoff_hours));
  }, [event.refund_cutoff_hours]);

  /** The row's settings as last read from the server (after a refusal, read again). */
  const inForce = (): AdminEvent => useEvents.getState().events.find((e) => e.id === event.id) ?? event;

  const refused = useEvents((s) => s.refused);
  const savePacing = async () => {
    const built = pacingPatch({ rate, shoppers, mode, rateMin, rateMax, pow });
    // Refused here (a box left empty): the box keeps what was typed, to be corrected.
    if (!built.ok) return refused(event.id, built.errors.join(' '));
    if (await patch(api, event.id, built.patch, PACING_REFUSED)) return;
    const now = inForce();
    setRate(String(now.admission_rate));
    setShoppers(String(now.max_active_shoppers));
    setMode(now.admission_mode ?? 'fixed');
    setRateMin(String(now.admission_rate_min ?? 1));
    setRateMax(String(now.admission_rate_max ?? 100));
    setPow(String(now.pow_difficulty ?? 0));
  };
  const saveRefund = async () => {
    const hours = refundHours.trim() === '' ? null : Number(refundHours);
    if (await patch(api, event.id, { refund_cutoff_hours: hours }, REFUND_REFUSED)) return;
    const now = inForce().refund_cutoff_hours;
    setRefundHours(now == null ? '' : String(now));
  };

  const [confirmingClose, setConfirmingClose] = useState(false);
  // The venue's zone by name beside its short one ("CEST (Europe/Berlin)"; "UTC" needs none).
  const zone = eventZone(event);
  const closeButton = useRef<HTMLButtonElement>(null);
  const setStatus = (status: EventStatus) => {
    if (status === 'closed') setConfirmingClose(true);
    else void patch(api, event.id, { status });
  };

  return (
    <li className="admin-event" data-testid={`admin-event-${event.id}`}>
      <div className="admin-event__head">
        <div>
          <strong>
            #{event.id} {event.name}
          </strong>
          <div className="muted small">
            {event.venue} · {eventDateTime(event.starts_at, event)}
            {zone && zone !== zoneName(event.starts_at, zone) ? <span data-testid={`admin-event-zone-${event.id}`}> ({zone})</span> : null} ·{' '}
            {event.seat_count.toLocaleString('en')} seats · sale {eventDateTime(event.sale_opens_at, event)} → {eventDateTime(event.sale_closes_at, event)}
          </div>
        </div>
        <span className={`badge badge--status-${event.status}`} data-testid={`admin-event-status-${event.id}`}>
          {event.status.replace('_', ' ')}
        </span>
      </div>
      <div className="admin-event__controls">
        <div className="button-group" role="group" aria-label={`Sale status of ${event.name}`}>
          {STATUS_ACTIONS.map((a) => (
            <button
              key={a.status}
              type="button"
              className={`button button--small ${event.status === a.status ? 'button--current' : ''}`}
              aria-pressed={event.status === a.status}
              disabled={busy || event.status === a.status}
              ref={a.status === 'closed' ? closeButton : undefined}
              data-testid={`status-${a.status}-${event.id}`}
              onClick={() => setStatus(a.status)}
            >
              {a.label}
            </button>
          ))}
        </div>
        <label className="toggle">
          <input
            type="checkbox"
            checked={event.waiting_room}
            disabled={busy}
            data-testid={`waiting-room-${event.id}`}
            onChange={(e) => void patch(api, event.id, { waiting_room: e.target.checked })}
          />
          Waiting room
        </label>
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            void savePacing();
          }}
        >
          <label className="field field--inline">
            <span className="field__label">Admissions / s</span>
            <input type="number" min="0.01" step="any" value={rate} onChange={(e) => setRate(e.target.value)} data-testid={`admission-rate-${event.id}`} />
          </label>
          <label className="field field--inline">
            <span className="field__label">Mode</span>
            <select value={mode} onChange={(e) => setMode(e.target.value === 'adaptive' ? 'adaptive' : 'fixed')} data-testid={`admission-mode-${event.id}`}>
              <option value="fixed">Fixed rate</option>
              <option value="adaptive">Adaptive (follows health)</option>
            </select>
          </label>
          {mode === 'adaptive' && (
            <>
              <label className="field field--inline">
                <span className="field__label">Min / s</span>
                <input type="number" min="0.01" step="any" value={rateMin} onChange={(e) => setRateMin(e.target.value)} data-testid={`admission-rate-min-${event.id}`} />
              </label>
              <label className="field field--inline">
                <span className="field__label">Max / s</span>
                <input type="number" min="0.01" step="any" value={rateMax} onChange={(e) => setRateMax(e.target.value)} data-testid={`admission-rate-max-${event.id}`} />
              </label>
            </>
          )}
          <label className="field field--inline">
            <span className="field__label">Max shoppers</span>
            <input type="number" min="1" step="1" value={shoppers} onChange={(e) => setShoppers(e.target.value)} data-testid={`max-shoppers-${event.id}`} />
          </label>
          <label className="field field--inline">
            <span className="field__label">Proof of work (bits)</span>
            <input type="number" min="0" max="32" step="1" value={pow} onChange={(e) => setPow(e.target.value)} data-testid={`pow-difficulty-${event.id}`} />
          </label>
          <button type="submit" className="button button--small" disabled={busy} data-testid={`save-pacing-${event.id}`}>
            Save pacing
          </button>
        </form>
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            void saveRefund();
          }}
        >
          <label className="field field--inline">
            <span className="field__label">Cancellable until (h before start; empty: never)</span>
            <input type="number" min="0" max="8760" step="1" value={refundHours} onChange={(e) => setRefundHours(e.target.value)} data-testid={`refund-hours-${event.id}`} />
          </label>
          <button type="submit" className="button button--small" disabled={busy} data-testid={`save-refund-${event.id}`}>
            Save refund policy
          </button>
        </form>
      </div>
      {confirmingClose && event.status !== 'closed' && (
        <ConfirmClose
          event={event}
          onKeep={() => {
            setConfirmingClose(false);
            closeButton.current?.focus();
          }}
          onConfirm={() => {
            setConfirmingClose(false);
            void patch(api, event.id, { status: 'closed' });
          }}
        />
      )}
      {outcome && (
        <p className={`small ${outcome.ok ? 'ok-text' : 'error-text'}`} role={outcome.ok ? 'status' : 'alert'}>
          {outcome.text}
        </p>
      )}
    </li>
  );
}

export function EventsPanel({ api }: { api: AdminApi }) {
  const { events, loading, error, refresh } = useEvents();
  useEffect(() => {
    void refresh(api);
  }, [api, refresh]);
  return (
    <section className="card" id="events" aria-labelledby="events-title">
      <div className="card__head">
        <h2 id="events-title" className="card__title">
          Events
        </h2>
        <button type="button" className="button button--small button--ghost" onClick={() => void refresh(api)} disabled={loading}>
          {loading ? 'Refreshing…' : 'Refresh'}
        </button>
      </div>
      {error && (
        <p className="message message--error" role="alert">
          {error}
        </p>
      )}
      {events.length === 0 && !loading && <p className="muted">No events yet: create one below.</p>}
      <ul className="admin-events">
        {events.map((e) => (
          <EventRow key={e.id} event={e} api={api} />
        ))}
      </ul>
    </section>
  );
}
