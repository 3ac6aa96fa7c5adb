import { describe, expect, it } from 'vitest';

import { dateTime, exactDuration, waitEstimate, zoneName } from './format';

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
