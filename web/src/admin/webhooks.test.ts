import { createElement } from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';

import { DeliveryLog, WebhookList } from './components/WebhooksPanel';
import { type Webhook, type WebhookDelivery, eventsLabel, poll, statusLabel, statusTone } from './webhooks';

const delivery = (over: Partial<WebhookDelivery>): WebhookDelivery => ({
  id: 1,
  event_id: 'evt_aaa',
  event_type: 'order.paid',
  status: 'sent',
  attempts: 1,
  http_status: 204,
  last_error: null,
  next_attempt_at: null,
  sent_at: '2026-12-06T07:30:05Z',
  created_at: '2026-12-06T07:30:04Z',
  ...over,
});

const hook = (over: Partial<Webhook>): Webhook => ({
  id: 3,
  url: 'http://erp.example/hook',
  events: [],
  active: true,
  created_by: 'root',
  created_at: '2026-12-06T07:00:00Z',
  ...over,
});

/** Each row's cells, as text, from rendered markup. */
function rows(html: string, testId: string): string[][] {
  const doc = html.split(`data-testid="${testId}"`).slice(1);
  return doc.map((row) =>
    [...(row.split('</tr>')[0] ?? '').matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((m) => (m[1] ?? '').replace(/<[^>]+>/g, '').replace(/&#x27;/g, "'")),
  );
}

describe('the delivery log', () => {
  it('shows per delivery the event, its type, status with HTTP code, attempts, next retry and error', () => {
    const html = renderToStaticMarkup(
      createElement(DeliveryLog, {
        deliveries: [
          delivery({ id: 2, event_id: 'evt_bbb', event_type: 'order.cancelled', status: 'retrying', attempts: 3, http_status: 500, last_error: 'WebhookRefused: answered HTTP 500', next_attempt_at: '2026-12-06T07:31:00Z', sent_at: null }),
          delivery({}),
        ],
      }),
    );
    const [retrying, sent] = rows(html, 'webhook-delivery');
    expect(retrying).toEqual([expect.any(String), 'evt_bbb', 'order.cancelled', 'retrying · HTTP 500', '3', expect.stringMatching(/\d\d:\d\d:\d\d/), 'WebhookRefused: answered HTTP 500']);
    expect(sent?.slice(1)).toEqual(['evt_aaa', 'order.paid', 'sent · HTTP 204', '1', '—', '']);
    expect(html).toContain('data-event-id="evt_bbb"');
    expect(html).toContain('badge--wait');
    expect(html).toContain('badge--good');
  });

  it('says when nothing was sent yet', () => {
    const html = renderToStaticMarkup(createElement(DeliveryLog, { deliveries: [] }));
    expect(html).toContain('Nothing sent to it yet');
    expect(html).not.toContain('<table');
  });

  it('labels a delivery without an answer by its status alone', () => {
    expect(statusLabel(delivery({ status: 'pending', http_status: null, attempts: 0 }))).toBe('pending');
    expect(statusTone('skipped')).toBe('off');
  });
});

describe('the webhook list', () => {
  it('lists each webhook with its filter and state, offering Disable only while active', () => {
    const html = renderToStaticMarkup(
      createElement(WebhookList, {
        hooks: [hook({}), hook({ id: 4, events: ['order.paid', 'hold.expired'], active: false })],
        selected: 4,
        onSelect: () => undefined,
        onDisable: () => undefined,
      }),
    );
    const [first, second] = rows(html, 'webhook-3').concat(rows(html, 'webhook-4'));
    expect(first?.slice(1, 4)).toEqual(['http://erp.example/hook', 'every type', 'active']);
    expect(second?.slice(2, 4)).toEqual(['order.paid, hold.expired', 'disabled']);
    expect(html).toContain('data-testid="webhook-disable-3"');
    expect(html).not.toContain('data-testid="webhook-disable-4"');
    expect(html).toContain('Log shown');
    expect(eventsLabel([])).toBe('every type');
  });
});

describe('poll', () => {
  it('reads again after each answer until stopped', async () => {
    let calls = 0;
    const seen: number[] = [];
    const stop = poll(
      async () => ++calls,
      (n) => seen.push(n),
      () => undefined,
      1,
    );
    while (seen.length < 3) await new Promise((r) => setTimeout(r, 2));
    stop();
    const after = calls;
    await new Promise((r) => setTimeout(r, 10));
    expect(calls).toBe(after);
    expect(seen.slice(0, 3)).toEqual([1, 2, 3]);
  });
});
