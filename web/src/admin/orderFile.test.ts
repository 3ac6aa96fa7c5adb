import { describe, expect, it } from 'vitest';

import type { RefundRecord } from '../shared/types';
import { refundSummary } from './orderFile';

const refund = (over: Partial<RefundRecord>): RefundRecord => ({
  refund_id: 'ref_1',
  status: 'pending',
  amount_cents: 4200,
  currency: 'EUR',
  attempts: 1,
  next_attempt_at: null,
  last_error: null,
  requested_by: 'admin',
  created_at: '2026-01-06T13:00:00Z',
  updated_at: '2026-01-06T13:00:00Z',
  ...over,
});

describe('the refund in the order file', () => {
  it('a refund still being retried shows its last error and next try', () => {
    expect(refundSummary(refund({ attempts: 2, last_error: 'gateway down', next_attempt_at: '2026-01-06T13:03:00Z' }), 'Europe/Berlin')).toBe(
      'pending · 2 attempts · last error: gateway down · next try Tue, 6 Jan 2026, 14:03 CET',
    );
  });

  it('a refund that succeeded after failing shows no error', () => {
    const done = refundSummary(refund({ status: 'refunded', attempts: 4, last_error: 'the test gateway failed the refund (injected)', next_attempt_at: '2026-01-06T13:03:00Z' }));
    expect(done).toBe('refunded · 4 attempts');
  });

  it('a refund taken over by staff keeps why retrying stopped', () => {
    expect(refundSummary(refund({ status: 'manual', attempts: 9, last_error: 'gateway down', next_attempt_at: '2026-01-06T13:03:00Z' }))).toBe(
      'manual · 9 attempts · last error: gateway down',
    );
  });

  it('a refund that worked at once is one attempt', () => {
    expect(refundSummary(refund({ status: 'refunded' }))).toBe('refunded · 1 attempt');
  });
});
