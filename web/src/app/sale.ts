// How an event's sale stands, in words, for badges on the list and the event page, and when
// that changes by the clock alone.

import { useEffect, useState } from 'react';

import { eventDateTime } from '../shared/format';
import type { EventSummary } from '../shared/types';

export type SaleTone = 'good' | 'wait' | 'off';

/** "On sale", "Sale opens Sat, 6 Jun 2026, 10:00 CEST" (on the venue's clock), "Paused" … */
export function saleLabel(event: EventSummary, now = Date.now()): { text: string; tone: SaleTone } {
  if (isOnSale(event, now)) return { text: 'On sale', tone: 'good' };
  if (event.status === 'paused') return { text: 'Sale paused', tone: 'wait' };
  if (event.status === 'closed' || Date.parse(event.sale_closes_at) <= now) return { text: 'Sale closed', tone: 'off' };
  if (event.status === 'draft') return { text: 'Coming soon', tone: 'off' };
  return { text: `Sale opens ${eventDateTime(event.sale_opens_at, event)}`, tone: 'wait' };
}

/** On sale now by the client's clock too: `on_sale` is as of when the event was loaded (or last
 *  pushed), and a page left open across the opening or closing time should follow it. The
 *  server's `on_sale` wins at the opening, where a client clock running late would otherwise
 *  hold the page back; the server refuses holds after the close whatever this says. */
export function isOnSale(event: EventSummary, now = Date.now()): boolean {
  if (event.status !== 'on_sale' || now >= Date.parse(event.sale_closes_at)) return false;
  return event.on_sale || Date.parse(event.sale_opens_at) <= now;
}

/** The next instant after `now` at which the clock alone changes how a sale of `events` stands
 *  (an opening or a closing time), or null if none is ahead. */
export function nextSaleChange(events: readonly EventSummary[], now = Date.now()): number | null {
  const ahead = events
    .flatMap((e) => [Date.parse(e.sale_opens_at), Date.parse(e.sale_closes_at)])
    .filter((at) => at > now);
  return ahead.length > 0 ? Math.min(...ahead) : null;
}

/** The longest a browser timer may wait (setTimeout's signed 32-bit milliseconds). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The time now, re-rendering when a sale of `events` opens or closes: a page left open for
 *  the opening minute says "On sale" and offers its buttons at that minute, not at a reload. */
export function useSaleClock(events: readonly EventSummary[]): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const at = nextSaleChange(events, now);
    if (at === null) return;
    // A little past the boundary (at once if it passed since `now`), so the render after it
    // reads a clock at or beyond it.
    const wait = Math.min(Math.max(0, at - Date.now()) + 20, MAX_TIMER_MS);
    const timer = window.setTimeout(() => setNow(Date.now()), wait);
    return () => window.clearTimeout(timer);
  }, [events, now]);
  return now;
}
