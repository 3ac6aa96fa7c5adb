// The order desk's file in words (pure): what an order's refund is doing.

import { dateTime } from '../shared/format';
import type { RefundRecord } from '../shared/types';

/**
 * "pending · 2 attempts · last error: gateway down · next try Tue, 6 Jan 2026, 14:03 CET".
 * The last error and the next try only while the refund is not done: a refund the gateway
 * confirmed (`refunded`) keeps its record of an earlier failed attempt, which no longer says
 * anything about it; a refund staff took over (`manual`) still shows why retrying stopped.
 */
export function refundSummary(refund: RefundRecord, timeZone?: string): string {
  const parts = [refund.status, `${refund.attempts} attempt${refund.attempts === 1 ? '' : 's'}`];
  if (refund.status !== 'refunded') {
    if (refund.last_error) parts.push(`last error: ${refund.last_error}`);
    if (refund.status === 'pending' && refund.next_attempt_at) parts.push(`next try ${dateTime(refund.next_attempt_at, { zone: true, timeZone })}`);
  }
  return parts.join(' · ');
}
