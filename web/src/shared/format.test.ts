import { describe, expect, it } from 'vitest';

import { dateTime, eventDateTime, eventZone, exactDuration, waitEstimate, zoneName } from './format';

describe('durations', () => {
  it('a hold under a minute is said in seconds', () => {
    expect(exactDuration(45)).toBe('45 seconds');
    expect(exactDuration(1)).toBe('1 second');
    expect(exactDuration(60)).toBe('1 minute');
    expect(exactDuration(300)).toBe('5 minutes');
    expect(exactDuration(150)).toBe('2 minutes 30 seconds');
  });

  it('an unknown wait is "unknown", never "under a minute"', () => {
    expect(waitEstimate(null)).toBe('unknown');
    expect(waitEstimate(undefined)).toBe('unknown');
    expect(waitEstimate(Number.NaN)).toBe('unknown');
    expect(waitEstimate(20)).toBe('under a minute');
    expect(waitEstimate(180)).toBe('about 3 minutes');
  });
});

describe('times with their zone', () => {
  it('without `zone` a time reads as before (the audience app)', () => {
    expect(dateTime('2026-01-06T13:03:00Z', { timeZone: 'Europe/Berlin' })).toBe('Tue, 6 Jan 2026, 14:03');
  });

  it('with `zone` it names the zone in force at that instant, or its UTC offset', () => {
    expect(dateTime('2026-01-06T13:03:00Z', { zone: true, timeZone: 'Europe/Berlin' })).toBe('Tue, 6 Jan 2026, 14:03 CET');
    expect(dateTime('2026-07-06T13:03:00Z', { zone: true, timeZone: 'Europe/Berlin' })).toBe('Mon, 6 Jul 2026, 15:03 CEST');
    expect(dateTime('2026-01-06T13:03:00Z', { zone: true, timeZone: 'UTC' })).toBe('Tue, 6 Jan 2026, 13:03 UTC');
    expect(dateTime('2026-01-06T13:03:00Z', { zone: true, timeZone: 'America/New_York' })).toBe('Tue, 6 Jan 2026, 08:03 GMT-5');
    expect(dateTime('2026-01-06T13:03:27Z', { zone: true, seconds: true, timeZone: 'UTC' })).toBe('Tue, 6 Jan 2026, 13:03:27 UTC');
  });

  it('an unreadable time is shown as sent', () => {
    expect(dateTime('soon', { zone: true })).toBe('soon');
  });

  it('the zone of a local time, for labelling inputs', () => {
    expect(zoneName(new Date('2026-01-06T13:03:00Z'), 'Europe/Berlin')).toBe('CET');
    expect(zoneName('2026-07-06T12:00', 'Europe/Berlin')).toBe('CEST');
    expect(zoneName('', 'UTC')).toBe('UTC');
  });
});

describe("an event's times, on the venue's clock", () => {
  const berlin = { timezone: 'Europe/Berlin' };

  it('are shown in the event\'s zone, naming it', () => {
    expect(eventDateTime('2026-06-06T17:00:00Z', berlin)).toBe('Sat, 6 Jun 2026, 19:00 CEST');
    expect(eventDateTime('2026-01-15T19:00:00Z', berlin)).toBe('Thu, 15 Jan 2026, 20:00 CET');
    expect(eventDateTime('2026-06-06T17:00:00Z', { timezone: 'America/New_York' })).toBe('Sat, 6 Jun 2026, 13:00 GMT-4');
    expect(eventDateTime('2026-06-06T17:00:00Z', { timezone: 'UTC' })).toBe('Sat, 6 Jun 2026, 17:00 UTC');
  });

  it("fall back to the browser's zone, still named, for an event without one", () => {
    const browser = dateTime('2026-06-06T17:00:00Z', { zone: true });
    expect(eventDateTime('2026-06-06T17:00:00Z', {})).toBe(browser);
    expect(eventDateTime('2026-06-06T17:00:00Z', null)).toBe(browser);
    expect(eventDateTime('2026-06-06T17:00:00Z', { timezone: 'Mars/Olympus_Mons' })).toBe(browser);
    expect(eventZone({ timezone: 'Mars/Olympus_Mons' })).toBeUndefined();
    expect(eventZone(berlin)).toBe('Europe/Berlin');
  });

  it('an unknown zone never throws from the formatters', () => {
    expect(dateTime('2026-06-06T17:00:00Z', { timeZone: 'Nowhere/Else' })).toBe(dateTime('2026-06-06T17:00:00Z'));
    expect(zoneName('2026-06-06T17:00:00Z', 'Nowhere/Else')).toBe(zoneName('2026-06-06T17:00:00Z'));
  });
});
