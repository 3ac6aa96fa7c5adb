import { describe, expect, it } from 'vitest';

import { pacingPatch, type PacingFields } from './pacing';

const fields = (over: Partial<PacingFields> = {}): PacingFields => ({
  rate: '2',
  shoppers: '50',
  mode: 'fixed',
  rateMin: '1',
  rateMax: '100',
  pow: '0',
  ...over,
});

describe('pacingPatch', () => {
  it('turns the fields into numbers', () => {
    expect(pacingPatch(fields())).toEqual({
      ok: true,
      patch: { admission_rate: 2, max_active_shoppers: 50, admission_mode: 'fixed', pow_difficulty: 0 },
    });
  });

  it('sends the bounds in adaptive mode', () => {
    const built = pacingPatch(fields({ mode: 'adaptive', rateMin: '0.5', rateMax: '20' }));
    expect(built.ok && built.patch).toMatchObject({ admission_mode: 'adaptive', admission_rate_min: 0.5, admission_rate_max: 20 });
  });

  it('never sends an emptied field as 0', () => {
    expect(pacingPatch(fields({ rate: '  ' }))).toEqual({ ok: false, errors: ['Admissions / s is required.'] });
    expect(pacingPatch(fields({ shoppers: '', pow: '' }))).toEqual({ ok: false, errors: ['Max shoppers is required.', 'Proof of work (bits) is required.'] });
    expect(pacingPatch(fields({ mode: 'adaptive', rateMax: '' }))).toEqual({ ok: false, errors: ['Max / s is required.'] });
  });

  it('names a value that is not a number', () => {
    expect(pacingPatch(fields({ rate: 'abc' }))).toEqual({ ok: false, errors: ['Admissions / s must be a number.'] });
  });
});
