import { describe, expect, it } from 'vitest';

import type { EventSummary } from '../shared/types';
import { isOnSale, nextSaleChange, saleLabel } from './sale';

const BASE: EventSummary = {
  id: 1,
  name: 'x',
  venue: 'y',
  starts_at: '2030-05-01T19:30:00Z',
  sale_opens_at: '2030-04-01T00:00:00Z',
  sale_closes_at: '2030-05-01T18:00:00Z',
  timezone: 'Europe/Berlin',
  status: 'on_sale',
  on_sale: false,
  waiting_room: false,
  seat_count: 1,
  hold_ttl_s: 300,
  max_seats_per_user: 4,
  tiers: [],
};
const NOW = Date.parse('2030-03-01T00:00:00Z');

describe('saleLabel', () => {
  it('says how the sale stands', () => {
    expect(saleLabel({ ...BASE, on_sale: true }, NOW).text).toBe('On sale');
    expect(saleLabel({ ...BASE, status: 'paused' }, NOW).text).toBe('Sale paused');
    expect(saleLabel({ ...BASE, status: 'closed' }, NOW).tone).toBe('off');
    expect(saleLabel(BASE, Date.parse('2030-06-01T00:00:00Z')).text).toBe('Sale closed');
    expect(saleLabel({ ...BASE, status: 'draft' }, NOW).text).toBe('Coming soon');
    expect(saleLabel(BASE, NOW).text).toMatch(/^Sale opens /);
  });

  it("names the opening on the venue's clock, with its zone", () => {
    expect(saleLabel(BASE, NOW).text).toBe('Sale opens Mon, 1 Apr 2030, 02:00 CEST');
    expect(saleLabel({ ...BASE, timezone: 'America/New_York' }, NOW).text).toBe('Sale opens Sun, 31 Mar 2030, 20:00 GMT-4');
  });
});

describe('isOnSale', () => {
  it('follows the clock past the opening time of a page left open', () => {
    expect(isOnSale(BASE, NOW)).toBe(false);
    expect(isOnSale(BASE, Date.parse('2030-04-02T00:00:00Z'))).toBe(true);
    expect(isOnSale({ ...BASE, status: 'paused' }, Date.parse('2030-04-02T00:00:00Z'))).toBe(false);
  });
});

describe('the clock alone', () => {
  const OPENED = Date.parse('2030-04-02T00:00:00Z');
  const CLOSED = Date.parse('2030-06-01T00:00:00Z');

  it('turns a page loaded before the opening to "On sale" once it passed', () => {
    expect(saleLabel(BASE, OPENED).text).toBe('On sale');
  });

  it('ends a sale loaded as on sale at its closing time', () => {
    const loaded = { ...BASE, on_sale: true };
    expect(isOnSale(loaded, CLOSED)).toBe(false);
    expect(saleLabel(loaded, CLOSED).text).toBe('Sale closed');
  });

  it('is on sale before the opening by this clock when the server says so (a clock running late)', () => {
    expect(isOnSale({ ...BASE, on_sale: true }, NOW)).toBe(true);
  });

  it('names the next opening or closing time ahead of now', () => {
    const other = { ...BASE, id: 2, sale_opens_at: '2030-03-15T00:00:00Z' };
    expect(nextSaleChange([BASE, other], NOW)).toBe(Date.parse('2030-03-15T00:00:00Z'));
    expect(nextSaleChange([BASE], OPENED)).toBe(Date.parse(BASE.sale_closes_at));
    expect(nextSaleChange([BASE], CLOSED)).toBeNull();
    expect(nextSaleChange([], NOW)).toBeNull();
  });
});
