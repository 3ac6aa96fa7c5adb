// Webhooks of integration events: register one (its secret is shown once), disable one, and
// follow one's delivery log, read again every 2 s while it is open.

import { useCallback, useEffect, useMemo, useState } from 'react';

import { describeError } from '../../shared/http';
import { describeRefusal, webhookLabels } from '../fieldLabels';
import {
  EVENT_TYPES,
  type EventType,
  type Webhook,
  type WebhookDelivery,
  eventsLabel,
  poll,
  statusLabel,
  statusTone,
  timeOf,
  webhooksApi,
} from '../webhooks';
import { TableWrap } from './TableWrap';

/** The registered webhooks; `selected` is the one whose log is open. */
export function WebhookList({
  hooks,
  selected,
  onSelect,
  onDisable,
}: {
  hooks: Webhook[];
  selected: number | null;
  onSelect: (id: number) => void;
  onDisable: (id: number) => void;
}) {
  if (hooks.length === 0) return <p className="muted small" data-testid="webhooks-empty">No webhook yet.</p>;
  return (
    <TableWrap label="Registered webhooks">
      <table className="table" data-testid="webhook-list">
        <caption className="visually-hidden">Registered webhooks</caption>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">URL</th>
            <th scope="col">Events</th>
            <th scope="col">State</th>
            <th scope="col">Created</th>
            <th scope="col">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {hooks.map((h) => (
            <tr key={h.id} data-testid={`webhook-${h.id}`} aria-selected={h.id === selected}>
              <td>{h.id}</td>
              <td className="small">{h.url}</td>
              <td className="small">{eventsLabel(h.events)}</td>
              <td>
                <span className={`badge badge--${h.active ? 'good' : 'off'}`}>{h.active ? 'active' : 'disabled'}</span>
              </td>
              <td className="small">
                {timeOf(h.created_at)} by {h.created_by}
              </td>
              <td>
                <button type="button" className="button button--small" onClick={() => onSelect(h.id)} data-testid={`webhook-log-${h.id}`}>
                  {h.id === selected ? 'Log shown' : 'Show log'}
                </button>{' '}
                {h.active && (
                  <button type="button" className="button button--small" onClick={() => onDisable(h.id)} data-testid={`webhook-disable-${h.id}`}>
                    Disable
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

/** One webhook's deliveries, newest first. */
export function DeliveryLog({ deliveries }: { deliveries: WebhookDelivery[] }) {
  if (deliveries.length === 0) return <p className="muted small" data-testid="webhook-deliveries-empty">Nothing sent to it yet.</p>;
  return (
    <TableWrap label="Deliveries">
      <table className="table" data-testid="webhook-deliveries">
        <caption className="visually-hidden">Deliveries</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Event</th>
            <th scope="col">Type</th>
            <th scope="col">Status</th>
            <th scope="col">Attempts</th>
            <th scope="col">Next retry</th>
            <th scope="col">Last error</th>
          </tr>
        </thead>
        <tbody>
          {deliveries.map((d) => (
            <tr key={d.id} data-testid="webhook-delivery" data-event-id={d.event_id} data-status={d.status}>
              <td className="small">{timeOf(d.sent_at ?? d.created_at)}</td>
              <td className="small">
                <code>{d.event_id}</code>
              </td>
              <td className="small">{d.event_type}</td>
              <td>
                <span className={`badge badge--${statusTone(d.status)}`} data-testid="webhook-delivery-status">
                  {statusLabel(d)}
                </span>
              </td>
              <td>{d.attempts}</td>
              <td className="small">{d.next_attempt_at ? timeOf(d.next_attempt_at) : '—'}</td>
              <td className="small">{d.last_error ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableWrap>
  );
}

function CreateWebhook({ onCreate }: { onCreate: (url: string, events: EventType[]) => Promise<void> }) {
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<EventType[]>([]);
  const [busy, setBusy] = useState(false);
  const toggle = (type: EventType) => setEvents((now) => (now.includes(type) ? now.filter((t) => t !== type) : [...now, type]));
  return (
    <form
      className="stack"
      onSubmit={(e) => {
        e.preventDefault();
        setBusy(true);
        void onCreate(url.trim(), events)
          .then(() => {
            setUrl('');
            setEvents([]);
          })
          .finally(() => setBusy(false));
      }}
    >
      <label className="field">
        <span className="field__label">URL (events are POSTed to it, signed)</span>
        <input type="url" required value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://erp.example/hook" data-testid="webhook-url" />
      </label>
      <fieldset className="row">
        <legend className="field__label">Events (none ticked: every type)</legend>
        {EVENT_TYPES.map((type) => (
          <label key={type} className="small">
            <input type="checkbox" checked={events.includes(type)} onChange={() => toggle(type)} data-testid={`webhook-event-${type}`} /> {type}
          </label>
        ))}
      </fieldset>
      <button type="submit" className="button button--primary" disabled={busy || url.trim() === ''} data-testid="webhook-create">
        {busy ? 'Registering…' : 'Register webhook'}
      </button>
    </form>
  );
}

/** The console's Webhooks card. */
export function WebhooksPanel({ token }: { token: string }) {
  const api = useMemo(() => webhooksApi(token), [token]);
  const [hooks, setHooks] = useState<Webhook[]>([]);
  const [selected, setSelected] = useState<number | null>(null);
  const [deliveries, setDeliveries] = useState<WebhookDelivery[]>([]);
  const [updatedAt, setUpdatedAt] = useState<number | null>(null);
  const [created, setCreated] = useState<Webhook | null>(null);
  const [error, setError] = useState<string | null>(null);

  const reload = useCallback(() => api.list().then(setHooks, (e: unknown) => setError(describeError(e))), [api]);
  useEffect(() => {
    void reload();
  }, [reload]);

  useEffect(() => {
    setDeliveries([]);
    setUpdatedAt(null);
    if (selected === null) return undefined;
    return poll(
      (signal) => api.deliveries(selected, signal),
      (found) => {
        setDeliveries(found);
        setUpdatedAt(Date.now());
        setError(null);
      },
      (e) => setError(describeError(e)),
    );
  }, [api, selected]);

  const create = async (url: string, events: EventType[]) => {
    setError(null);
    try {
      const hook = await api.create(url, events);
      setCreated(hook);
      setSelected(hook.id);
      await reload();
    } catch (e) {
      setError(describeRefusal(e, webhookLabels));
    }
  };

  const disable = async (id: number) => {
    setError(null);
    try {
      await api.disable(id);
      await reload();
    } catch (e) {
      setError(describeError(e));
    }
  };

  return (
    <section className="card" id="webhooks" aria-labelledby="webhooks-title" data-testid="webhooks-panel">
      <div className="card__head">
        <h2 id="webhooks-title" className="card__title">
          Webhooks
        </h2>
        {selected !== null && <span className="muted small">{updatedAt ? `log updated ${new Date(updatedAt).toLocaleTimeString('en-GB')}` : 'loading…'}</span>}
      </div>
      <CreateWebhook onCreate={create} />
      {created?.secret && (
        <p className="message" role="status">
          Webhook #{created.id} registered. Its signing secret, shown only now: <code data-testid="webhook-secret">{created.secret}</code>
        </p>
      )}
      {error && (
        <p className="message message--error" role="alert" data-testid="webhook-error">
          {error}
        </p>
      )}
      <WebhookList hooks={hooks} selected={selected} onSelect={setSelected} onDisable={(id) => void disable(id)} />
      {selected !== null && (
        <>
          <h3>Deliveries to #{selected}</h3>
          <DeliveryLog deliveries={deliveries} />
        </>
      )}
    </section>
  );
}
