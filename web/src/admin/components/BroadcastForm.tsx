import { useState } from 'react';

import type { AnnouncementLevel } from '../../shared/types';
import type { AdminApi } from '../api';
import { useEvents } from '../events';
import { broadcastLabels, describeRefusal } from '../fieldLabels';

/** POST /api/admin/broadcast: to everyone, or to one event's page. */
export function BroadcastForm({ api }: { api: AdminApi }) {
  const events = useEvents((s) => s.events);
  const [text, setText] = useState('');
  const [level, setLevel] = useState<AnnouncementLevel>('info');
  const [target, setTarget] = useState('');
  const [sending, setSending] = useState(false);
  const [result, setResult] = useState<{ ok: boolean; text: string } | null>(null);

  const send = async () => {
    if (!text.trim()) {
      setResult({ ok: false, text: 'Write a message first.' });
      return;
    }
    setSending(true);
    setResult(null);
    try {
      const sent = await api.broadcast(text.trim(), level, target === '' ? null : Number(target));
      setResult({ ok: true, text: `Sent to ${sent.destination ?? 'subscribers'} at ${new Date(sent.sent_at).toLocaleTimeString('en-GB')}.` });
      setText('');
    } catch (error) {
      setResult({ ok: false, text: describeRefusal(error, broadcastLabels) });
    } finally {
      setSending(false);
    }
  };

  return (
    <section className="card" id="broadcast" aria-labelledby="broadcast-title">
      <h2 id="broadcast-title" className="card__title">
        Broadcast an announcement
      </h2>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void send();
        }}
      >
        <label className="field">
          <span className="field__label">Message</span>
          <input type="text" maxLength={2000} value={text} onChange={(e) => setText(e.target.value)} placeholder="Doors open at 19:00" data-testid="broadcast-text" />
        </label>
        <div className="row">
          <label className="field">
            <span className="field__label">Audience</span>
            <select value={target} onChange={(e) => setTarget(e.target.value)} data-testid="broadcast-event">
              <option value="">Everyone</option>
              {/* A draft's topics have no listeners: the server refuses an announcement there. */}
              {events.filter((e) => e.status !== 'draft').map((e) => (
                <option key={e.id} value={String(e.id)}>
                  #{e.id} {e.name}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            <span className="field__label">Level</span>
            <select value={level} onChange={(e) => setLevel(e.target.value as AnnouncementLevel)} data-testid="broadcast-level">
              <option value="info">Info</option>
              <option value="warning">Warning</option>
              <option value="critical">Critical</option>
            </select>
          </label>
        </div>
        <button type="submit" className="button button--primary" disabled={sending} data-testid="broadcast-send">
          {sending ? 'Sending…' : 'Send announcement'}
        </button>
        {result && (
          <p className={`small ${result.ok ? 'ok-text' : 'error-text'}`} role={result.ok ? 'status' : 'alert'} data-testid={result.ok ? 'broadcast-result' : 'error-message'}>
            {result.text}
          </p>
        )}
      </form>
    </section>
  );
}
