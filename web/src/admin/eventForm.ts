// The "create event" form's values and their conversion into POST /api/admin/events's body.
// Pure, so the rules (what is required, how the venue's wall-clock times and prices convert)
// are tested.

import { zoneName } from '../shared/format';
import type { AdmissionMode, EventCreate, EventStatus } from '../shared/types';
import { browserZone, isKnownZone, utcToZonedWallTime, zonedWallTimeToUtc } from '../shared/zones';

/** The server's bound on proof-of-work difficulty (booking.catalog.MAX_DIFFICULTY). */
export const MAX_POW_DIFFICULTY = 32;

export interface TierRow {
  name: string;
  /** In currency units as typed ("75" or "39.90"). */
  price: string;
}

export interface SectionRow {
  name: string;
  rows: string;
  seatsPerRow: string;
  tier: string;
}

export interface EventForm {
  name: string;
  venue: string;
  /** The venue's IANA time zone, sent as `timezone` (the browser's own by default). */
  timeZone: string;
  /** `<input type="datetime-local">` values: wall-clock times in `timeZone`. */
  startsAt: string;
  saleOpensAt: string;
  saleClosesAt: string;
  status: EventStatus;
  currency: string;
  waitingRoom: boolean;
  admissionRate: string;
  maxActiveShoppers: string;
  /** `fixed`: admissionRate; `adaptive`: between admissionRateMin and admissionRateMax. */
  admissionMode: AdmissionMode;
  admissionRateMin: string;
  admissionRateMax: string;
  /** Proof-of-work difficulty on join, in leading zero bits (0: none). */
  powDifficulty: string;
  holdTtl: string;
  maxSeatsPerUser: string;
  tiers: TierRow[];
  sections: SectionRow[];
}

export type FormTimes = Pick<EventForm, 'startsAt' | 'saleOpensAt' | 'saleClosesAt'>;

/** The times a new event starts with, on the clock of `timeZone`: the show at 20:00 in 30 days,
 *  the sale open from a minute ago until the show. */
export function defaultTimes(now: Date, timeZone: string): FormTimes {
  const show = `${utcToZonedWallTime(new Date(now.getTime() + 30 * 86_400_000), timeZone).slice(0, 10)}T20:00`;
  return { startsAt: show, saleOpensAt: utcToZonedWallTime(new Date(now.getTime() - 60_000), timeZone), saleClosesAt: show };
}

/** The short name of `timeZone` in force at the wall time `wall` ("CEST" on a summer evening
 *  in Berlin, "CET" in winter), for the time inputs' labels; now's when `wall` is no time. */
export function wallZoneName(wall: string, timeZone: string): string {
  try {
    return zoneName(zonedWallTimeToUtc(wall, timeZone), timeZone);
  } catch {
    return zoneName(new Date(), timeZone);
  }
}

export function defaultForm(now = new Date(), timeZone = browserZone()): EventForm {
  return {
    name: '',
    venue: '',
    timeZone,
    ...defaultTimes(now, timeZone),
    status: 'on_sale',
    currency: 'EUR',
    waitingRoom: false,
    admissionRate: '10',
    maxActiveShoppers: '500',
    admissionMode: 'fixed',
    admissionRateMin: '1',
    admissionRateMax: '100',
    powDifficulty: '0',
    holdTtl: '',
    maxSeatsPerUser: '',
    tiers: [
      { name: 'Premium', price: '120' },
      { name: 'Standard', price: '75' },
    ],
    sections: [
      { name: 'STALLS', rows: '20', seatsPerRow: '40', tier: 'Premium' },
      { name: 'BALCONY', rows: '10', seatsPerRow: '40', tier: 'Standard' },
    ],
  };
}

export function seatCount(form: EventForm): number {
  return form.sections.reduce((sum, s) => sum + (Number(s.rows) || 0) * (Number(s.seatsPerRow) || 0), 0);
}

/** The instant of a wall-clock time in `timeZone`; null when either is missing or unreadable. */
function isoOf(wall: string, timeZone: string): string | null {
  try {
    return zonedWallTimeToUtc(wall, timeZone);
  } catch {
    return null;
  }
}

function wholeNumber(text: string): number | null {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : null;
}

/** The server's limits on an event's name and venue (booking/catalog.py `EventSpec`): the
 *  inputs stop there, and a longer value (pasted past maxLength by a script) is named here. */
export const MAX_NAME_LENGTH = 200;
export const MAX_VENUE_LENGTH = 200;

export type Built = { ok: true; spec: EventCreate } | { ok: false; errors: string[] };

