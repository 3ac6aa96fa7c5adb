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
// 19:05 on the clock of whoever runs the tests: the bar says the admission's end in local time.
const admission = { token: 't', expiresAt: new Date(2100, 0, 1, 19, 5).toISOString() };
const turn = 'Your turn — hold seats by 19:05';

describe('the sticky bar’s one action', () => {
  it('join while the waiting room has not let the user in', () => {
    expect(primaryAction(base)).toEqual({ kind: 'join', label: 'Join the queue', disabled: false });
    expect(primaryAction({ ...base, busy: 'join' })).toEqual({ kind: 'join', label: 'Joining…', disabled: true });
    expect(primaryAction({ ...base, queueKnown: false })).toEqual({ kind: 'none', label: 'Checking your place…' });
  });

  it('nothing to press while waiting in line, with the estimated wait beside the place', () => {
    expect(primaryAction({ ...base, queue: waiting })).toEqual({ kind: 'none', label: 'Number 12 in line', note: 'Estimated wait: unknown' });
    expect(primaryAction({ ...base, queue: { ...waiting, eta_seconds: 190 } })).toEqual({
      kind: 'none',
      label: 'Number 12 in line',
      note: 'Estimated wait: about 3 minutes',
    });
    // No place drawn yet, so no wait to estimate.
    expect(primaryAction({ ...base, queue: { ...waiting, position: null } })).toEqual({ kind: 'none', label: 'In the pre-queue' });
  });

  it('still in line (no join button) while the sale is paused or sold out, saying why it stands still', () => {
    expect(primaryAction({ ...base, queue: { ...waiting, state: 'paused' } })).toEqual({
      kind: 'none',
      label: 'Number 12 in line',
      note: 'Every seat is held right now: stay in line',
    });
    expect(primaryAction({ ...base, queue: { ...waiting, state: 'sold_out' } })).toEqual({
      kind: 'none',
      label: 'Number 12 in line',
      note: 'Sold out: you keep your place on the waiting list',
    });
  });

  it('hold once admitted (or without a waiting room), enabled by a pick', () => {
    expect(primaryAction({ ...base, admission })).toEqual({ kind: 'hold', label: 'Hold seat', disabled: true, note: turn });
    expect(primaryAction({ ...base, admission, selected: ['a', 'b'] })).toEqual({ kind: 'hold', label: 'Hold 2 seats', disabled: false, note: turn });
    expect(primaryAction({ ...base, event: { ...EVENT, waiting_room: false }, selected: ['a'] })).toEqual({ kind: 'hold', label: 'Hold seat', disabled: false });
  });

  it('says whose turn it is only while the waiting room has let the user in', () => {
    expect(primaryAction(base).note).toBeUndefined();
    expect(primaryAction({ ...base, admission, hold: { hold_id: 'h' } as ActiveHold }).note).toBeUndefined(); // the hold's clock counts now
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
