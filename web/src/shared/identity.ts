// The audience's identity: a customer signed in by e-mail (POST /api/auth/email/token), else one
// guest token (POST /api/auth/guest); both kept in localStorage and used as the Bearer token for
// REST and as the STOMP CONNECT passcode.
//
// A kept token can stop working (it expired, the customer signed out everywhere, or the server's
// secret changed with a fresh database): REST answers 401, STOMP answers ERROR "authentication
// failed". Either way the caller invalidates it and the next `userToken()` falls back to (or
// fetches) a guest identity.

import { requestJson } from './http';
import { load, save } from './storage';
import type { CustomerToken, Guest } from './types';

const KEY = 'guest';
const CUSTOMER = 'customer';
/** Renew this long before the token's own expiry, so a long session never sends a dead one. */
const MARGIN_MS = 5 * 60 * 1000;

let pending: Promise<Guest> | null = null;

function usable<T extends { token: string; expires_at: string }>(kept: T | null): kept is T {
  if (!kept || typeof kept.token !== 'string') return false;
  const expires = Date.parse(kept.expires_at);
  return Number.isNaN(expires) || expires - MARGIN_MS > Date.now();
}

/** The kept guest identity without any request (null when there is none yet). */
export function currentGuest(): Guest | null {
  const guest = load<Guest>(KEY);
  return usable(guest) ? guest : null;
}

/** The customer signed in by e-mail in this browser, if any. */
export function currentCustomer(): CustomerToken | null {
  const customer = load<CustomerToken>(CUSTOMER);
  return usable(customer) ? customer : null;
}

const listeners = new Set<() => void>();

/** Call `listener` when the customer signs in or out (pages re-read their orders). */
export function onIdentityChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function signedIn(customer: CustomerToken): void {
  save(CUSTOMER, customer);
  for (const listener of listeners) listener();
}

export function signOut(): void {
  save(CUSTOMER, null);
  for (const listener of listeners) listener();
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

/** The token to act with: the signed-in customer's, else the guest's. */
export async function userToken(): Promise<string> {
  return currentCustomer()?.token ?? (await guestToken());
}

/** Forget a token the server refused (only if it is still the kept one). */
export function invalidateToken(token: string): void {
  if (load<Guest>(KEY)?.token === token) save(KEY, null);
  if (load<CustomerToken>(CUSTOMER)?.token === token) signOut();
}
