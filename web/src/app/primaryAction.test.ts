import { describe, expect, it } from 'vitest';

import type { EventDetail, QueuePosition } from '../shared/types';
import { primaryAction } from './primaryAction';
import type { ActiveHold } from './shop';

const EVENT = {
  id: 1,
  on_sale: true,
  status: 'on_sale',
  waiting_room: true,
  sale_opens_at: '2020-01-01T00:00:00Z',
  sale_closes_at: '2100-01-01T00:00:00Z',
} as unknown as EventDetail;

const base = { event: EVENT, queue: null, queueKnown: true, admission: null, selected: [], hold: null, busy: null };
const waiting: QueuePosition = { event_id: 1, state: 'waiting', position: 12, ahead: 11, waiting_total: 40, eta_seconds: null };
const admission = { token: 't', expiresAt: '2100-01-01T00:00:00Z' };

describe('the sticky bar’s one action', () => {
  it('join while the waiting room has not let the user in', () => {
    expect(primaryAction(base)).toEqual({ kind: 'join', label: 'Join the queue', disabled: false });
    expect(primaryAction({ ...base, busy: 'join' })).toEqual({ kind: 'join', label: 'Joining…', disabled: true });
    expect(primaryAction({ ...base, queueKnown: false })).toEqual({ kind: 'none', label: 'Checking your place…' });
  });

  it('nothing to press while waiting in line', () => {
    expect(primaryAction({ ...base, queue: waiting })).toEqual({ kind: 'none', label: 'Number 12 in line' });
    expect(primaryAction({ ...base, queue: { ...waiting, position: null } })).toEqual({ kind: 'none', label: 'In the pre-queue' });
  });

  it('still in line (no join button) while the sale is paused or sold out', () => {
    expect(primaryAction({ ...base, queue: { ...waiting, state: 'paused' } })).toEqual({ kind: 'none', label: 'Number 12 in line' });
    expect(primaryAction({ ...base, queue: { ...waiting, state: 'sold_out' } })).toEqual({ kind: 'none', label: 'Number 12 in line' });
  });

  it('hold once admitted (or without a waiting room), enabled by a pick', () => {
    expect(primaryAction({ ...base, admission })).toEqual({ kind: 'hold', label: 'Hold seat', disabled: true });
    expect(primaryAction({ ...base, admission, selected: ['a', 'b'] })).toEqual({ kind: 'hold', label: 'Hold 2 seats', disabled: false });
    expect(primaryAction({ ...base, event: { ...EVENT, waiting_room: false }, selected: ['a'] })).toEqual({ kind: 'hold', label: 'Hold seat', disabled: false });
  });

  it('checkout while holding', () => {
    const hold = { hold_id: 'h' } as ActiveHold;
    expect(primaryAction({ ...base, admission, hold })).toEqual({ kind: 'checkout', label: 'Checkout', disabled: false });
    expect(primaryAction({ ...base, admission, hold, busy: 'pay' })).toEqual({ kind: 'checkout', label: 'Paying…', disabled: true });
  });

  it('says when the event is not on sale', () => {
    const closed = { ...EVENT, on_sale: false, status: 'closed' } as EventDetail;
    expect(primaryAction({ ...base, event: closed })).toEqual({ kind: 'none', label: 'Not on sale' });
  });
});
