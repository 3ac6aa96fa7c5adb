// The audience app's REST calls (SPEC §5). Calls that need a user send the guest token; a 401
// means the kept token died (expired, or a server with a new secret), so it is replaced once.

import { ApiError, requestJson, type RequestOptions } from '../shared/http';
import { guestToken, invalidateGuest } from '../shared/identity';
import type { BestAvailableRequest, EventDetail, EventSummary, Hold, Order, QueuePosition, TicketCheck } from '../shared/types';
import { bestAvailableBody } from './bestAvailable';

async function asGuest<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const token = await guestToken();
  try {
    return await requestJson<T>(method, path, { ...options, token });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    invalidateGuest(token);
    return requestJson<T>(method, path, { ...options, token: await guestToken() });
  }
}

const eventPath = (id: number): string => `/api/events/${encodeURIComponent(id)}`;

export const api = {
  events: (): Promise<EventSummary[]> => requestJson('GET', '/api/events'),

  event: (id: number, signal?: AbortSignal): Promise<EventDetail> =>
    requestJson('GET', eventPath(id), { signal }),

  joinQueue: (id: number): Promise<QueuePosition> => asGuest('POST', `${eventPath(id)}/queue`),

  /** Where the user stands; null when they never joined (the API's 404). */
  queueMe: async (id: number): Promise<QueuePosition | null> => {
    try {
      return await asGuest<QueuePosition>('GET', `${eventPath(id)}/queue/me`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404 && error.kind === 'not_found') return null;
      throw error;
    }
  },

  hold: (id: number, seats: string[], admissionToken: string | null): Promise<Hold> =>
    asGuest('POST', `${eventPath(id)}/holds`, {
      body: { seats },
      headers: admissionToken ? { 'X-Admission-Token': admissionToken } : {},
    }),

  /** The server picks and holds `request.count` adjacent seats (SPEC §5). */
  holdBest: (id: number, request: BestAvailableRequest, admissionToken: string | null): Promise<Hold> =>
    asGuest('POST', `${eventPath(id)}/holds`, {
      body: bestAvailableBody(request),
      headers: admissionToken ? { 'X-Admission-Token': admissionToken } : {},
    }),

  getHold: (holdId: string): Promise<Hold> => asGuest('GET', `/api/holds/${encodeURIComponent(holdId)}`),

  release: (holdId: string): Promise<void> => asGuest('DELETE', `/api/holds/${encodeURIComponent(holdId)}`),

  checkout: (holdId: string, cardToken: string, idempotencyKey: string): Promise<Order> =>
    asGuest('POST', `/api/holds/${encodeURIComponent(holdId)}/checkout`, {
      body: { payment: { method: 'card', token: cardToken } },
      headers: { 'Idempotency-Key': idempotencyKey },
    }),

  order: (orderId: string): Promise<Order> => asGuest('GET', `/api/orders/${encodeURIComponent(orderId)}`),

  ticket: (code: string): Promise<TicketCheck> => requestJson('GET', `/api/tickets/${encodeURIComponent(code)}`),
};

export const qrUrl = (code: string): string => `/api/tickets/${encodeURIComponent(code)}/qr.svg`;
