import { describe, expect, it } from 'vitest';

import { parseSeatMessage, SeatMapState, unavailablePicks } from './state';

const IDS = ['S-A-1', 'S-A-2', 'S-A-3', 'S-B-1'];

function fresh(eventId?: number): SeatMapState {
  return new SeatMapState(new Map(IDS.map((id, i) => [id, i])), eventId);
}

function snapshot(seq: number, seats: [string, string][] = IDS.map((id) => [id, 'available'])) {
  return { type: 'snapshot' as const, event_id: 1, seq, seats };
}

function delta(seq: number, changes: [string, string][]) {
  return { type: 'delta' as const, event_id: 1, seq, changes };
}

describe('snapshot and delta merge', () => {
  it('takes every status from the snapshot', () => {
    const state = fresh();
    expect(state.phase).toBe('awaiting');
    expect(state.seq).toBe(-1);
    const result = state.apply(snapshot(7, [['S-A-1', 'sold'], ['S-A-2', 'held'], ['S-A-3', 'available'], ['S-B-1', 'blocked']]));
    expect(result).toEqual({ kind: 'snapshot' });
    expect(state.phase).toBe('live');
    expect(state.seq).toBe(7);
    expect(IDS.map((id) => state.status(id))).toEqual(['sold', 'held', 'available', 'blocked']);
  });

  it('applies consecutive deltas and reports only seats that changed', () => {
    const state = fresh();
    state.apply(snapshot(3));
    expect(state.apply(delta(4, [['S-A-1', 'held'], ['S-A-2', 'available']]))).toEqual({
      kind: 'delta',
      changed: [0],
    });
    expect(state.apply(delta(5, [['S-A-1', 'sold'], ['S-B-1', 'held']]))).toEqual({
      kind: 'delta',
      changed: [0, 3],
    });
    expect(state.seq).toBe(5);
    expect(state.status('S-A-1')).toBe('sold');
    expect(state.status('S-B-1')).toBe('held');
    expect(state.status('S-A-2')).toBe('available');
  });

  it('ignores seats it does not know and unknown ids read as undefined', () => {
    const state = fresh();
    state.apply(snapshot(0, [['S-A-1', 'available'], ['X-Z-9', 'sold']]));
    expect(state.apply(delta(1, [['X-Z-9', 'held']]))).toEqual({ kind: 'delta', changed: [] });
    expect(state.status('X-Z-9')).toBeUndefined();
    expect(state.status('S-A-2')).toBeUndefined(); // not in the snapshot: unknown
  });

  it('a later snapshot replaces everything', () => {
    const state = fresh();
    state.apply(snapshot(1, [['S-A-1', 'sold'], ['S-A-2', 'sold']]));
    state.apply(snapshot(9, [['S-A-1', 'available']]));
    expect(state.seq).toBe(9);
    expect(state.status('S-A-1')).toBe('available');
    expect(state.status('S-A-2')).toBeUndefined();
  });
});

describe('gap detection', () => {
  it('a delta that skips a seq asks for a resync and is not applied', () => {
    const state = fresh();
    state.apply(snapshot(10));
    expect(state.apply(delta(12, [['S-A-1', 'sold']]))).toEqual({ kind: 'gap', expected: 11, got: 12 });
    expect(state.phase).toBe('resync');
    expect(state.status('S-A-1')).toBe('available');
    expect(state.seq).toBe(10);
  });

  it('ignores deltas while waiting for the fresh snapshot, then follows it', () => {
    const state = fresh();
    state.apply(snapshot(10));
    state.apply(delta(12, [['S-A-1', 'sold']]));
    expect(state.apply(delta(13, [['S-A-2', 'sold']]))).toEqual({ kind: 'ignored', reason: 'resync' });
    state.apply(snapshot(13, [['S-A-1', 'sold'], ['S-A-2', 'sold']]));
    expect(state.phase).toBe('live');
    expect(state.apply(delta(14, [['S-A-3', 'held']]))).toEqual({ kind: 'delta', changed: [2] });
  });

  it('deltas before the first snapshot are ignored', () => {
    const state = fresh();
    expect(state.apply(delta(1, [['S-A-1', 'sold']]))).toEqual({ kind: 'ignored', reason: 'awaiting' });
    expect(state.status('S-A-1')).toBeUndefined();
  });

  it('reset (a resubscribe) waits for a snapshot but keeps what is on screen', () => {
    const state = fresh();
    state.apply(snapshot(4, [['S-A-1', 'held']]));
    state.reset();
    expect(state.phase).toBe('awaiting');
    expect(state.status('S-A-1')).toBe('held');
    expect(state.apply(delta(5, [['S-A-1', 'sold']])).kind).toBe('ignored');
  });
});

