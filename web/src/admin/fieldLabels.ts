// The API's field names in the console's words, in one place (pure).
//
// A 422 problem+json names each fault by where it sat in the request body (`errors[].loc`, as
// pydantic reports it: `["layout", "tiers", 0, "price_cents"]`) and says what is wrong in the
// API's terms ("Input should be less than or equal to 10000000"). An operator knows the form:
// "Price (EUR) of tier Premium must be at most €100,000." This module maps each location to the
// label of the field that sent it (the forms in components/ use the same labels), turns bounds
// on amounts in cents into money, and puts labels in place of field names in the server's own
// sentences ("admission_rate_min (50) must not exceed admission_rate_max (10)").

import { money } from '../shared/format';
import { ApiError, describeError } from '../shared/http';
import type { EventCreate, EventPatch, Problem } from '../shared/types';

type Loc = (string | number)[];

/** What a location is called on its form, and the currency when its value is in cents. */
export interface FieldLabel {
  label: string;
  centsOf?: string;
}

/** Labels of a form's fields by location (`loc` without the leading "body"); null: unknown. */
export type FieldLabels = (loc: Loc) => FieldLabel | null;

/** An event's settings (POST and PATCH /api/admin/events), labelled as in CreateEventForm and
 *  the events panel's rows. */
const EVENT_FIELDS: Record<string, string> = {
  name: 'Name',
  venue: 'Venue',
  starts_at: 'Starts',
  sale_opens_at: 'Sale opens',
  sale_closes_at: 'Sale closes',
  timezone: 'Time zone',
  status: 'Status',
  waiting_room: 'Waiting room',
  admission_rate: 'Admissions / s',
  max_active_shoppers: 'Max shoppers',
  admission_mode: 'Mode',
  admission_rate_min: 'Min / s',
  admission_rate_max: 'Max / s',
  pow_difficulty: 'Proof of work (bits)',
  hold_ttl_s: 'Hold time (s)',
  max_seats_per_user: 'Seats per user',
  refund_cutoff_hours: 'Cancellable until (h before start)',
  layout: 'Layout',
};

/** The order desk's staff actions, an announcement, a webhook. */
const DESK_FIELDS: Record<string, string> = { reason: 'Reason', email: 'To another address' };
const BROADCAST_FIELDS: Record<string, string> = { text: 'Message', level: 'Level', event_id: 'Audience' };
const WEBHOOK_FIELDS: Record<string, string> = { url: 'URL', events: 'Events' };

function flat(fields: Record<string, string>): FieldLabels {
  return (loc) => {
    const [key, ...rest] = loc;
    const label = typeof key === 'string' && rest.length === 0 ? fields[key] : undefined;
    return label === undefined ? null : { label };
  };
}

export const deskLabels = flat(DESK_FIELDS);
export const broadcastLabels = flat(BROADCAST_FIELDS);
export const webhookLabels = flat(WEBHOOK_FIELDS);

/** An event's fields, tiers and sections named by what was sent (the indexes in `loc` are the
 *  sent body's: tier 0 is the first row of "Price tiers"). */
export function eventLabels(sent?: EventCreate | EventPatch): FieldLabels {
  const layout = sent && 'layout' in sent ? sent.layout : undefined;
  return (loc) => {
    const [key, list, index, member] = loc;
    if (typeof key !== 'string') return null;
    if (loc.length === 1) return EVENT_FIELDS[key] === undefined ? null : { label: EVENT_FIELDS[key] };
    if (key !== 'layout') return null;
    if (loc.length === 2) return { label: list === 'tiers' ? 'Price tiers' : 'Layout' };
    if (typeof index !== 'number' || loc.length !== 4) return null;
    if (list === 'tiers') {
      const tier = layout?.tiers[index];
      const name = tier?.name || String(index + 1);
      const currency = tier?.currency;
      if (member === 'price_cents') return { label: `Price${currency ? ` (${currency})` : ''} of tier ${name}`, centsOf: currency ?? '' };
      if (member === 'name') return { label: `Tier name ${index + 1}` };
      if (member === 'currency') return { label: 'Currency' };
      return null;
    }
    if (list === 'sections') {
      const name = layout?.sections[index]?.name || String(index + 1);
      if (member === 'name') return { label: `Section ${index + 1}` };
      if (member === 'rows') return { label: `Rows of section ${name}` };
      if (member === 'seats_per_row') return { label: `Seats per row of section ${name}` };
      if (member === 'tier') return { label: `Tier of section ${name}` };
    }
    return null;
  };
}

