// Human text for prices, seats, instants and durations (the audience app and the console share it).

import type { SeatLabel } from '../seatmap/geometry';
import { isKnownZone } from './zones';

const moneyFormats = new Map<string, Intl.NumberFormat>();

/** 12000, "EUR" → "€120"; 7550 → "€75.50" (no ".00" on whole amounts). */
export function money(cents: number, currency: string): string {
  const whole = cents % 100 === 0;
  const key = `${currency}:${whole}`;
  let format = moneyFormats.get(key);
  if (!format) {
    format = new Intl.NumberFormat('en-IE', {
      style: 'currency',
      currency,
      minimumFractionDigits: whole ? 0 : 2,
      maximumFractionDigits: 2,
    });
    moneyFormats.set(key, format);
  }
  return format.format(cents / 100);
}

/** "STALLS" → "Stalls"; names with lower-case letters are kept as the admin typed them. */
export function sectionName(name: string): string {
  return name === name.toUpperCase() ? name.charAt(0) + name.slice(1).toLowerCase() : name;
}

/** "Stalls row A seat 12". */
export function seatName(label: SeatLabel): string {
  return `${sectionName(label.section)} row ${label.row} seat ${label.number}`;
}

/** "STALLS-A-12" → "Stalls row A seat 12", for seat ids outside a loaded layout. */
export function seatIdName(seatId: string): string {
  const parts = seatId.split('-');
  if (parts.length !== 3) return seatId;
  const [section = '', row = '', number = ''] = parts;
  return `${sectionName(section)} row ${row} seat ${number}`;
}

/** "Tue, 6 Jan 2026, 14:03" in the browser's time zone, or in `timeZone` (an IANA name; one
 *  the browser does not know counts as absent); with `seconds`, "…, 14:03:27"; with `zone`, the
 *  zone's short name or its UTC offset as of that instant: "…, 14:03 CET", "…, 15:03 CEST",
 *  "…, 08:03 GMT-5" (the console, whose operators may sit in another zone than the venue, and
 *  every time of an event, always say which). */
export function dateTime(
  iso: string,
  { seconds = false, timeZone, zone = false }: { seconds?: boolean; timeZone?: string | undefined; zone?: boolean } = {},
): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString('en-GB', {
    weekday: 'short',
    day: 'numeric',
    month: 'short',
    year: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    ...(seconds ? { second: '2-digit' } : {}),
    ...(zone ? { timeZoneName: 'short' } : {}),
    timeZone: isKnownZone(timeZone) ? timeZone : undefined,
  });
}

/** Whatever carries an event's zone: the event, or an order kept with it; null while unknown. */
export type Zoned = { timezone?: string | null } | null | undefined;

/** The zone an event's times are shown in: its own (`timezone`, the venue's), or the
 *  browser's when it has none (a server from before event zones, an event not loaded yet). */
export function eventZone(event: Zoned): string | undefined {
  const timeZone = event?.timezone;
  return isKnownZone(timeZone) ? timeZone : undefined;
}

/** A time of `event` (its start, its sale's opening, a deadline of its orders) on the venue's
 *  clock and naming the zone: "Sat, 6 Jun 2026, 19:00 CEST" for a Berlin concert wherever the
 *  buyer sits, as the tickets and e-mails print it. Countdowns and "in 5 minutes" are not
 *  times of day and do not come here. */
export function eventDateTime(iso: string, event: Zoned): string {
  return dateTime(iso, { zone: true, timeZone: eventZone(event) });
}

/** The short name of the browser's time zone (or `timeZone`) at `when` ("CET" in winter,
 *  "CEST" in summer, "GMT-5" where there is no common abbreviation); `when` defaults to now,
 *  and a value that does not parse counts as now. For labelling times typed in local time. */
export function zoneName(when: Date | string = new Date(), timeZone?: string): string {
  let date = typeof when === 'string' ? new Date(when) : when;
  if (Number.isNaN(date.getTime())) date = new Date();
  const parts = new Intl.DateTimeFormat('en-GB', { timeZoneName: 'short', timeZone: isKnownZone(timeZone) ? timeZone : undefined }).formatToParts(date);
  return parts.find((p) => p.type === 'timeZoneName')?.value ?? '';
}

/** 75 → "1:15"; 3725 → "1:02:05". */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${rest}` : `${m}:${rest}`;
}

/** A rough duration for waiting times: "under a minute", "about 3 minutes", "about 2 hours". */
export function roughDuration(seconds: number): string {
  if (seconds < 60) return 'under a minute';
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `about ${minutes} minute${minutes === 1 ? '' : 's'}`;
  const hours = Math.round(minutes / 60);
  return `about ${hours} hours`;
}

/**
 * The waiting room's estimate in words. The server sends `eta_seconds: null` when it cannot
 * tell (nobody is being admitted right now): that is "unknown", never "under a minute".
 */
export function waitEstimate(etaSeconds: number | null | undefined): string {
  if (etaSeconds === null || etaSeconds === undefined || !Number.isFinite(etaSeconds) || etaSeconds < 0) return 'unknown';
  return roughDuration(etaSeconds);
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** An exact, short duration: "45 seconds", "1 minute", "5 minutes", "2 minutes 30 seconds". */
export function exactDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return plural(s, 'second');
  const minutes = Math.floor(s / 60);
  const rest = s % 60;
  return rest === 0 ? plural(minutes, 'minute') : `${plural(minutes, 'minute')} ${plural(rest, 'second')}`;
}