describe('stale deltas', () => {
  it('a delta at or below the current seq is ignored, never rolled back', () => {
    const state = fresh();
    state.apply(snapshot(20, [['S-A-1', 'sold']]));
    expect(state.apply(delta(20, [['S-A-1', 'available']]))).toEqual({ kind: 'ignored', reason: 'stale' });
    expect(state.apply(delta(3, [['S-A-1', 'available']]))).toEqual({ kind: 'ignored', reason: 'stale' });
    expect(state.status('S-A-1')).toBe('sold');
    expect(state.seq).toBe(20);
    expect(state.phase).toBe('live');
  });

  it('messages for another event are ignored', () => {
    const state = fresh(1);
    expect(state.apply({ ...snapshot(1), event_id: 2 })).toEqual({ kind: 'ignored', reason: 'other-event' });
    expect(state.phase).toBe('awaiting');
  });
});

describe('parseSeatMessage', () => {
  it('accepts snapshots and deltas', () => {
    expect(parseSeatMessage('{"type":"snapshot","seq":1,"seats":[["a","sold"]]}')?.type).toBe('snapshot');
    expect(parseSeatMessage('{"type":"delta","seq":2,"changes":[]}')?.type).toBe('delta');
  });

  it('rejects anything else without throwing', () => {
    for (const body of ['', 'nope', 'null', '[]', '{"type":"delta","seq":"1","changes":[]}', '{"type":"x","seq":1}']) {
      expect(parseSeatMessage(body)).toBeNull();
    }
  });
});

describe('reconciling picks with the live map', () => {
  const index = new Map([
    ['S-A-1', 0],
    ['S-A-2', 1],
    ['S-A-3', 2],
    ['S-A-4', 3],
  ]);

  it('drops picks a fresh snapshot shows as taken, keeps the rest and unknown seats', () => {
    const state = new SeatMapState(index, 1);
    const picked = ['S-A-1', 'S-A-2', 'S-A-3', 'X-Y-9'];
    expect(unavailablePicks(picked, (id) => state.status(id))).toEqual([]); // nothing known yet
    state.apply({ type: 'snapshot', seq: 7, seats: [['S-A-1', 'available'], ['S-A-2', 'sold'], ['S-A-3', 'held'], ['S-A-4', 'blocked']] });
    expect(unavailablePicks(picked, (id) => state.status(id))).toEqual(['S-A-2', 'S-A-3']);
  });

  it('after a reconnect, the new snapshot decides (the old statuses do not)', () => {
    const state = new SeatMapState(index, 1);
    state.apply({ type: 'snapshot', seq: 1, seats: [['S-A-1', 'available'], ['S-A-2', 'available']] });
    state.reset(); // the resubscribe after a reconnect
    state.apply({ type: 'snapshot', seq: 9, seats: [['S-A-1', 'sold'], ['S-A-2', 'available']] });
    expect(unavailablePicks(['S-A-1', 'S-A-2'], (id) => state.status(id))).toEqual(['S-A-1']);
  });
});

describe('resuming after a reconnect (resume-seq)', () => {
  it('a live map resumes from its seq and applies the changes since', () => {
    const state = fresh();
    expect(state.resumeFrom()).toBeNull(); // nothing to resume from yet
    state.apply(snapshot(4));
    state.apply(delta(5, [['S-A-1', 'held']]));
    state.reset(); // the connection dropped: SUBSCRIBE again
    expect(state.resumeFrom()).toBe(5);
    const answer = { ...delta(9, [['S-A-1', 'sold'], ['S-B-1', 'held']]), since: 5 };
    expect(state.apply(answer)).toEqual({ kind: 'delta', changed: [0, 3] });
    expect(state.phase).toBe('live');
    expect(state.seq).toBe(9);
    expect(state.apply(delta(10, [['S-A-2', 'held']]))).toEqual({ kind: 'delta', changed: [1] });
  });

  it('after a gap it does not resume, and an answer for another seq is not applied', () => {
    const state = fresh();
    state.apply(snapshot(4));
    state.apply(delta(7, [['S-A-1', 'held']])); // a gap
    state.reset();
    expect(state.resumeFrom()).toBeNull();
    expect(state.apply({ ...delta(9, [['S-A-1', 'sold']]), since: 4 })).toEqual({ kind: 'ignored', reason: 'awaiting' });
    const other = fresh();
    other.apply(snapshot(4));
    other.reset();
    expect(other.apply({ ...delta(9, [['S-A-1', 'sold']]), since: 3 })).toEqual({ kind: 'ignored', reason: 'awaiting' });
    expect(other.apply(snapshot(9))).toEqual({ kind: 'snapshot' }); // the server's other answer
  });
});