/** The API's snake_case field names as labels in a sentence of the server's: only names with an
 *  underscore (plain words such as "name" or "status" are left as English). */
const SNAKE_FIELDS = Object.keys(EVENT_FIELDS)
  .filter((k) => k.includes('_'))
  .sort((a, b) => b.length - a.length);

function inWords(text: string): string {
  return SNAKE_FIELDS.reduce((out, key) => out.replace(new RegExp(`\\b${key}\\b`, 'g'), `“${EVENT_FIELDS[key]}”`), text);
}

function sentence(text: string): string {
  const trimmed = text.trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

const BOUNDS: [RegExp, string][] = [
  [/^Input should be less than or equal to (-?[\d.]+)$/, 'at most'],
  [/^Input should be greater than or equal to (-?[\d.]+)$/, 'at least'],
  [/^Input should be greater than (-?[\d.]+)$/, 'more than'],
  [/^Input should be less than (-?[\d.]+)$/, 'less than'],
];

/** A bound in the field's units: cents as money ("€100,000"), other numbers grouped. */
function amount(value: number, field: FieldLabel): string {
  if (field.centsOf === undefined) return value.toLocaleString('en');
  if (field.centsOf) {
    try {
      return money(value, field.centsOf);
    } catch {
      // not a currency code Intl knows: plain units below
    }
  }
  return (value / 100).toLocaleString('en', { minimumFractionDigits: value % 100 === 0 ? 0 : 2 });
}

/** One fault as a sentence about the field. */
function fault(loc: Loc, msg: string, labels: FieldLabels): string {
  const path = loc.filter((p, i) => !(i === 0 && p === 'body'));
  const text = msg.replace(/^Value error, /, '');
  const field = path.length > 0 ? labels(path) : null;
  if (!field) {
    // A fault of the whole body (a rule across fields) or of a field no form of ours sends.
    return path.length > 0 ? `${path.join('.')}: ${sentence(inWords(text))}` : sentence(inWords(text));
  }
  for (const [pattern, word] of BOUNDS) {
    const bound = pattern.exec(text);
    if (bound?.[1] !== undefined) return `${field.label} must be ${word} ${amount(Number(bound[1]), field)}.`;
  }
  if (text === 'Field required') return `${field.label} is required.`;
  const longest = /^String should have at most (\d+) characters?$/.exec(text);
  if (longest) return `${field.label} is at most ${Number(longest[1]).toLocaleString('en')} characters.`;
  if (/^String should have at least 1 character$/.test(text)) return `${field.label} is required.`;
  return `${field.label}: ${sentence(inWords(text))}`;
}

/** At most this many faults are spelled out; the rest are counted. */
const MAX_FAULTS = 5;

/** A problem's faults in the form's words, one sentence each. */
export function problemInWords(problem: Problem, labels: FieldLabels): string[] {
  const errors = Array.isArray(problem.errors) ? problem.errors : [];
  if (errors.length === 0) return [sentence(inWords(problem.detail ?? problem.title ?? `The request failed (${problem.status})`))];
  const lines = errors.slice(0, MAX_FAULTS).map((e) => fault(Array.isArray(e.loc) ? e.loc : [], String(e.msg), labels));
  if (errors.length > MAX_FAULTS) lines.push(`And ${errors.length - MAX_FAULTS} more.`);
  return lines;
}

/** Why a request sent from a form failed, in the form's words: the server's refusal (400/409/
 *  422 …) with labels for field names and money for cents; anything else (no answer, a network
 *  error) as `describeError` says it. */
export function refusalLines(error: unknown, labels: FieldLabels): string[] {
  if (error instanceof ApiError && error.status !== 0) return problemInWords(error.problem, labels);
  return [describeError(error)];
}

export function describeRefusal(error: unknown, labels: FieldLabels): string {
  return refusalLines(error, labels).join(' ');
}
