import { describe, expect, it } from 'vitest';

import { buildEvent, defaultForm, defaultTimes, seatCount, wallZoneName, type EventForm } from './eventForm';

function form(overrides: Partial<EventForm> = {}): EventForm {
  return { ...defaultForm(new Date('2030-05-01T12:00:00Z'), 'Europe/Berlin'), name: 'Gala', venue: 'Hall', ...overrides };
}

describe('buildEvent', () => {
  it('turns the default form into a valid request body', () => {
    const built = buildEvent(form());
    expect(built.ok).toBe(true);
    if (!built.ok) return;
    expect(built.spec.layout.tiers).toEqual([
      { name: 'Premium', price_cents: 12000, currency: 'EUR' },
      { name: 'Standard', price_cents: 7500, currency: 'EUR' },
    ]);
    expect(built.spec.layout.sections[0]).toEqual({ name: 'STALLS', rows: 20, seats_per_row: 40, tier: 'Premium' });
    expect(built.spec.starts_at).toMatch(/Z$/);
    expect(built.spec.waiting_room).toBe(false);
    expect(built.spec.admission_rate).toBeUndefined();
  });

  it('converts prices with cents exactly', () => {
    const built = buildEvent(form({ tiers: [{ name: 'A', price: '39.90' }], sections: [{ name: 'S', rows: '1', seatsPerRow: '1', tier: 'A' }] }));
    expect(built.ok && built.spec.layout.tiers[0]?.price_cents).toBe(3990);
  });

  it('sends the waiting-room pacing only when the waiting room is on', () => {
    const built = buildEvent(form({ waitingRoom: true, admissionRate: '2.5', maxActiveShoppers: '50', holdTtl: '120', maxSeatsPerUser: '6' }));
    expect(built.ok).toBe(true);
    if (!built.ok) return;
    expect(built.spec).toMatchObject({ waiting_room: true, admission_rate: 2.5, max_active_shoppers: 50, hold_ttl_s: 120, max_seats_per_user: 6 });
  });

  it('sends the waiting-room mode, its bounds and the proof-of-work difficulty', () => {
    const built = buildEvent(
      form({ waitingRoom: true, admissionMode: 'adaptive', admissionRateMin: '2', admissionRateMax: '80', powDifficulty: '18' }),
    );
    expect(built.ok).toBe(true);
    if (!built.ok) return;
    expect(built.spec).toMatchObject({ admission_mode: 'adaptive', admission_rate_min: 2, admission_rate_max: 80, pow_difficulty: 18 });
    const fixed = buildEvent(form({ waitingRoom: true }));
    expect(fixed.ok && fixed.spec).toMatchObject({ admission_mode: 'fixed', pow_difficulty: 0 });
    expect(fixed.ok && fixed.spec.admission_rate_min).toBeUndefined();
  });

  it('refuses adaptive bounds the wrong way round and a difficulty out of range', () => {
    const built = buildEvent(
      form({ waitingRoom: true, admissionMode: 'adaptive', admissionRateMin: '50', admissionRateMax: '5', powDifficulty: '40' }),
    );
    expect(built.ok).toBe(false);
    if (built.ok) return;
    expect(built.errors).toEqual(
      expect.arrayContaining(['The minimum rate must not exceed the maximum.', 'Proof-of-work difficulty is a whole number from 0 to 32 bits.']),
    );
  });

  it('lists every problem instead of sending a doomed request', () => {
    const built = buildEvent(
      form({
        name: ' ',
        saleClosesAt: '2000-01-01T00:00',
        tiers: [{ name: 'A', price: '-1' }],
        sections: [{ name: 'bad name', rows: '0', seatsPerRow: '600', tier: 'Nope' }],
        holdTtl: '5',
      }),
    );
    expect(built.ok).toBe(false);
    if (built.ok) return;
    expect(built.errors).toEqual(
      expect.arrayContaining([
        'Name is required.',
        'The sale must close after it opens.',
        'Tier A needs a price of 0 or more.',
        'Section 1: the name is 1–16 letters or digits.',
        'Section bad name: rows must be 1–200.',
        'Section bad name: seats per row must be 1–500.',
        'Section bad name: choose one of the tiers.',
        'Hold time must be 10–3600 seconds.',
      ]),
    );
  });

  it('counts seats as sections × rows × seats', () => {
    expect(seatCount(form())).toBe(20 * 40 + 10 * 40);
  });
});

describe("the venue's time zone", () => {
  it('sends the zone and reads the times on its clock', () => {
    const built = buildEvent(form({ startsAt: '2030-06-06T19:00', saleOpensAt: '2030-01-15T10:00', saleClosesAt: '2030-06-06T18:00' }));
    expect(built.ok).toBe(true);
    if (!built.ok) return;
    expect(built.spec).toMatchObject({
      timezone: 'Europe/Berlin',
      starts_at: '2030-06-06T17:00:00.000Z', // CEST
      sale_opens_at: '2030-01-15T09:00:00.000Z', // CET
      sale_closes_at: '2030-06-06T16:00:00.000Z',
    });
    const newYork = buildEvent(form({ timeZone: 'America/New_York', startsAt: '2030-06-06T19:00' }));
    expect(newYork.ok && newYork.spec).toMatchObject({ timezone: 'America/New_York', starts_at: '2030-06-06T23:00:00.000Z' });
  });

  it('refuses a zone the browser does not know', () => {
    const built = buildEvent(form({ timeZone: 'Mars/Olympus_Mons' }));
    expect(built.ok).toBe(false);
    expect(!built.ok && built.errors).toContain('Time zone is an IANA name such as Europe/Berlin.');
  });

  it('defaults to the show at 20:00 and a sale open from a minute ago, on the chosen clock', () => {
    const now = new Date('2030-05-01T12:00:00Z');
    expect(defaultTimes(now, 'Europe/Berlin')).toEqual({ startsAt: '2030-05-31T20:00', saleOpensAt: '2030-05-01T13:59', saleClosesAt: '2030-05-31T20:00' });
    expect(defaultTimes(now, 'America/New_York')).toEqual({ startsAt: '2030-05-31T20:00', saleOpensAt: '2030-05-01T07:59', saleClosesAt: '2030-05-31T20:00' });
    expect(defaultForm(now, 'UTC').timeZone).toBe('UTC');
  });

  it("labels a typed time with the zone's name at that time", () => {
    expect(wallZoneName('2030-06-06T19:00', 'Europe/Berlin')).toBe('CEST');
    expect(wallZoneName('2030-01-06T19:00', 'Europe/Berlin')).toBe('CET');
    expect(wallZoneName('2030-01-06T19:00', 'UTC')).toBe('UTC');
  });
});
