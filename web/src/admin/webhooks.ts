// Webhooks of integration events (README, "Integration events"): the admin REST calls, and what
// the console shows of a delivery. The panel is components/WebhooksPanel.tsx.

import { requestJson } from '../shared/http';

/** The event types a webhook may ask for; none asked: every type. */
export const EVENT_TYPES = ['order.paid', 'order.cancelled', 'order.refunded', 'hold.expired'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** The delivery log is read again this often while it is open. */
export const DELIVERY_POLL_MS = 2000;

export interface Webhook {
  id: number;
  url: string;
  /** Empty: every type. */
  events: string[];
  active: boolean;
  created_by: string;
  created_at: string;
  /** Only in the answer that created it. */
  secret?: string | null;
}

export type DeliveryStatus = 'sent' | 'pending' | 'retrying' | 'skipped';

/** One event's delivery to one webhook (GET /api/admin/webhooks/{id}/deliveries). */
export interface WebhookDelivery {
  id: number;
  event_id: string;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  http_status: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  sent_at: string | null;
  created_at: string;
}

export function webhooksApi(token: string) {
  const path = '/api/admin/webhooks';
  return {
    list: (): Promise<Webhook[]> => requestJson('GET', path, { token }),
    create: (url: string, events: EventType[]): Promise<Webhook> => requestJson('POST', path, { token, body: { url, events } }),
    disable: (id: number): Promise<Webhook> => requestJson('DELETE', `${path}/${id}`, { token }),
    deliveries: (id: number, signal?: AbortSignal): Promise<WebhookDelivery[]> =>
      requestJson('GET', `${path}/${id}/deliveries`, { token, signal }),
  };
}

export type WebhooksApi = ReturnType<typeof webhooksApi>;

/** The types a webhook asked for, or "every type". */
export function eventsLabel(events: readonly string[]): string {
  return events.length === 0 ? 'every type' : events.join(', ');
}

/** The status column: "sent · HTTP 204", "retrying · HTTP 500", "pending". */
export function statusLabel(delivery: WebhookDelivery): string {
  return delivery.http_status === null ? delivery.status : `${delivery.status} · HTTP ${delivery.http_status}`;
}

/** The badge modifier of a status (styles.css has good, wait and off). */
export function statusTone(status: DeliveryStatus): 'good' | 'wait' | 'off' {
  if (status === 'sent') return 'good';
  return status === 'skipped' ? 'off' : 'wait';
}

/** "14:02:05" in the console's locale style; the ISO text itself if it does not parse. */
export function timeOf(iso: string | null): string {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString('en-GB');
}

/** Read `load` now and every `intervalMs` after each answer, never two at once, until the
 *  returned function is called. */
export function poll<T>(
  load: (signal: AbortSignal) => Promise<T>,
  onData: (data: T) => void,
  onError: (error: unknown) => void,
  intervalMs: number = DELIVERY_POLL_MS,
): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const controller = new AbortController();
  const tick = async () => {
    try {
      const data = await load(controller.signal);
      if (!stopped) onData(data);
    } catch (error) {
      if (!stopped) onError(error);
    }
    if (!stopped) timer = setTimeout(() => void tick(), intervalMs);
  };
  void tick();
  return () => {
    stopped = true;
    controller.abort();
    clearTimeout(timer);
  };
}
