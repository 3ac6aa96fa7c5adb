import { useEffect, useState } from 'react';

import { dateTime } from '../../shared/format';
import type { EventStatus } from '../../shared/types';
import type { AdminApi } from '../api';
import { useEvents, type AdminEvent } from '../events';
import { pacingPatch } from '../pacing';

const STATUS_ACTIONS: { status: EventStatus; label: string }[] = [
  { status: 'on_sale', label: 'Open sale' },
  { status: 'paused', label: 'Pause' },
  { status: 'closed', label: 'Close' },
];

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

  const refused = useEvents((s) => s.refused);
  const savePacing = () => {
    const built = pacingPatch({ rate, shoppers, mode, rateMin, rateMax, pow });
    if (built.ok) void patch(api, event.id, built.patch);
    else refused(event.id, built.errors.join(' '));
  };

  return (
    <li className="admin-event" data-testid={`admin-event-${event.id}`}>
      <div className="admin-event__head">
        <div>
          <strong>
            #{event.id} {event.name}
          </strong>
          <div className="muted small">
            {event.venue} · {dateTime(event.starts_at)} · {event.seat_count.toLocaleString('en')} seats · sale {dateTime(event.sale_opens_at)} → {dateTime(event.sale_closes_at)}
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
              data-testid={`status-${a.status}-${event.id}`}
              onClick={() => void patch(api, event.id, { status: a.status })}
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
            savePacing();
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
            void patch(api, event.id, { refund_cutoff_hours: refundHours.trim() === '' ? null : Number(refundHours) });
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
    <section className="card" aria-labelledby="events-title">
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
