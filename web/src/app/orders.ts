// The orders bought in this browser, remembered with their event's name and time zone (GET
// /api/orders lists the user's orders; this keeps what the list does not carry), and the address
// last used at checkout, to pre-fill the next one.

import { load, save } from '../shared/storage';
import type { EventSummary, Order } from '../shared/types';

export interface KeptOrder {
  order_id: string;
  event_id: number;
  event_name: string;
  /** The event's zone, for showing its times; absent in orders kept before events had one. */
  timezone?: string;
  created_at: string;
  seats: string[];
}

const KEY = 'orders';

export function keptOrders(): KeptOrder[] {
  const kept = load<KeptOrder[]>(KEY);
  return Array.isArray(kept) ? kept : [];
}

export function keepOrder(order: Order, event: Pick<EventSummary, 'name' | 'timezone'>): void {
  const entry: KeptOrder = {
    order_id: order.order_id,
    event_id: order.event_id,
    event_name: event.name,
    timezone: event.timezone,
    created_at: order.created_at,
    seats: order.tickets.map((t) => t.seat_id),
  };
  save(KEY, [entry, ...keptOrders().filter((o) => o.order_id !== order.order_id)].slice(0, 50));
}

const EMAIL = 'email';

export function rememberEmail(email: string): void {
  save(EMAIL, email);
}

export function rememberedEmail(): string {
  const kept = load<string>(EMAIL);
  return typeof kept === 'string' ? kept : '';
}

/** A plausible address (the server checks it properly): something@something.something. */
export function looksLikeEmail(text: string): boolean {
  return /^[^\s@<>,;]+@[^\s@<>,;]+\.[^\s@<>,;]+$/.test(text.trim());
}

/** Why `text` cannot be the tickets' address (shown under the field, so a disabled Pay button
 *  is never left unexplained), or null when it can. */
export function emailProblem(text: string): string | null {
  if (text.trim() === '') return 'Enter the e-mail address your tickets should go to.';
  if (!looksLikeEmail(text)) return 'Enter a valid e-mail address, such as you@example.com.';
  return null;
}
