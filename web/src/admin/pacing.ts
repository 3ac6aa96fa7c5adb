// The waiting-room pacing of one event, from the console's text inputs to a PATCH body.
//
// Number('') is 0: an emptied "Admissions / s" would be sent as 0 and come back as a schema
// error the admin cannot map to a field. An empty or non-numeric field is named here instead.

import type { EventPatch } from '../shared/types';

export interface PacingFields {
  rate: string;
  shoppers: string;
  mode: 'fixed' | 'adaptive';
  rateMin: string;
  rateMax: string;
  pow: string;
}

export type PacingBuilt = { ok: true; patch: EventPatch } | { ok: false; errors: string[] };

/** `value` as a number, or why not, worded for the field labelled `label`. */
function numberOf(value: string, label: string, errors: string[]): number {
  const text = value.trim();
  if (text === '') {
    errors.push(`${label} is required.`);
    return Number.NaN;
  }
  const n = Number(text);
  if (!Number.isFinite(n)) errors.push(`${label} must be a number.`);
  return n;
}

export function pacingPatch(fields: PacingFields): PacingBuilt {
  const errors: string[] = [];
  const patch: EventPatch = {
    admission_rate: numberOf(fields.rate, 'Admissions / s', errors),
    max_active_shoppers: numberOf(fields.shoppers, 'Max shoppers', errors),
    admission_mode: fields.mode,
    pow_difficulty: numberOf(fields.pow, 'Proof of work (bits)', errors),
  };
  // The bounds only mean something (and are only shown) in adaptive mode.
  if (fields.mode === 'adaptive') {
    patch.admission_rate_min = numberOf(fields.rateMin, 'Min / s', errors);
    patch.admission_rate_max = numberOf(fields.rateMax, 'Max / s', errors);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, patch };
}
