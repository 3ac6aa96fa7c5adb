// The orders bought in this browser, remembered so "My tickets" can list them (the API has no
// "my orders" listing; each order is fetched by id).

import { load, save } from '../shared/storage';
import type { Order } from '../shared/types';

export interface KeptOrder {
  order_id: string;
  event_id: number;
  event_name: string;
  created_at: string;
  seats: string[];
}

const KEY = 'orders';

export function keptOrders(): KeptOrder[] {
  const kept = load<KeptOrder[]>(KEY);
  return Array.isArray(kept) ? kept : [];
}

export function keepOrder(order: Order, eventName: string): void {
  const entry: KeptOrder = {
    order_id: order.order_id,
    event_id: order.event_id,
    event_name: eventName,
    created_at: order.created_at,
    seats: order.tickets.map((t) => t.seat_id),
  };
  save(KEY, [entry, ...keptOrders().filter((o) => o.order_id !== order.order_id)].slice(0, 50));
}
