// Where each seat sits on the map, in "seat units" (one unit = one seat pitch), computed once per
// event from its layout (sections → rows → seats). Pure: the camera scales units to pixels.
//
// The stage is at the top; sections are stacked below it, each centred, with a label line above
// its rows; each row is centred within its section. Seats of a row occupy consecutive columns,
// so hit testing and keyboard moves are arithmetic on a row ("line"), not a search.
//
// "World" coordinates are units with the margins added: the whole map is the rectangle
// (0, 0)–(worldWidth, worldHeight), and seat i's cell is the unit square at
// (col[i] + MARGIN_X, line.y + MARGIN_Y). The side margins hold the row labels.

import type { Layout, Tier } from '../shared/types';

/** Units reserved above the first section for the stage (and clear space under it). */
export const STAGE_UNITS = 4;

export interface Line {
  section: string;
  row: string;
  /** Index of the line's first seat in the seat arrays. */
  start: number;
  count: number;
  /** Column of the first seat, and the line's y (both in units). */
  col: number;
  y: number;
}

export interface SectionLabel {
  name: string;
  /** Unit row of the label line, and the horizontal centre of the section. */
  y: number;
  centre: number;
  /** First column and width of the section's widest row; its lines are [firstLine, lastLine]. */
  col: number;
  width: number;
  firstLine: number;
  lastLine: number;
}

/** A rectangle in world units. */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Columns left and right of the map (row labels live there), and rows above and below it. */
export const MARGIN_X = 2;
export const MARGIN_Y = 1;

export interface SeatGeometry {
  count: number;
  ids: string[];
  /** seat id → index into every per-seat array. */
  index: Map<string, number>;
  col: Int32Array;
  line: Int32Array;
  number: Int32Array;
  /** Index into `tiers` (the event's tiers, in the event's order). */
  tier: Uint16Array;
  tiers: Tier[];
  lines: Line[];
  sections: SectionLabel[];
  /** Unit row → line index, or -1 for label and gap rows. */
  lineAtY: Int32Array;
  /** Size of the map in units (without margins). */
  width: number;
  height: number;
}

export type Direction = 'left' | 'right' | 'up' | 'down' | 'home' | 'end';

export function buildGeometry(layout: Layout, tiers: Tier[]): SeatGeometry {
  const tierIndex = new Map(tiers.map((t, i) => [t.id, i]));
  let count = 0;
  let width = 1;
  for (const section of layout.sections) {
    for (const row of section.rows) {
      count += row.seats.length;
      width = Math.max(width, row.seats.length);
    }
  }
  const g: SeatGeometry = {
    count,
    ids: new Array<string>(count),
    index: new Map(),
    col: new Int32Array(count),
    line: new Int32Array(count),
    number: new Int32Array(count),
    tier: new Uint16Array(count),
    tiers,
    lines: [],
    sections: [],
    lineAtY: new Int32Array(0),
    width,
    height: 0,
  };
  let y = STAGE_UNITS;
  let i = 0;
  for (const section of layout.sections) {
    const sectionWidth = Math.max(1, ...section.rows.map((r) => r.seats.length));
    const sectionCol = Math.floor((width - sectionWidth) / 2);
    const label: SectionLabel = {
      name: section.name,
      y,
      centre: sectionCol + sectionWidth / 2,
      col: sectionCol,
      width: sectionWidth,
      firstLine: g.lines.length,
      lastLine: g.lines.length + section.rows.length - 1,
    };
    g.sections.push(label);
    y += 1; // the label line
    for (const row of section.rows) {
      const col = sectionCol + Math.floor((sectionWidth - row.seats.length) / 2);
      const lineIndex = g.lines.length;
      g.lines.push({ section: section.name, row: row.name, start: i, count: row.seats.length, col, y });
      row.seats.forEach((seat, k) => {
        g.ids[i] = seat.id;
        g.index.set(seat.id, i);
        g.col[i] = col + k;
        g.line[i] = lineIndex;
        g.number[i] = seat.number;
        g.tier[i] = tierIndex.get(seat.tier_id) ?? 0;
        i += 1;
      });
      y += 1;
    }
    y += 1; // a gap between sections
  }
  g.height = y;
  g.lineAtY = new Int32Array(y).fill(-1);
  g.lines.forEach((line, n) => {
    g.lineAtY[line.y] = n;
  });
  return g;
}

