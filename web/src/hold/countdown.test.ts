import { describe, expect, it } from 'vitest';

import { deadlineOf, fractionLeft, msToNextTick, secondsLeft, urgency } from './countdown';

const CREATED = '2030-05-01T19:30:00Z';
const EXPIRES = '2030-05-01T19:35:00Z'; // a 300 s hold

describe('deadlineOf', () => {
  it('anchors the server lifetime at the local arrival time, whatever the local clock says', () => {
    const receivedAt = Date.parse('1999-01-01T00:00:00Z'); // a client clock decades off
    const deadline = deadlineOf(CREATED, EXPIRES, receivedAt);
    expect(deadline.total).toBe(300);
    expect(deadline.at - receivedAt).toBe(300_000);
  });

  it('copes with microsecond instants and a missing created_at', () => {
    const deadline = deadlineOf('2030-05-01T19:30:00.250000Z', '2030-05-01T19:30:10.250000Z', 1000);
    expect(deadline).toEqual({ at: 11_000, total: 10 });
    const fallback = deadlineOf('garbage', '1970-01-01T00:00:05Z', 1000);
    expect(fallback.at).toBe(5000);
  });

  it('never produces a negative lifetime', () => {
    expect(deadlineOf(EXPIRES, CREATED, 50)).toEqual({ at: 50, total: 0 });
  });
});

describe('secondsLeft', () => {
  const deadline = deadlineOf(CREATED, EXPIRES, 0);

  it('counts whole seconds, rounding up', () => {
    expect(secondsLeft(deadline, 0)).toBe(300);
    expect(secondsLeft(deadline, 1)).toBe(300);
    expect(secondsLeft(deadline, 1000)).toBe(299);
    expect(secondsLeft(deadline, 299_001)).toBe(1);
  });

  it('reaches zero at the deadline and stays there', () => {
    expect(secondsLeft(deadline, 300_000)).toBe(0);
    expect(secondsLeft(deadline, 400_000)).toBe(0);
  });
});

describe('urgency and progress', () => {
  const deadline = deadlineOf(CREATED, EXPIRES, 0);

  it('warns in the last minute and says when it is over', () => {
    expect(urgency(deadline, 0)).toBe('calm');
    expect(urgency(deadline, 239_000)).toBe('calm');
    expect(urgency(deadline, 240_000)).toBe('hurry');
    expect(urgency(deadline, 300_000)).toBe('expired');
  });

  it('a short hold warns in its last fifth', () => {
    const short = deadlineOf(CREATED, '2030-05-01T19:30:30Z', 0);
    expect(urgency(short, 23_000)).toBe('calm');
    expect(urgency(short, 24_000)).toBe('hurry');
  });

  it('reports the fraction left, clamped', () => {
    expect(fractionLeft(deadline, 0)).toBe(1);
    expect(fractionLeft(deadline, 150_000)).toBe(0.5);
    expect(fractionLeft(deadline, 900_000)).toBe(0);
    expect(fractionLeft(deadline, -5)).toBe(1);
  });

  it('ticks on the second boundary', () => {
    expect(msToNextTick(deadline, 0)).toBe(1000);
    expect(msToNextTick(deadline, 250)).toBe(750);
    expect(msToNextTick(deadline, 300_000)).toBe(0);
  });
});
