import { describe, expect, it } from 'vitest';

import {
  between,
  clampView,
  fitView,
  isSnapped,
  limitsFor,
  MAX_DEFAULT_PITCH,
  MIN_DEFAULT_PITCH,
  pinchView,
  reveal,
  sectionView,
  shows,
  snapView,
  toScreen,
  toWorld,
  zoomAt,
  type View,
} from './camera';

const close = (a: number, b: number) => expect(a).toBeCloseTo(b, 6);

describe('pinch', () => {
  const start: View = { scale: 10, x: -50, y: 20 };

  it('scales by the change in finger distance, keeping the world point under the midpoint', () => {
    const a0 = { x: 100, y: 200 };
    const b0 = { x: 200, y: 200 };
    const anchor = toWorld(start, { x: 150, y: 200 });
    const view = pinchView(start, a0, b0, { x: 50, y: 200 }, { x: 250, y: 200 });
    close(view.scale, 20); // fingers twice as far apart
    const under = toScreen(view, anchor);
    close(under.x, 150);
    close(under.y, 200);
  });

  it('pans with the midpoint when the fingers move together', () => {
    const view = pinchView(start, { x: 0, y: 0 }, { x: 100, y: 0 }, { x: 30, y: 40 }, { x: 130, y: 40 });
    close(view.scale, 10);
    close(view.x, start.x + 30);
    close(view.y, start.y + 40);
  });

  it('ignores fingers that start on top of each other', () => {
    const view = pinchView(start, { x: 5, y: 5 }, { x: 5, y: 5 }, { x: 0, y: 0 }, { x: 90, y: 0 });
    close(view.scale, 10);
  });
});

describe('zoom and limits', () => {
  const world = { width: 104, height: 110 };
  const box = { width: 358, height: 500 };

  it('zooms about a point', () => {
    const view = zoomAt({ scale: 4, x: 0, y: 0 }, 3, { x: 100, y: 50 });
    close(view.scale, 12);
    const p = toScreen(view, toWorld({ scale: 4, x: 0, y: 0 }, { x: 100, y: 50 }));
    close(p.x, 100);
    close(p.y, 50);
  });

  it('zooms out no further than the whole map and keeps it on screen', () => {
    const limits = limitsFor(world, box);
    close(limits.min, 358 / 104);
    const out = clampView({ scale: 0.5, x: 999, y: -999 }, box, world, limits);
    close(out.scale, limits.min);
    close(out.x, 0); // exactly as wide as the box
    close(out.y, (500 - 110 * limits.min) / 2); // shorter than the box: centred
  });

  it('cannot drag a zoomed map past its edges', () => {
    const limits = limitsFor(world, box);
    const right = clampView({ scale: 24, x: 200, y: 300 }, box, world, limits);
    expect([right.x, right.y]).toEqual([0, 0]);
    const left = clampView({ scale: 24, x: -99999, y: -99999 }, box, world, limits);
    close(left.x, 358 - 104 * 24);
    close(left.y, 500 - 110 * 24);
  });
});

describe('default and section views', () => {
  const box = { width: 358, height: 500 };

  it('keeps seats at least 24 px even when the section is wider than a phone', () => {
    const wide = { x: 0, y: 0, width: 104, height: 30 };
    const view = sectionView(wide, box);
    expect(view.scale).toBe(MIN_DEFAULT_PITCH);
    close(toWorld(view, { x: 179, y: 0 }).x, 52); // its middle in the middle
  });

  it('fills the width with a narrow section, up to a maximum seat size', () => {
    expect(sectionView({ x: 0, y: 0, width: 12, height: 5 }, box).scale).toBeCloseTo(358 / 12);
    expect(sectionView({ x: 0, y: 0, width: 4, height: 5 }, box).scale).toBe(MAX_DEFAULT_PITCH);
  });

  it('shows the top of a section taller than the box', () => {
    const view = sectionView({ x: 10, y: 7, width: 14, height: 40 }, box);
    close(toScreen(view, { x: 0, y: 7 }).y, 0);
  });

  it('fits a rectangle', () => {
    const view = fitView({ x: 0, y: 0, width: 100, height: 50 }, box);
    close(view.scale, 3.58);
    expect(shows(view, { x: 0, y: 0, width: 100, height: 50 }, box)).toBe(true);
  });
});

describe('reveal', () => {
  const box = { width: 300, height: 300 };

  it('pans as little as needed to bring a seat inside the margin', () => {
    const view: View = { scale: 30, x: 0, y: 0 };
    const seat = { x: 12, y: 1, width: 1, height: 1 }; // at 360–390 px: off the right edge
    const moved = reveal(view, seat, box, 30);
    expect(moved.y).toBe(0);
    close(toScreen(moved, { x: 13, y: 0 }).x, 270);
    expect(reveal(moved, seat, box, 30)).toEqual(moved); // already in view: no move
  });
});

describe('pixel grid', () => {
  it('snaps to whole device pixels per seat, zooming about the anchor', () => {
    const view = snapView({ scale: 23.9, x: 10.1, y: -3.33 }, 3, { x: 150, y: 150 });
    expect(isSnapped(view, 3)).toBe(true);
    close(view.scale * 3, 72);
    const before = toWorld({ scale: 23.9, x: 10.1, y: -3.33 }, { x: 150, y: 150 });
    const after = toScreen(view, before);
    expect(Math.abs(after.x - 150)).toBeLessThan(1);
    expect(Math.abs(after.y - 150)).toBeLessThan(1);
  });
});

describe('animation', () => {
  const box = { width: 200, height: 100 };
  it('goes from one view to the other, zooming geometrically', () => {
    const from: View = { scale: 4, x: 0, y: 0 };
    const to: View = { scale: 16, x: -300, y: -100 };
    expect(between(from, to, 0, box)).toBe(from);
    expect(between(from, to, 1, box)).toBe(to);
    close(between(from, to, 0.5, box).scale, 8);
  });
});
