import { describe, expect, it } from 'vitest';

import { ApiError } from '../shared/http';
import type { EventDetail } from '../shared/types';
import { bestAvailableBody, bestAvailableFailure, whereWords } from './bestAvailable';

const EVENT = {
  tiers: [{ id: 3, name: 'Premium', price_cents: 12000, currency: 'EUR' }],
  layout: { sections: [] },
} as unknown as EventDetail;

describe('the best-available request', () => {
  it('carries the count and only the filters that were set', () => {
    expect(bestAvailableBody({ count: 2 })).toEqual({ best_available: { count: 2 } });
    expect(bestAvailableBody({ count: 3, tier: 3, section: 'STALLS', accessible: true })).toEqual({
      best_available: { count: 3, tier: 3, section: 'STALLS', accessible: true },
    });
    expect(bestAvailableBody({ count: 1, section: '', accessible: false })).toEqual({ best_available: { count: 1 } });
  });

  it('words its filters', () => {
    expect(whereWords(EVENT, { count: 2, section: 'STALLS', tier: 3, accessible: true })).toBe('in Stalls, at Premium price, with wheelchair access');
    expect(whereWords(EVENT, { count: 2 })).toBe('');
  });
});

describe('best-available failures', () => {
  const noBlock = new ApiError({ status: 409, kind: 'no_block', detail: 'no 4 adjacent seats left', count: 4 });

  it('a 409 no_block says no block of that size is left', () => {
    expect(bestAvailableFailure(noBlock, EVENT, { count: 4 })).toBe('No 4 seats side by side are left. Try fewer seats, or pick seats on the map.');
    expect(bestAvailableFailure(noBlock, EVENT, { count: 1, tier: 3 })).toBe('No seat is left at Premium price. Try again later, another section or price, or pick seats on the map.');
  });

  it('a 409 conflict (seats taken faster than the server could follow) is worded by the server', () => {
    const busy = new ApiError({ status: 409, kind: 'conflict', detail: 'the seats kept being taken while we tried: try again', conflicts: [] });
    expect(bestAvailableFailure(busy, EVENT, { count: 2 })).toBe('the seats kept being taken while we tried: try again');
  });

  it('other problems are shown as the server words them', () => {
    const limit = new ApiError({ status: 422, kind: 'limit', detail: 'at most 4 seats per user', limit: 4, have: 3 });
    expect(bestAvailableFailure(limit, EVENT, { count: 2 })).toBe('at most 4 seats per user');
  });

  it('a server without best available is named as such', () => {
    const old = new ApiError({ status: 422, kind: 'validation', detail: 'Field required: body.seats; Extra inputs are not permitted: body.best_available' });
    expect(bestAvailableFailure(old, EVENT, { count: 2 })).toBe('This server does not offer best available yet: please pick your seats on the map.');
  });
});
