// Door check-in for one event: live progress (scanned / sold, by gate, per minute) pushed over
// STOMP on /topic/admin/events/{id}/checkin, and the tickets let in twice (conflicts).

import { useEffect, useState } from 'react';

import { describeError } from '../../shared/http';
import { LiveConnection } from '../../shared/live';
import type { AdminApi, CheckinConflict, CheckinProgress } from '../api';

export function CheckinPanel({ api, token }: { api: AdminApi; token: string }) {
  const [eventId, setEventId] = useState<number | null>(null);
  const [draft, setDraft] = useState('');
  const [progress, setProgress] = useState<CheckinProgress | null>(null);
  const [conflicts, setConflicts] = useState<CheckinConflict[]>([]);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (eventId === null) return undefined;
    const live = new LiveConnection({ credentials: async () => token });
    const subscription = live.subscribe(`/topic/admin/events/${eventId}/checkin`, (body) => {
      setProgress(JSON.parse(body) as CheckinProgress);
      void api.checkinConflicts(eventId).then(setConflicts, (e: unknown) => setError(describeError(e)));
    });
    live.start();
    void api.checkinProgress(eventId).then(setProgress, (e: unknown) => setError(describeError(e)));
    return () => {
      subscription.unsubscribe();
      void live.stop();
    };
  }, [api, token, eventId]);

  const peak = Math.max(1, ...(progress?.per_minute.map((m) => m.admitted) ?? [0]));
  return (
    <section className="card" id="door-checkin" aria-labelledby="checkin-title" data-testid="checkin-panel">
      <h2 id="checkin-title" className="card__title">
        Door check-in
      </h2>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          const id = Number(draft);
          if (Number.isInteger(id) && id > 0) {
            setError(null);
            setEventId(id);
          }
        }}
      >
        <label className="field field--narrow">
          <span className="field__label">Event id</span>
          <input value={draft} onChange={(e) => setDraft(e.target.value)} inputMode="numeric" autoComplete="off" data-testid="checkin-event" />
        </label>
        <button type="submit" className="button button--small">
          Watch
        </button>
      </form>
      {error && (
        <p className="message message--error" role="alert">
          {error}
        </p>
      )}
      {progress && (
        <>
          <p data-testid="checkin-progress">
            <strong>{progress.scanned}</strong> of {progress.sold} scanned
          </p>
          <ul data-testid="checkin-gates">
            {Object.entries(progress.by_gate).map(([gate, n]) => (
              <li key={gate}>
                {gate}: {n}
              </li>
            ))}
          </ul>
          <div className="checkin-minutes" aria-label="Admissions per minute">
            {progress.per_minute.map((m) => (
              <span key={m.minute} title={`${new Date(m.minute).toLocaleTimeString()}: ${m.admitted}`}
                style={{ display: 'inline-block', width: '6%', height: `${(m.admitted / peak) * 3}rem`, background: '#1b7f3b', marginRight: '0.2rem', verticalAlign: 'bottom' }} />
            ))}
          </div>
          <h3>Conflicts (let in twice)</h3>
          {conflicts.length === 0 ? (
            <p data-testid="checkin-conflicts">None</p>
          ) : (
            <ul data-testid="checkin-conflicts">
              {conflicts.map((c) => (
                <li key={`${c.ticket_id}-${c.second_gate}-${c.second_at}`}>
                  Seat {c.seat_id}: {c.first_gate} {new Date(c.first_at).toLocaleTimeString()}, then {c.second_gate}{' '}
                  {new Date(c.second_at).toLocaleTimeString()}
                  {c.second_offline ? ' (offline)' : ''}
                </li>
              ))}
            </ul>
          )}
        </>
      )}
    </section>
  );
}
