import { describe, expect, it } from 'vitest';

import type { Layout, Tier } from '../shared/types';
import {
  buildGeometry,
  cellX,
  cellY,
  labelOf,
  MARGIN_X,
  MARGIN_Y,
  move,
  seatAt,
  seatAtWorld,
  sectionAtWorld,
  sectionOf,
  sectionRect,
  STAGE_UNITS,
  worldWidth,
} from './geometry';

const TIERS: Tier[] = [
  { id: 7, name: 'Premium', price_cents: 12000, currency: 'EUR' },
  { id: 9, name: 'Value', price_cents: 3900, currency: 'EUR' },
];

function row(section: string, name: string, n: number, tier: number) {
  return {
    name,
    seats: Array.from({ length: n }, (_, k) => ({ id: `${section}-${name}-${k + 1}`, number: k + 1, tier_id: tier })),
  };
}

const LAYOUT: Layout = {
  sections: [
    { name: 'STALLS', rows: [row('STALLS', 'A', 6, 7), row('STALLS', 'B', 4, 7)] },
    { name: 'BALCONY', rows: [row('BALCONY', 'A', 2, 9)] },
  ],
};

describe('buildGeometry', () => {
  const g = buildGeometry(LAYOUT, TIERS);

  it('indexes every seat in layout order', () => {
    expect(g.count).toBe(12);
    expect(g.ids[0]).toBe('STALLS-A-1');
    expect(g.index.get('BALCONY-A-2')).toBe(11);
    expect(g.width).toBe(6);
  });

  it('centres rows and stacks sections below the stage', () => {
    const a1 = g.index.get('STALLS-A-1')!;
    const b1 = g.index.get('STALLS-B-1')!;
    expect(g.col[a1]).toBe(0);
    expect(g.col[b1]).toBe(1); // 4 seats centred in 6
    const lineA = g.lines[g.line[a1]!]!;
    expect(lineA.y).toBe(STAGE_UNITS + 1); // below the section label
    const balcony = g.lines[g.line[g.index.get('BALCONY-A-1')!]!]!;
    expect(balcony.y).toBe(lineA.y + 2 + 2); // two rows, a gap, a label
    expect(balcony.col).toBe(2);
  });

  it('hit-tests unit coordinates', () => {
    const y = g.lines[0]!.y;
    expect(seatAt(g, 0.5, y + 0.5)).toBe(0);
    expect(seatAt(g, 5.9, y + 0.1)).toBe(5);
    expect(seatAt(g, 6.1, y)).toBe(-1);
    expect(seatAt(g, 0.5, y - 1)).toBe(-1); // the label line
    expect(seatAt(g, 0.5, y + 1)).toBe(-1); // row B starts at column 1
    expect(seatAt(g, 1.5, y + 1)).toBe(6);
  });

  it('labels seats with their tier', () => {
    expect(labelOf(g, 11)).toEqual({ section: 'BALCONY', row: 'A', number: 2, tier: TIERS[1] });
  });
});

describe('keyboard moves', () => {
  const g = buildGeometry(LAYOUT, TIERS);
  const at = (id: string) => g.index.get(id)!;

  it('left and right stay within the row', () => {
    expect(move(g, at('STALLS-A-1'), 'left')).toBe(at('STALLS-A-1'));
    expect(move(g, at('STALLS-A-1'), 'right')).toBe(at('STALLS-A-2'));
    expect(move(g, at('STALLS-A-6'), 'right')).toBe(at('STALLS-A-6'));
    expect(move(g, at('STALLS-A-3'), 'home')).toBe(at('STALLS-A-1'));
    expect(move(g, at('STALLS-A-3'), 'end')).toBe(at('STALLS-A-6'));
  });

  it('up and down keep the nearest column, across sections', () => {
    expect(move(g, at('STALLS-A-1'), 'down')).toBe(at('STALLS-B-1')); // clamped into the row
    expect(move(g, at('STALLS-A-4'), 'down')).toBe(at('STALLS-B-3')); // same column
    expect(move(g, at('STALLS-B-2'), 'down')).toBe(at('BALCONY-A-1'));
    expect(move(g, at('BALCONY-A-2'), 'down')).toBe(at('BALCONY-A-2'));
    expect(move(g, at('STALLS-A-2'), 'up')).toBe(at('STALLS-A-2'));
    expect(move(g, at('BALCONY-A-2'), 'up')).toBe(at('STALLS-B-3'));
  });

  it('starts at the first seat when nothing is focused', () => {
    expect(move(g, -1, 'right')).toBe(0);
  });
});

describe('world coordinates and sections', () => {
  const g = buildGeometry(LAYOUT, TIERS);

  it('puts seats inside the margins', () => {
    const a1 = g.index.get('STALLS-A-1')!;
    expect(cellX(g, a1)).toBe(MARGIN_X);
    expect(cellY(g, a1)).toBe(STAGE_UNITS + 1 + MARGIN_Y);
    expect(seatAtWorld(g, MARGIN_X + 0.5, cellY(g, a1) + 0.5)).toBe(a1);
    expect(worldWidth(g)).toBe(6 + 2 * MARGIN_X);
  });

  it('finds the section under a point, the stage counting as the first', () => {
    const balcony = g.index.get('BALCONY-A-1')!;
    expect(sectionAtWorld(g, cellX(g, balcony) + 0.5, cellY(g, balcony) + 0.5)).toBe(1);
    expect(sectionAtWorld(g, MARGIN_X + 3, 1)).toBe(0); // the stage
    expect(sectionAtWorld(g, MARGIN_X + 3, STAGE_UNITS + MARGIN_Y + 0.5)).toBe(0); // its label line
    expect(sectionAtWorld(g, 0, cellY(g, balcony))).toBe(-1); // far left of a narrow section
    expect(sectionOf(g, balcony)).toBe(1);
  });

  it('a section’s rectangle holds all its seats and row labels', () => {
    const rect = sectionRect(g, 1);
    const balcony = g.index.get('BALCONY-A-1')!;
    expect(rect.x).toBeLessThanOrEqual(cellX(g, balcony) - 1);
    expect(rect.y).toBeLessThanOrEqual(cellY(g, balcony));
    expect(rect.y + rect.height).toBeGreaterThanOrEqual(cellY(g, balcony) + 1);
    expect(sectionRect(g, 0).y).toBe(0); // the first one includes the stage
  });
});
