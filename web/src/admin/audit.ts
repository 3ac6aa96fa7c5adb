// The audit log in words (pure): what an entry changed, in one compact line, and when, to the
// second (two changes in the same minute are told apart, and put in order).

import { dateTime } from '../shared/format';

/** Items of a list shown before "… N more" (an event's seat changes can name hundreds). */
const LIST_ITEMS = 10;

function value(v: unknown): string {
  if (v === null || v === undefined) return 'none';
  if (typeof v === 'string') return v === '' ? '""' : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) {
    const shown = v.slice(0, LIST_ITEMS).map(value).join(', ');
    return `[${shown}${v.length > LIST_ITEMS ? `, … ${v.length - LIST_ITEMS} more` : ''}]`;
  }
  if (typeof v === 'object') return `{${pairs(v as Record<string, unknown>)}}`;
  return String(v);
}

function pairs(details: Record<string, unknown>): string {
  return Object.entries(details)
    .map(([key, v]) => `${key}: ${value(v)}`)
    .join(', ');
}

/**
 * An entry's `details` as the server wrote them, e.g. `{"status": "paused", "admission_rate": 5}`
 * → "status: paused, admission_rate: 5"; nested values in brackets, `null` as "none"; "—" when
 * there are none.
 */
export function auditDetails(details: Record<string, unknown> | null | undefined): string {
  if (!details || Object.keys(details).length === 0) return '—';
  return pairs(details);
}

/** "Tue, 6 Jan 2026, 14:03:27 CET": the entry's time to the second, in the browser's zone (or
 *  `timeZone`), which it names. */
export function auditTime(iso: string, timeZone?: string): string {
  return dateTime(iso, { seconds: true, timeZone, zone: true });
}
