import { describe, expect, it } from 'vitest';

import type { EventDetail } from '../shared/types';
import { listInWords, seatsByRow, seatWords, takenMessage, totalOf } from './seats';

const EVENT = {
  id: 1,
  tiers: [
    { id: 1, name: 'Premium', price_cents: 12000, currency: 'EUR' },
    { id: 2, name: 'Value', price_cents: 3950, currency: 'EUR' },
  ],
  layout: {
    sections: [
      { name: 'STALLS', rows: [{ name: 'A', seats: [{ id: 'x91', number: 12, tier_id: 1 }, { id: 'x92', number: 13, tier_id: 2 }] }] },
      { name: 'Upper Circle', rows: [{ name: 'BB', seats: [{ id: 'q1', number: 1, tier_id: 2 }] }] },
    ],
  },
} as unknown as EventDetail;

describe('seats in words', () => {
  it('names seats from the layout, never by their id', () => {
    expect(seatWords(EVENT, 'x91')).toBe('Stalls row A seat 12');
    expect(seatWords(EVENT, 'q1')).toBe('Upper Circle row BB seat 1');
    expect(seatWords(EVENT, 'no-such-seat')).toBe('a seat');
    expect(seatWords(null, 'x91')).toBe('a seat');
  });

  it('lists seats row by row for the sticky bar, where a wrong pick must show', () => {
    expect(seatsByRow(EVENT, ['x91'])).toBe('Stalls row A seat 12');
    expect(seatsByRow(EVENT, ['x92', 'x91'])).toBe('Stalls row A seats 12 and 13');
    expect(seatsByRow(EVENT, ['q1', 'x92', 'x91'])).toBe('Upper Circle row BB seat 1; Stalls row A seats 12 and 13');
    expect(seatsByRow(EVENT, ['x91', 'gone'])).toBe('Stalls row A seat 12; a seat');
    expect(seatsByRow(EVENT, [])).toBe('');
  });

  it('lists several', () => {
    expect(listInWords(EVENT, ['x91', 'x92', 'q1'])).toBe('Stalls row A seat 12, Stalls row A seat 13 and Upper Circle row BB seat 1');
  });

  it('says which seats were taken', () => {
    expect(takenMessage(EVENT, ['x91'])).toBe('Stalls row A seat 12 was just taken — please pick another seat.');
    expect(takenMessage(EVENT, ['x91', 'q1'])).toBe('Stalls row A seat 12 and Upper Circle row BB seat 1 were just taken — please pick other seats.');
  });

  it('adds up prices by tier', () => {
    expect(totalOf(EVENT, ['x91', 'x92'])).toEqual({ cents: 15950, text: '€159.50' });
    expect(totalOf(EVENT, [])).toEqual({ cents: 0, text: '€0' });
  });
});
