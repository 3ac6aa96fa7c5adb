// The audience's identity: one guest token (POST /api/auth/guest), kept in localStorage and used
// as the Bearer token for REST and as the STOMP CONNECT passcode.
//
// A kept token can stop working (it expired, or the server's secret changed with a fresh
// database): REST answers 401, STOMP answers ERROR "authentication failed". Either way the
// caller invalidates it and the next `guestToken()` fetches a new identity.

import { requestJson } from './http';
import { load, save } from './storage';
import type { Guest } from './types';

const KEY = 'guest';
/** Renew this long before the token's own expiry, so a long session never sends a dead one. */
const MARGIN_MS = 5 * 60 * 1000;

let pending: Promise<Guest> | null = null;

function usable(guest: Guest | null): guest is Guest {
  if (!guest || typeof guest.token !== 'string') return false;
  const expires = Date.parse(guest.expires_at);
  return Number.isNaN(expires) || expires - MARGIN_MS > Date.now();
}

/** The kept guest identity without any request (null when there is none yet). */
export function currentGuest(): Guest | null {
  const guest = load<Guest>(KEY);
  return usable(guest) ? guest : null;
}

/** The guest identity, created once (concurrent callers share one request). */
export async function guest(): Promise<Guest> {
  const kept = currentGuest();
  if (kept) return kept;
  pending ??= requestJson<Guest>('POST', '/api/auth/guest')
    .then((created) => {
      save(KEY, created);
      return created;
    })
    .finally(() => {
      pending = null;
    });
  return pending;
}

export async function guestToken(): Promise<string> {
  return (await guest()).token;
}

/** Forget a token the server refused (only if it is still the kept one). */
export function invalidateGuest(token: string): void {
  if (load<Guest>(KEY)?.token === token) save(KEY, null);
}
