// The scanner's token as the page reads it (pure): the gate and the event it names, which event a
// sign-in scans for, and the server's refusal of it.

import { ApiError } from '../shared/http';
import { fromBase64Url } from './codes';

export interface Claims {
  gate: string | null;
  /** The event a bound token may scan for (claim `evt`); null: any event. */
  eventId: number | null;
}

/** The claims the page needs, read without verifying (the server verifies); junk names none. */
export function readClaims(token: string): Claims {
  try {
    const body = JSON.parse(new TextDecoder().decode(fromBase64Url(token.split('.')[1] ?? ''))) as { gate?: unknown; evt?: unknown };
    return {
      gate: typeof body.gate === 'string' ? body.gate : null,
      eventId: typeof body.evt === 'number' && Number.isInteger(body.evt) && body.evt > 0 ? body.evt : null,
    };
  } catch {
    return { gate: null, eventId: null };
  }
}

/**
 * The event a scanner signed in with `token` scans for. A bound token decides it at every
 * sign-in (the first load, or a token pasted after "Sign out" or a refusal); any other token
 * takes the event chosen on this device before, if any (null: ask for one).
 */
export function eventFor(token: string | null, chosen: number | null): number | null {
  if (token === null) return null;
  return readClaims(token).eventId ?? chosen;
}

/**
 * The token a scanner link carries (`/scan#token=<token>`), or null: none, an empty one, or
 * one whose percent-escapes do not decode.
 */
export function tokenInHash(hash: string): string | null {
  const match = /(?:^#?|&)token=([^&]*)/.exec(hash);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1] ?? '').trim() || null;
  } catch {
    return null;
  }
}

/** The server refused the token itself (401: expired, revoked, or not a token at all). */
export function isTokenRefused(caught: unknown): boolean {
  return caught instanceof ApiError && caught.status === 401;
}
