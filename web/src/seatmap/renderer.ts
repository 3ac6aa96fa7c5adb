// Drawing the seat map on a <canvas>, sized for the device's pixel ratio.
//
// A full draw buckets seats by colour and fills each bucket as one path (a handful of fills for
// 20,000 seats). Every seat owns a square cell, and all its pixels (seat, selection mark, focus
// ring) stay inside that cell, so a changed seat is redrawn by repainting its cell alone: deltas
// cost in proportion to the seats that changed, not to the map.

import { STAGE_UNITS, type SeatGeometry } from './geometry';

export interface SeatLook {
  fill: string;
  /** The user's pick (selected, or in their hold): a white dot in the middle. */
  mark: boolean;
  /** Keyboard focus: a ring in the cell's margin. */
  ring: boolean;
}

export const COLOURS = {
  background: '#ffffff',
  unknown: '#e2e8f0',
  held: '#f59e0b',
  sold: '#94a3b8',
  blocked: '#334155',
  selected: '#e11d48',
  ring: '#0f172a',
  stage: '#1e293b',
  stageText: '#f8fafc',
  label: '#475569',
  tiers: ['#7c3aed', '#2563eb', '#0d9488', '#65a30d', '#c026d3', '#0891b2', '#4f46e5', '#15803d'],
} as const;

export function tierColour(tierIndex: number): string {
  return COLOURS.tiers[tierIndex % COLOURS.tiers.length] ?? COLOURS.tiers[0];
}

/** Margin around the map, in seat units. */
const MARGIN = 1;
/** Largest canvas side in device pixels (browsers refuse much larger canvases). */
const MAX_DEVICE_PX = 16_000;
const MAX_PITCH = 26;
const MIN_PITCH = 2;