export function buildEvent(form: EventForm): Built {
  const errors: string[] = [];
  if (!form.name.trim()) errors.push('Name is required.');
  if (!form.venue.trim()) errors.push('Venue is required.');
  if (form.name.trim().length > MAX_NAME_LENGTH) errors.push(`Name is at most ${MAX_NAME_LENGTH} characters.`);
  if (form.venue.trim().length > MAX_VENUE_LENGTH) errors.push(`Venue is at most ${MAX_VENUE_LENGTH} characters.`);
  const zoned = isKnownZone(form.timeZone);
  if (!zoned) errors.push('Time zone is an IANA name such as Europe/Berlin.');
  const startsAt = zoned ? isoOf(form.startsAt, form.timeZone) : null;
  const opens = zoned ? isoOf(form.saleOpensAt, form.timeZone) : null;
  const closes = zoned ? isoOf(form.saleClosesAt, form.timeZone) : null;
  if (zoned) {
    if (!startsAt) errors.push('Start time is required.');
    if (!opens) errors.push('Sale opening time is required.');
    if (!closes) errors.push('Sale closing time is required.');
    if (opens && closes && Date.parse(closes) <= Date.parse(opens)) errors.push('The sale must close after it opens.');
  }
  if (!/^[A-Za-z]{3}$/.test(form.currency)) errors.push('Currency is a three-letter code such as EUR.');

  const tiers = form.tiers.map((t, i) => {
    const price = Number(t.price);
    if (!t.name.trim()) errors.push(`Tier ${i + 1} needs a name.`);
    if (t.price.trim() === '' || !Number.isFinite(price) || price < 0) errors.push(`Tier ${t.name || i + 1} needs a price of 0 or more.`);
    return { name: t.name.trim(), price_cents: Math.round(price * 100), currency: form.currency.toUpperCase() };
  });
  if (tiers.length === 0) errors.push('Add at least one price tier.');
  const tierNames = new Set(tiers.map((t) => t.name));
  if (tierNames.size !== tiers.length) errors.push('Tier names must be different.');

  const sections = form.sections.map((s, i) => {
    const rows = wholeNumber(s.rows);
    const seats = wholeNumber(s.seatsPerRow);
    if (!/^[A-Za-z0-9]{1,16}$/.test(s.name)) errors.push(`Section ${i + 1}: the name is 1–16 letters or digits.`);
    if (rows === null || rows < 1 || rows > 200) errors.push(`Section ${s.name || i + 1}: rows must be 1–200.`);
    if (seats === null || seats < 1 || seats > 500) errors.push(`Section ${s.name || i + 1}: seats per row must be 1–500.`);
    if (!tierNames.has(s.tier)) errors.push(`Section ${s.name || i + 1}: choose one of the tiers.`);
    return { name: s.name, rows: rows ?? 0, seats_per_row: seats ?? 0, tier: s.tier };
  });
  if (sections.length === 0) errors.push('Add at least one section.');
  if (new Set(sections.map((s) => s.name)).size !== sections.length) errors.push('Section names must be different.');
  if (seatCount(form) > 100_000) errors.push('At most 100,000 seats per event.');

  const rate = Number(form.admissionRate);
  const shoppers = wholeNumber(form.maxActiveShoppers);
  const rateMin = Number(form.admissionRateMin);
  const rateMax = Number(form.admissionRateMax);
  const pow = wholeNumber(form.powDifficulty);
  if (form.waitingRoom) {
    if (!(rate > 0)) errors.push('Admission rate must be above 0 per second.');
    if (shoppers === null || shoppers < 1) errors.push('Max active shoppers must be at least 1.');
    if (form.admissionMode === 'adaptive') {
      if (!(rateMin > 0) || !(rateMax > 0)) errors.push('Adaptive mode needs a minimum and a maximum rate above 0.');
      else if (rateMin > rateMax) errors.push('The minimum rate must not exceed the maximum.');
    }
    if (pow === null || pow > MAX_POW_DIFFICULTY) errors.push(`Proof-of-work difficulty is a whole number from 0 to ${MAX_POW_DIFFICULTY} bits.`);
  }
  const holdTtl = form.holdTtl.trim() === '' ? null : wholeNumber(form.holdTtl);
  if (holdTtl !== null && (holdTtl < 10 || holdTtl > 3600)) errors.push('Hold time must be 10–3600 seconds.');
  if (form.holdTtl.trim() !== '' && holdTtl === null) errors.push('Hold time is a whole number of seconds.');
  const perUser = form.maxSeatsPerUser.trim() === '' ? null : wholeNumber(form.maxSeatsPerUser);
  if (perUser !== null && (perUser < 1 || perUser > 100)) errors.push('Seats per user must be 1–100.');
  if (form.maxSeatsPerUser.trim() !== '' && perUser === null) errors.push('Seats per user is a whole number.');

  if (errors.length > 0 || !startsAt || !opens || !closes) return { ok: false, errors };
  const spec: EventCreate = {
    name: form.name.trim(),
    venue: form.venue.trim(),
    starts_at: startsAt,
    sale_opens_at: opens,
    sale_closes_at: closes,
    timezone: form.timeZone,
    status: form.status,
    waiting_room: form.waitingRoom,
    layout: { tiers, sections },
  };
  if (form.waitingRoom) {
    spec.admission_rate = rate;
    spec.max_active_shoppers = shoppers ?? 1;
    spec.admission_mode = form.admissionMode;
    if (form.admissionMode === 'adaptive') {
      spec.admission_rate_min = rateMin;
      spec.admission_rate_max = rateMax;
    }
    spec.pow_difficulty = pow ?? 0;
  }
  if (holdTtl !== null) spec.hold_ttl_s = holdTtl;
  if (perUser !== null) spec.max_seats_per_user = perUser;
  return { ok: true, spec };
}
