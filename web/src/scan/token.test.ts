import { describe, expect, it } from 'vitest';

import { ApiError } from '../shared/http';
import { toBase64Url } from './codes';
import { eventFor, isTokenRefused, readClaims, tokenInHash } from './token';

/** A token shaped like the server's (header.claims.signature); the page never checks the signature. */
function token(claims: Record<string, unknown>): string {
  const part = (value: unknown) => toBase64Url(new TextEncoder().encode(JSON.stringify(value)));
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub: 'scanner:3', role: 'scanner', ...claims })}.c2ln`;
}

describe('scanner tokens', () => {
  it('reads the gate and the bound event', () => {
    expect(readClaims(token({ gate: 'North', evt: 12 }))).toEqual({ gate: 'North', eventId: 12 });
    expect(readClaims(token({ gate: 'South' }))).toEqual({ gate: 'South', eventId: null });
  });

  it('names nothing for junk or odd claims', () => {
    expect(readClaims('not-a-real-token')).toEqual({ gate: null, eventId: null });
    expect(readClaims('a.%%%.c')).toEqual({ gate: null, eventId: null });
    expect(readClaims(token({ gate: 7, evt: '12' }))).toEqual({ gate: null, eventId: null });
    expect(readClaims(token({ evt: 0 })).eventId).toBeNull();
  });

  it('a bound token decides the event at every sign-in, whatever was chosen before', () => {
    expect(eventFor(token({ evt: 12 }), null)).toBe(12);
    expect(eventFor(token({ evt: 12 }), 5)).toBe(12);
  });

  it('any other token keeps the event chosen on the device, or asks for one', () => {
    expect(eventFor(token({ gate: 'East' }), 5)).toBe(5);
    expect(eventFor(token({ gate: 'East' }), null)).toBeNull();
    expect(eventFor(null, 5)).toBeNull();
  });

  it('only a 401 is a refused token', () => {
    const problem = (status: number) => new ApiError({ type: 'about:blank', title: 'x', status, detail: 'the token is not valid: revoked' });
    expect(isTokenRefused(problem(401))).toBe(true);
    expect(isTokenRefused(problem(403))).toBe(false);
    expect(isTokenRefused(problem(409))).toBe(false);
    expect(isTokenRefused(new TypeError('Failed to fetch'))).toBe(false);
  });

  it('reads the token a scanner link carries', () => {
    expect(tokenInHash('#token=abc.def.ghi')).toBe('abc.def.ghi');
    expect(tokenInHash('#gate=1&token=abc%2Edef')).toBe('abc.def');
    expect(tokenInHash('#token=abc&x=1')).toBe('abc');
    expect(tokenInHash('')).toBeNull();
    expect(tokenInHash('#token=')).toBeNull();
    expect(tokenInHash('#mytoken=abc')).toBeNull();
    expect(tokenInHash('#token=%E0%A4%A')).toBeNull();
  });
});