/** The seat at unit coordinates (x, y) (fractions allowed), or -1. */
export function seatAt(g: SeatGeometry, x: number, y: number): number {
  const row = Math.floor(y);
  if (row < 0 || row >= g.height) return -1;
  const n = g.lineAtY[row] ?? -1;
  const line = g.lines[n];
  if (!line) return -1;
  const k = Math.floor(x) - line.col;
  return k >= 0 && k < line.count ? line.start + k : -1;
}

export function worldWidth(g: SeatGeometry): number {
  return g.width + 2 * MARGIN_X;
}

export function worldHeight(g: SeatGeometry): number {
  return g.height + 2 * MARGIN_Y;
}

/** World x and y of seat i's cell (its top-left corner). */
export function cellX(g: SeatGeometry, i: number): number {
  return (g.col[i] ?? 0) + MARGIN_X;
}

export function cellY(g: SeatGeometry, i: number): number {
  return (g.lines[g.line[i] ?? 0]?.y ?? 0) + MARGIN_Y;
}

/** The seat at world coordinates (x, y), or -1. */
export function seatAtWorld(g: SeatGeometry, x: number, y: number): number {
  return seatAt(g, x - MARGIN_X, y - MARGIN_Y);
}

/**
 * The section at world (x, y): the one whose band (label line to last row, plus the gap below)
 * holds y, if x is within its widest row (with a unit of slack); -1 elsewhere. The stage band
 * above the first section counts as the first section.
 */
export function sectionAtWorld(g: SeatGeometry, x: number, y: number): number {
  const uy = y - MARGIN_Y;
  const ux = x - MARGIN_X;
  for (let s = 0; s < g.sections.length; s++) {
    const section = g.sections[s]!;
    const top = s === 0 ? -MARGIN_Y : section.y;
    const bottom = (g.lines[section.lastLine]?.y ?? section.y) + 2;
    if (uy >= top && uy < bottom) {
      return ux >= section.col - 1 && ux < section.col + section.width + 1 ? s : -1;
    }
  }
  return -1;
}

/**
 * A section's rectangle in world units: its label line, rows, the row labels beside them. The
 * first section's rectangle reaches up to the top of the map, so the stage shows with it.
 */
export function sectionRect(g: SeatGeometry, s: number): Rect {
  const section = g.sections[s];
  if (!section) return { x: 0, y: 0, width: worldWidth(g), height: worldHeight(g) };
  const top = s === 0 ? 0 : section.y + MARGIN_Y - 0.5;
  const bottom = (g.lines[section.lastLine]?.y ?? section.y) + MARGIN_Y + 1.5;
  return { x: section.col + MARGIN_X - 2, y: top, width: section.width + 4, height: bottom - top };
}

/** The section that seat i is in. */
export function sectionOf(g: SeatGeometry, i: number): number {
  const line = g.line[i] ?? -1;
  for (let s = 0; s < g.sections.length; s++) {
    const section = g.sections[s]!;
    if (line >= section.firstLine && line <= section.lastLine) return s;
  }
  return -1;
}

/** Where keyboard focus goes from seat `i` (arrow keys; up/down keep the nearest column). */
export function move(g: SeatGeometry, i: number, direction: Direction): number {
  if (g.count === 0) return -1;
  if (i < 0 || i >= g.count) return 0;
  const lineIndex = g.line[i] ?? 0;
  const line = g.lines[lineIndex];
  if (!line) return i;
  switch (direction) {
    case 'left':
      return i > line.start ? i - 1 : i;
    case 'right':
      return i < line.start + line.count - 1 ? i + 1 : i;
    case 'home':
      return line.start;
    case 'end':
      return line.start + line.count - 1;
    case 'up':
    case 'down': {
      const target = g.lines[lineIndex + (direction === 'up' ? -1 : 1)];
      if (!target || target.count === 0) return i;
      const k = Math.min(Math.max((g.col[i] ?? 0) - target.col, 0), target.count - 1);
      return target.start + k;
    }
  }
}

export interface SeatLabel {
  section: string;
  row: string;
  number: number;
  tier: Tier | undefined;
}

export function labelOf(g: SeatGeometry, i: number): SeatLabel | undefined {
  const line = g.lines[g.line[i] ?? -1];
  if (!line || i < 0 || i >= g.count) return undefined;
  return { section: line.section, row: line.row, number: g.number[i] ?? 0, tier: g.tiers[g.tier[i] ?? 0] };
}
