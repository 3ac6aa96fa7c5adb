// The admin console's REST calls (SPEC §5, role admin), each with the pasted token.

import { requestJson } from '../shared/http';
import type { Announcement, AnnouncementLevel, AuditEntry, EventCreate, EventDetail, EventPatch, EventSummary, Order, OrderFile, RefundRecord, Stats } from '../shared/types';

export interface CheckinProgress {
  event_id: number;
  sold: number;
  scanned: number;
  by_gate: Record<string, number>;
  per_minute: { minute: string; admitted: number }[];
}

export interface CheckinConflict {
  ticket_id: string;
  seat_id: string;
  first_gate: string;
  first_at: string;
  second_gate: string;
  second_at: string;
  second_device: string;
  second_offline: boolean;
}

const orderPath = (id: string): string => `/api/admin/orders/${encodeURIComponent(id)}`;

export function adminApi(token: string) {
  return {
    stats: (signal?: AbortSignal): Promise<Stats> => requestJson('GET', '/api/admin/stats', { token, signal }),
    // The admin views: drafts too.
    events: (): Promise<EventSummary[]> => requestJson('GET', '/api/admin/events', { token }),
    event: (id: number): Promise<EventDetail> => requestJson('GET', `/api/admin/events/${id}`, { token }),
    createEvent: (spec: EventCreate): Promise<EventDetail> => requestJson('POST', '/api/admin/events', { token, body: spec }),
    patchEvent: (id: number, patch: EventPatch): Promise<EventDetail> =>
      requestJson('PATCH', `/api/admin/events/${id}`, { token, body: patch }),
    broadcast: (text: string, level: AnnouncementLevel, eventId: number | null): Promise<Announcement> =>
      requestJson('POST', '/api/admin/broadcast', {
        token,
        body: eventId === null ? { text, level } : { text, level, event_id: eventId },
      }),
    // The order desk.
    searchOrders: (q: string): Promise<Order[]> => requestJson('GET', `/api/admin/orders?q=${encodeURIComponent(q)}`, { token }),
    orderFile: (id: string): Promise<OrderFile> => requestJson('GET', orderPath(id), { token }),
    cancelOrder: (id: string, reason: string): Promise<Order> => requestJson('POST', `${orderPath(id)}/cancel`, { token, body: { reason } }),
    resend: (id: string, reason: string, email: string | null): Promise<Order> =>
      requestJson('POST', `${orderPath(id)}/resend`, { token, body: email ? { reason, email } : { reason } }),
    refundManually: (id: string, reason: string): Promise<RefundRecord> => requestJson('POST', `${orderPath(id)}/refund/manual`, { token, body: { reason } }),
    audit: (): Promise<AuditEntry[]> => requestJson('GET', '/api/admin/audit?limit=50', { token }),
    // Door check-in.
    checkinConflicts: (eventId: number): Promise<CheckinConflict[]> =>
      requestJson('GET', `/api/admin/events/${eventId}/checkin/conflicts`, { token }),
    checkinProgress: (eventId: number): Promise<CheckinProgress> => requestJson('GET', `/api/admin/events/${eventId}/checkin`, { token }),
  };
}

export type AdminApi = ReturnType<typeof adminApi>;
