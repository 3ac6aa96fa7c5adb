import { describe, expect, it } from 'vitest';

import { isKnownZone, utcToZonedWallTime, zoneChoices, zonedWallTimeToUtc, zoneOffsetMs } from './zones';

describe('zonedWallTimeToUtc', () => {
  it('reads a Berlin summer evening with CEST (UTC+2)', () => {
    expect(zonedWallTimeToUtc('2026-06-06T19:00', 'Europe/Berlin')).toBe('2026-06-06T17:00:00.000Z');
  });

  it('reads a Berlin winter evening with CET (UTC+1)', () => {
    expect(zonedWallTimeToUtc('2026-01-15T20:00', 'Europe/Berlin')).toBe('2026-01-15T19:00:00.000Z');
  });

  it('reads New York with EST in winter and EDT in summer', () => {
    expect(zonedWallTimeToUtc('2026-01-15T20:00', 'America/New_York')).toBe('2026-01-16T01:00:00.000Z');
    expect(zonedWallTimeToUtc('2026-07-04T21:30', 'America/New_York')).toBe('2026-07-05T01:30:00.000Z');
  });

  it('reads UTC as it is, seconds included', () => {
    expect(zonedWallTimeToUtc('2026-03-29T02:30', 'UTC')).toBe('2026-03-29T02:30:00.000Z');
    expect(zonedWallTimeToUtc('2026-03-29T02:30:15', 'UTC')).toBe('2026-03-29T02:30:15.000Z');
  });

  it('is exact either side of a change of offset', () => {
    // Berlin springs forward at 01:00Z on 29 March 2026 (02:00 CET → 03:00 CEST).
    expect(zonedWallTimeToUtc('2026-03-29T01:59', 'Europe/Berlin')).toBe('2026-03-29T00:59:00.000Z');
    expect(zonedWallTimeToUtc('2026-03-29T03:00', 'Europe/Berlin')).toBe('2026-03-29T01:00:00.000Z');
    // New York springs forward at 07:00Z on 8 March 2026 (02:00 EST → 03:00 EDT).
    expect(zonedWallTimeToUtc('2026-03-08T01:30', 'America/New_York')).toBe('2026-03-08T06:30:00.000Z');
    expect(zonedWallTimeToUtc('2026-03-08T03:30', 'America/New_York')).toBe('2026-03-08T07:30:00.000Z');
  });

  it('moves a time in the spring-forward gap past it by as much as it was typed into it', () => {
    // 02:30 never happens in Berlin on 29 March 2026: it is read as 03:30 CEST, as Temporal's
    // "compatible" disambiguation (and RFC 5545) read it.
    expect(zonedWallTimeToUtc('2026-03-29T02:30', 'Europe/Berlin')).toBe('2026-03-29T01:30:00.000Z');
    expect(zonedWallTimeToUtc('2026-03-08T02:15', 'America/New_York')).toBe('2026-03-08T07:15:00.000Z');
  });

  it('takes the first of a time that happens twice (falling back)', () => {
    // 02:30 happens twice in Berlin on 25 October 2026: at 00:30Z (CEST) and 01:30Z (CET).
    expect(zonedWallTimeToUtc('2026-10-25T02:30', 'Europe/Berlin')).toBe('2026-10-25T00:30:00.000Z');
    expect(zonedWallTimeToUtc('2026-11-01T01:30', 'America/New_York')).toBe('2026-11-01T05:30:00.000Z');
  });

  it('handles zones off the whole hour and south of the equator', () => {
    expect(zonedWallTimeToUtc('2026-06-06T19:00', 'Asia/Kolkata')).toBe('2026-06-06T13:30:00.000Z');
    expect(zonedWallTimeToUtc('2026-01-10T20:00', 'Australia/Sydney')).toBe('2026-01-10T09:00:00.000Z');
  });

  it('refuses what is not a wall-clock time or a zone', () => {
    expect(() => zonedWallTimeToUtc('', 'UTC')).toThrow(RangeError);
    expect(() => zonedWallTimeToUtc('2026-02-30T10:00', 'UTC')).toThrow(RangeError);
    expect(() => zonedWallTimeToUtc('2026-06-06 19:00', 'UTC')).toThrow(RangeError);
    expect(() => zonedWallTimeToUtc('2026-06-06T19:00', 'Mars/Olympus_Mons')).toThrow(RangeError);
  });

  it('round-trips with utcToZonedWallTime away from the gaps', () => {
    for (const zone of ['Europe/Berlin', 'America/New_York', 'UTC', 'Asia/Kolkata']) {
      for (const wall of ['2026-01-01T00:00', '2026-06-06T19:00', '2026-12-31T23:59']) {
        expect(utcToZonedWallTime(zonedWallTimeToUtc(wall, zone), zone)).toBe(wall);
      }
    }
  });
});

describe('zones', () => {
  it('knows IANA names and UTC, not made-up ones', () => {
    expect(isKnownZone('Europe/Berlin')).toBe(true);
    expect(isKnownZone('UTC')).toBe(true);
    expect(isKnownZone('Mars/Olympus_Mons')).toBe(false);
    expect(isKnownZone('')).toBe(false);
    expect(isKnownZone(undefined)).toBe(false);
  });

  it('offers UTC among the choices (Intl leaves it out), sorted', () => {
    const choices = zoneChoices();
    expect(choices).toContain('UTC');
    expect(choices).toContain('Europe/Berlin');
    expect([...choices].sort()).toEqual(choices);
  });

  it("measures a zone's offset at an instant", () => {
    expect(zoneOffsetMs(Date.parse('2026-06-06T17:00:00.500Z'), 'Europe/Berlin')).toBe(7_200_000);
    expect(zoneOffsetMs(Date.parse('2026-01-06T17:00:00Z'), 'America/New_York')).toBe(-18_000_000);
    expect(utcToZonedWallTime('2026-06-06T17:00:00Z', 'Europe/Berlin')).toBe('2026-06-06T19:00');
  });
});