export class SeatMapRenderer {
  private readonly ctx: CanvasRenderingContext2D;
  /** CSS pixels per seat unit. */
  pitch = 10;
  private dpr = 1;
  /** Rounded corners cost ~8x a plain rect per seat: only where they show and stay cheap. */
  private rounded = false;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly g: SeatGeometry,
  ) {
    const ctx = canvas.getContext('2d', { alpha: false });
    if (!ctx) throw new Error('canvas 2D is not available');
    this.ctx = ctx;
  }

  /** Fit the map to `cssWidth` CSS pixels, times `zoom`; returns the pitch used. */
  layout(cssWidth: number, zoom: number, dpr: number): number {
    this.dpr = dpr > 0 ? dpr : 1;
    const unitsWide = this.g.width + 2 * MARGIN;
    const unitsHigh = this.g.height + 2 * MARGIN;
    let pitch = Math.min(MAX_PITCH, Math.max(MIN_PITCH, cssWidth / unitsWide)) * zoom;
    const largest = Math.max(unitsWide, unitsHigh) * this.dpr;
    pitch = Math.min(pitch, MAX_DEVICE_PX / largest);
    // Whole device pixels per cell: cell edges fall on pixel edges, so repainting one cell
    // never leaves an anti-aliased seam on its neighbours.
    const devicePitch = Math.max(1, Math.floor(pitch * this.dpr));
    this.pitch = devicePitch / this.dpr;
    this.rounded = this.pitch >= 8 && this.g.count <= 10_000;
    this.canvas.width = devicePitch * unitsWide;
    this.canvas.height = devicePitch * unitsHigh;
    this.canvas.style.width = `${this.pitch * unitsWide}px`;
    this.canvas.style.height = `${this.pitch * unitsHigh}px`;
    return this.pitch;
  }

  /** Top-left corner of seat `i`'s cell, in CSS pixels from the canvas's corner. */
  cellOrigin(i: number): { x: number; y: number } {
    const line = this.g.lines[this.g.line[i] ?? 0];
    return { x: ((this.g.col[i] ?? 0) + MARGIN) * this.pitch, y: ((line?.y ?? 0) + MARGIN) * this.pitch };
  }

  /** CSS pixel offset within the canvas → seat units (fractions), for hit testing. */
  toUnits(x: number, y: number): { x: number; y: number } {
    return { x: x / this.pitch - MARGIN, y: y / this.pitch - MARGIN };
  }

  drawAll(lookOf: (i: number) => SeatLook): void {
    const { ctx, g } = this;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = COLOURS.background;
    ctx.fillRect(0, 0, this.canvas.width / this.dpr, this.canvas.height / this.dpr);
    this.drawStage();
    this.drawSectionLabels();
    const buckets = new Map<string, number[]>();
    const decorated: number[] = [];
    for (let i = 0; i < g.count; i++) {
      const look = lookOf(i);
      let bucket = buckets.get(look.fill);
      if (!bucket) buckets.set(look.fill, (bucket = []));
      bucket.push(i);
      if (look.mark || look.ring) decorated.push(i);
    }
    for (const [fill, seats] of buckets) {
      ctx.fillStyle = fill;
      ctx.beginPath();
      for (const i of seats) this.seatPath(i);
      ctx.fill();
    }
    for (const i of decorated) this.decorate(i, lookOf(i));
  }

  /** Repaint just these seats' cells. */
  drawSeats(seats: Iterable<number>, lookOf: (i: number) => SeatLook): void {
    const { ctx } = this;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    for (const i of seats) {
      if (i < 0 || i >= this.g.count) continue;
      const { x, y } = this.cellOrigin(i);
      ctx.fillStyle = COLOURS.background;
      ctx.fillRect(x, y, this.pitch, this.pitch);
      const look = lookOf(i);
      ctx.fillStyle = look.fill;
      ctx.beginPath();
      this.seatPath(i);
      ctx.fill();
      this.decorate(i, look);
    }
  }

  private inset(): number {
    return Math.max(0.5, this.pitch * 0.16);
  }

  private seatPath(i: number): void {
    const { x, y } = this.cellOrigin(i);
    const inset = this.inset();
    const size = this.pitch - 2 * inset;
    if (this.rounded) this.ctx.roundRect(x + inset, y + inset, size, size, size * 0.28);
    else this.ctx.rect(x + inset, y + inset, size, size);
  }

  private decorate(i: number, look: SeatLook): void {
    const { ctx } = this;
    const { x, y } = this.cellOrigin(i);
    const half = this.pitch / 2;
    if (look.mark && this.pitch >= 5) {
      ctx.fillStyle = '#ffffff';
      ctx.beginPath();
      ctx.arc(x + half, y + half, Math.max(1, this.pitch * 0.14), 0, Math.PI * 2);
      ctx.fill();
    }
    if (look.ring) {
      const width = Math.max(1, this.inset() * 0.9);
      ctx.strokeStyle = COLOURS.ring;
      ctx.lineWidth = width;
      ctx.strokeRect(x + width / 2, y + width / 2, this.pitch - width, this.pitch - width);
    }
  }

  private drawStage(): void {
    const { ctx, g, pitch } = this;
    const width = Math.max(5, g.width * 0.6) * pitch;
    const x = ((g.width + 2 * MARGIN) * pitch - width) / 2;
    const y = (MARGIN + 0.4) * pitch;
    const height = (STAGE_UNITS - 2) * pitch;
    ctx.fillStyle = COLOURS.stage;
    ctx.beginPath();
    ctx.roundRect(x, y, width, height, Math.min(height / 2, 10));
    ctx.fill();
    ctx.fillStyle = COLOURS.stageText;
    ctx.font = `600 ${Math.max(7, Math.min(14, height * 0.55, width / 5))}px system-ui, sans-serif`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText('STAGE', x + width / 2, y + height / 2);
  }

  /** Each label sits on its section's label line and may rise into the empty line above it
   *  (the gap between sections, or the space under the stage): up to two units of height. */
  private drawSectionLabels(): void {
    const { ctx, pitch } = this;
    ctx.fillStyle = COLOURS.label;
    ctx.font = `600 ${Math.max(8, Math.min(13, pitch * 1.5))}px system-ui, sans-serif`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    for (const section of this.g.sections) {
      ctx.fillText(section.name, (section.centre + MARGIN) * pitch, (section.y + MARGIN + 0.95) * pitch);
    }
  }
}
