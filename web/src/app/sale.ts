// How an event's sale stands, in words, for badges on the list and the event page.

import { dateTime } from '../shared/format';
import type { EventSummary } from '../shared/types';

export type SaleTone = 'good' | 'wait' | 'off';

/** "On sale", "Sale opens …", "Paused" … */
export function saleLabel(event: EventSummary, now = Date.now()): { text: string; tone: SaleTone } {
  if (event.on_sale) return { text: 'On sale', tone: 'good' };
  if (event.status === 'paused') return { text: 'Sale paused', tone: 'wait' };
  if (event.status === 'closed' || Date.parse(event.sale_closes_at) <= now) return { text: 'Sale closed', tone: 'off' };
  if (event.status === 'draft') return { text: 'Coming soon', tone: 'off' };
  return { text: `Sale opens ${dateTime(event.sale_opens_at)}`, tone: 'wait' };
}

/** On sale now by the client's clock too: `on_sale` is as of when the event was loaded, and a
 *  page left open across the opening time should not keep saying "not on sale". */
export function isOnSale(event: EventSummary, now = Date.now()): boolean {
  if (event.on_sale) return true;
  return event.status === 'on_sale' && Date.parse(event.sale_opens_at) <= now && now < Date.parse(event.sale_closes_at);
}
