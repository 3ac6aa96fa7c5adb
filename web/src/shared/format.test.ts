import { describe, expect, it } from 'vitest';

import { exactDuration, waitEstimate } from './format';

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
