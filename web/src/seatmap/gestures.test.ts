import { describe, expect, it } from 'vitest';

import { GestureTracker, tapPicks, tapZoomsToSeat, type PointerInput } from './gestures';

const touch = (id: number, x: number, y: number): PointerInput => ({ id, x, y, kind: 'touch' });
const mouse = (x: number, y: number, button = 0): PointerInput => ({ id: 1, x, y, kind: 'mouse', button });

describe('GestureTracker', () => {
  it('a press that stays put is a tap where it lifted', () => {
    const g = new GestureTracker();
    expect(g.down(touch(1, 100, 100))).toBeNull();
    expect(g.move(touch(1, 104, 103))).toBeNull(); // a finger's wobble
    expect(g.up(touch(1, 105, 103))).toEqual({ type: 'tap', x: 105, y: 103, kind: 'touch' });
    expect(g.active).toBe(false);
  });

  it('a drag pans by the whole way from the press, then move by move, and is no tap', () => {
    const g = new GestureTracker();
    g.down(touch(1, 100, 100));
    expect(g.move(touch(1, 120, 100))).toEqual({ type: 'pan', dx: 20, dy: 0 });
    expect(g.move(touch(1, 125, 90))).toEqual({ type: 'pan', dx: 5, dy: -10 });
    expect(g.up(touch(1, 125, 90))).toEqual({ type: 'end' });
  });

  it('the mouse has a smaller slop than a finger', () => {
    const g = new GestureTracker();
    g.down(mouse(0, 0));
    expect(g.move(mouse(6, 0))).toEqual({ type: 'pan', dx: 6, dy: 0 });
  });

  it('only the primary mouse button pans or taps', () => {
    const g = new GestureTracker();
    expect(g.down(mouse(0, 0, 2))).toBeNull();
    expect(g.active).toBe(false);
    expect(g.up(mouse(0, 0, 2))).toBeNull();
  });

  it('two fingers pinch from where they both were, and are never a tap', () => {
    const g = new GestureTracker();
    g.down(touch(1, 100, 100));
    expect(g.down(touch(2, 200, 100))).toEqual({ type: 'pinch-start' });
    expect(g.move(touch(2, 260, 100))).toEqual({
      type: 'pinch',
      a0: { x: 100, y: 100 },
      b0: { x: 200, y: 100 },
      a1: { x: 100, y: 100 },
      b1: { x: 260, y: 100 },
    });
    // One finger lifts: the other carries on panning from where it is.
    expect(g.up(touch(2, 260, 100))).toBeNull();
    expect(g.move(touch(1, 90, 110))).toEqual({ type: 'pan', dx: -10, dy: 10 });
    expect(g.up(touch(1, 90, 110))).toEqual({ type: 'end' });
  });

  it('ignores a third finger', () => {
    const g = new GestureTracker();
    g.down(touch(1, 0, 0));
    g.down(touch(2, 10, 0));
    expect(g.down(touch(3, 20, 0))).toBeNull();
    expect(g.move(touch(3, 40, 0))).toBeNull();
  });

  it('a cancelled press is no tap', () => {
    const g = new GestureTracker();
    g.down(touch(1, 0, 0));
    expect(g.cancel(1)).toBeNull();
    expect(g.up(touch(1, 0, 0))).toBeNull();
  });
});

describe('what a tap on a seat does', () => {
  it('a finger picks only seats of the default pitch (24 px); smaller ones zoom in first', () => {
    expect(tapPicks('touch', 24, 3)).toBe(true);
    expect(tapPicks('touch', 16, 3)).toBe(false); // a tap 13 px off centre is the neighbour's
    expect(tapZoomsToSeat('touch', 16, 3)).toBe(true);
    expect(tapZoomsToSeat('touch', 24, 3)).toBe(false);
    expect(tapZoomsToSeat('touch', 8, 3)).toBe(false); // a zoomed-out hall: its section instead
  });

  it('counts in device pixels: 24 px snapped half a device pixel smaller still picks', () => {
    const snapped = Math.round(24 * 1.1) / 1.1; // 26 device pixels: 23.64 CSS px
    expect(tapPicks('touch', snapped, 1.1)).toBe(true);
    expect(tapZoomsToSeat('touch', snapped, 1.1)).toBe(false);
  });

  it('a mouse picks small seats and never zooms in about the click', () => {
    expect(tapPicks('mouse', 8, 1)).toBe(true);
    expect(tapPicks('mouse', 5, 1)).toBe(false);
    expect(tapZoomsToSeat('mouse', 5, 1)).toBe(false);
  });
});
