// The admin console's REST calls (SPEC §5, role admin), each with the pasted token.

import { requestJson } from '../shared/http';
import type { Announcement, AnnouncementLevel, EventCreate, EventDetail, EventPatch, EventSummary, Stats } from '../shared/types';

export function adminApi(token: string) {
  return {
    stats: (signal?: AbortSignal): Promise<Stats> => requestJson('GET', '/api/admin/stats', { token, signal }),
    events: (): Promise<EventSummary[]> => requestJson('GET', '/api/events', { token }),
    event: (id: number): Promise<EventDetail> => requestJson('GET', `/api/events/${id}`, { token }),
    createEvent: (spec: EventCreate): Promise<EventDetail> => requestJson('POST', '/api/admin/events', { token, body: spec }),
    patchEvent: (id: number, patch: EventPatch): Promise<EventDetail> =>
      requestJson('PATCH', `/api/admin/events/${id}`, { token, body: patch }),
    broadcast: (text: string, level: AnnouncementLevel, eventId: number | null): Promise<Announcement> =>
      requestJson('POST', '/api/admin/broadcast', {
        token,
        body: eventId === null ? { text, level } : { text, level, event_id: eventId },
      }),
  };
}

export type AdminApi = ReturnType<typeof adminApi>;
