import { describe, expect, it } from 'vitest';

import { ApiError } from '../shared/http';
import type { EventCreate } from '../shared/types';
import { deskLabels, describeRefusal, eventLabels, refusalLines } from './fieldLabels';

const spec: EventCreate = {
  name: 'Gala',
  venue: 'Hall',
  starts_at: '2030-05-01T18:00:00.000Z',
  sale_opens_at: '2030-04-01T08:00:00.000Z',
  sale_closes_at: '2030-05-01T17:00:00.000Z',
  status: 'on_sale',
  waiting_room: false,
  layout: {
    tiers: [
      { name: 'Premium', price_cents: 20_000_000, currency: 'EUR' },
      { name: 'Standard', price_cents: 7500, currency: 'EUR' },
    ],
    sections: [{ name: 'STALLS', rows: 300, seats_per_row: 40, tier: 'Premium' }],
  },
};

/** The server's 422 for a request body that does not match its schema (server/bodies.py). */
const schema = (...errors: { loc: (string | number)[]; msg: string }[]) =>
  new ApiError({
    status: 422,
    kind: 'validation',
    title: 'Unprocessable Entity',
    detail: 'the request body does not match the schema',
    errors: errors.map((e) => ({ ...e, type: 'x' })),
  });

describe('a refusal in the form’s words', () => {
  it('names the form’s label, not the API’s field', () => {
    const error = schema(
      { loc: ['admission_rate'], msg: 'Input should be less than or equal to 10000' },
      { loc: ['max_active_shoppers'], msg: 'Input should be greater than or equal to 1' },
      { loc: ['pow_difficulty'], msg: 'Input should be less than or equal to 32' },
    );
    expect(refusalLines(error, eventLabels({ admission_rate: 20000 }))).toEqual([
      'Admissions / s must be at most 10,000.',
      'Max shoppers must be at least 1.',
      'Proof of work (bits) must be at most 32.',
    ]);
  });

  it('says amounts in the currency’s units, naming the tier', () => {
    const error = schema({ loc: ['layout', 'tiers', 0, 'price_cents'], msg: 'Input should be less than or equal to 10000000' });
    const text = describeRefusal(error, eventLabels(spec));
    expect(text).toBe('Price (EUR) of tier Premium must be at most €100,000.');
    expect(text).not.toMatch(/price_cents|10000000/);
    const below = schema({ loc: ['body', 'layout', 'tiers', 1, 'price_cents'], msg: 'Input should be greater than or equal to 0' });
    expect(describeRefusal(below, eventLabels(spec))).toBe('Price (EUR) of tier Standard must be at least €0.');
  });

  it('names sections by what was sent', () => {
    const error = schema({ loc: ['layout', 'sections', 0, 'rows'], msg: 'Input should be less than or equal to 200' });
    expect(describeRefusal(error, eventLabels(spec))).toBe('Rows of section STALLS must be at most 200.');
  });

  it('puts labels in place of field names in the server’s own sentences', () => {
    const invalid = new ApiError({ status: 422, kind: 'invalid', detail: 'admission_rate_min (50) must not exceed admission_rate_max (10)' });
    expect(describeRefusal(invalid, eventLabels())).toBe('“Min / s” (50) must not exceed “Max / s” (10).');
    const rule = schema({ loc: [], msg: 'Value error, sale_closes_at must be after sale_opens_at' });
    expect(describeRefusal(rule, eventLabels(spec))).toBe('“Sale closes” must be after “Sale opens”.');
  });

  it('words the common schema messages', () => {
    const error = schema(
      { loc: ['name'], msg: 'String should have at most 200 characters' },
      { loc: ['venue'], msg: 'Field required' },
      { loc: ['admission_mode'], msg: "Input should be 'fixed' or 'adaptive'" },
    );
    expect(refusalLines(error, eventLabels())).toEqual([
      'Name is at most 200 characters.',
      'Venue is required.',
      "Mode: Input should be 'fixed' or 'adaptive'.",
    ]);
  });

  it('keeps a field no form sends under its own name, and counts what it does not spell out', () => {
    expect(describeRefusal(schema({ loc: ['colour'], msg: 'Extra inputs are not permitted' }), eventLabels())).toBe('colour: Extra inputs are not permitted.');
    const many = schema(...Array.from({ length: 7 }, () => ({ loc: ['venue'], msg: 'Field required' })));
    expect(refusalLines(many, eventLabels()).at(-1)).toBe('And 2 more.');
  });

  it('labels the order desk’s fields too', () => {
    expect(describeRefusal(schema({ loc: ['reason'], msg: 'String should have at most 2000 characters' }), deskLabels)).toBe(
      'Reason is at most 2,000 characters.',
    );
  });

  it('leaves other refusals and failures in their own words', () => {
    expect(describeRefusal(new ApiError({ status: 409, kind: 'sale_closed', detail: 'The event is not on sale now.' }), eventLabels())).toBe(
      'The event is not on sale now.',
    );
    const offline = new ApiError({ status: 0, kind: 'network', detail: 'Could not reach the server (boom). Check your connection and try again.' });
    expect(describeRefusal(offline, eventLabels())).toBe('Could not reach the server (boom). Check your connection and try again.');
    expect(describeRefusal(new Error('boom'), eventLabels())).toBe('boom');
  });
});
