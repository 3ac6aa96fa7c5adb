// The audience app's REST calls (SPEC §5). Calls that need a user send the signed-in customer's
// token, else the guest's; a 401 means the kept token died (expired, signed out everywhere, or a
// server with a new secret), so it is dropped and the call made once more (as a guest).
// An order opened from its e-mailed link sends the link's key (X-Order-Key) instead.

import { ApiError, DEFAULT_TIMEOUT_MS, NETWORK, requestJson, type RequestOptions } from '../shared/http';
import { invalidateToken, userToken } from '../shared/identity';
import type { BestAvailableRequest, CustomerToken, EventDetail, EventSummary, Hold, Order, QueuePosition, TicketCheck } from '../shared/types';
import { bestAvailableBody } from './bestAvailable';

async function asGuest<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const token = await userToken();
  try {
    return await requestJson<T>(method, path, { ...options, token });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    invalidateToken(token);
    return requestJson<T>(method, path, { ...options, token: await userToken() });
  }
}

/** An order's calls: with the e-mailed link's key when the page has one, else as the user. */
function asOrderReader<T>(method: string, path: string, key: string | null): Promise<T> {
  if (key) return requestJson<T>(method, path, { headers: { 'X-Order-Key': key } });
  return asGuest<T>(method, path);
}

const orderPath = (id: string): string => `/api/orders/${encodeURIComponent(id)}`;

const eventPath = (id: number): string => `/api/events/${encodeURIComponent(id)}`;

export const api = {
  events: (): Promise<EventSummary[]> => requestJson('GET', '/api/events'),

  event: (id: number, signal?: AbortSignal): Promise<EventDetail> =>
    requestJson('GET', eventPath(id), { signal }),

  joinQueue: (id: number, proof?: string): Promise<QueuePosition> =>
    asGuest('POST', `${eventPath(id)}/queue`, proof ? { headers: { 'X-Queue-Proof': proof } } : {}),

  /** A proof-of-work challenge for joining (events with `pow_difficulty` > 0). */
  queueChallenge: (id: number): Promise<{ challenge: string; difficulty: number; expires_at: string }> =>
    asGuest('POST', `${eventPath(id)}/queue/challenge`),

  /** Where the user stands; null when they never joined (the API's `not_joined` state). */
  queueMe: async (id: number): Promise<QueuePosition | null> => {
    const position = await asGuest<QueuePosition>('GET', `${eventPath(id)}/queue/me`);
    return position.state === 'not_joined' ? null : position;
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

  checkout: (holdId: string, cardToken: string, idempotencyKey: string, email: string): Promise<Order> =>
    asGuest('POST', `/api/holds/${encodeURIComponent(holdId)}/checkout`, {
      body: { payment: { method: 'card', token: cardToken }, email },
      headers: { 'Idempotency-Key': idempotencyKey },
    }),

  order: (orderId: string, key: string | null = null): Promise<Order> => asOrderReader('GET', orderPath(orderId), key),

  cancelOrder: (orderId: string, key: string | null = null): Promise<Order> => asOrderReader('POST', `${orderPath(orderId)}/cancel`, key),

  /** The caller's orders: bought here, and (signed in) every order bought for the address. */
  myOrders: (): Promise<Order[]> => asGuest('GET', '/api/orders'),

  /** The tickets' PDF as a file (fetched with the credentials, then handed to the browser). */
  ticketsPdf: async (orderId: string, key: string | null = null): Promise<Blob> => {
    const headers: Record<string, string> = key ? { 'X-Order-Key': key } : { Authorization: `Bearer ${await userToken()}` };
    let response: Response;
    try {
      response = await fetch(`${orderPath(orderId)}/tickets.pdf`, { headers, signal: AbortSignal.timeout(DEFAULT_TIMEOUT_MS) });
    } catch (error) {
      throw new ApiError({ status: 0, kind: NETWORK, title: 'Network error', detail: `Could not download the PDF (${String(error)}).` });
    }
    if (!response.ok) {
      const problem = (await response.json().catch(() => ({}))) as { detail?: string; kind?: string };
      throw new ApiError({ status: response.status, kind: problem.kind, detail: problem.detail ?? `download failed (${response.status})` });
    }
    return response.blob();
  },

  requestSignIn: (email: string): Promise<{ detail: string; expires_in_s: number }> => requestJson('POST', '/api/auth/email', { body: { email } }),

  signInWithLink: (link: string): Promise<CustomerToken> => requestJson('POST', '/api/auth/email/token', { body: { link } }),

  signInWithCode: (email: string, code: string): Promise<CustomerToken> => requestJson('POST', '/api/auth/email/token', { body: { email, code } }),

  signOutEverywhere: (token: string): Promise<void> => requestJson('POST', '/api/auth/revoke', { token }),

  ticket: (code: string): Promise<TicketCheck> => requestJson('GET', `/api/tickets/${encodeURIComponent(code)}`),
};

export const qrUrl = (code: string): string => `/api/tickets/${encodeURIComponent(code)}/qr.svg`;
