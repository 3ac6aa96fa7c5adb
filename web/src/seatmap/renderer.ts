// Drawing the seat map on a <canvas> the size of its box, through the camera (camera.ts).
//
// A frame draws only what is in view: the rows whose band crosses the box and, in each, the
// seats whose columns do (arithmetic on the row, no search). Seats are bucketed by style. With
// a few hundred seats in view (the usual zoom) each bucket is filled as one path. With
// thousands of tiny seats (a zoomed-out map: 10,000 seats a few pixels each) they are written
// straight into the canvas's pixels as solid squares (ImageData): in Chromium's software canvas
// that is 2–4x cheaper than rasterizing a path of 10,000 rects, and keeps a pinch through the
// whole map inside a frame on a throttled phone (scripts/bench_seatmap.py). Both ways put every
// seat's square on whole device pixels, so they look the same.
// Every seat owns a square cell and all its pixels (seat, "yours" mark, focus ring) stay inside
// it, so while the view sits on the device pixel grid (camera.snapView) a changed seat is
// redrawn by repainting its cell alone: deltas cost what changed, not the map.
//
// Panning keeps the zoom, so the seat layer (background, seats, the user's marks) does not change
// under it, it only moves. Once a scale has been drawn twice in a row, the seat layer is cut into
// TILE x TILE device-pixel tiles, each drawn once into a small canvas of its own, and a frame
// copies the tiles in view (whole device pixels, no scaling: a plain copy) and draws the few
// things that depend on the view on top (stage, row and section labels, the focus ring). A pan
// then draws only the tiles it brings into view. Rasterizing hundreds of anti-aliased seat
// shapes every frame was most of a frame's main-thread time on a throttled phone (Chromium
// rasterizes a software canvas on the main thread): scripts/bench_seatmap.py. A changed seat is
// repainted in the cached tiles too (repaintCached); a new snapshot, a resize or another scale
// drops them. While the scale changes every frame (a pinch, a zoom animation) frames are drawn
// directly, as before.
//
// While the map moves (a drag, a pinch, a wheel zoom, an animation: setMotion) the canvas keeps at
// most MOTION_DPR device pixels per CSS pixel; at rest it is drawn again at the screen's full
// density. On a 3x phone a frame then has 2.25x fewer pixels to draw, copy and hand to the
// compositor, which is what most of a moving frame costs; a moving picture does not show the
// difference, and the map is sharp again the moment it stops.
//
// A pinch changes the scale every frame, and zoomed out it has thousands of seats in view. Once
// the map is at rest, an overview of the whole map (every seat at OVERVIEW_PITCH device px, at
// most OVERVIEW_SIZE px a side) is drawn in idle time; a moving frame whose seats are no larger
// than the overview's (or up to OVERVIEW_STRETCH times larger) is one scaled copy of it (smoothed:
// softer while the fingers move, sharp at rest). Changed seats are repainted in it as in the tiles.

import type { View } from './camera';
import { MARGIN_X, MARGIN_Y, STAGE_UNITS, worldHeight, worldWidth, type SeatGeometry } from './geometry';

/** Seat styles: an index into the palette. The user's own seats carry a white mark. */
export const Style = {
  Unknown: 0,
  Held: 1,
  Sold: 2,
  Blocked: 3,
  /** Picked, not yet held. */
  Selected: 4,
  /** In the user's active hold. */
  MineHeld: 5,
  /** Bought by the user (a ticket of theirs). */
  MineBought: 6,
  /** Available seats: Tier + the tier's index. */
  Tier: 7,
} as const;

export const COLOURS = {
  background: '#ffffff',
  unknown: '#e2e8f0',
  held: '#f59e0b',
  sold: '#94a3b8',
  blocked: '#334155',
  selected: '#e11d48',
  mineHeld: '#9f1239',
  mineBought: '#15803d',
  mark: '#ffffff',
  ring: '#0f172a',
  stage: '#1e293b',
  stageText: '#f8fafc',
  label: '#475569',
  rowLabel: '#475569',
  labelTab: 'rgba(255, 255, 255, 0.92)',
  tiers: ['#7c3aed', '#2563eb', '#0d9488', '#65a30d', '#c026d3', '#0891b2', '#4f46e5', '#ca8a04'],
} as const;

export function tierColour(tierIndex: number): string {
  return COLOURS.tiers[tierIndex % COLOURS.tiers.length] ?? COLOURS.tiers[0];
}

export function isMine(style: number): boolean {
  return style === Style.Selected || style === Style.MineHeld || style === Style.MineBought;
}

/** Row labels show from this pitch (CSS px) up; below it they would be unreadable. */
const ROW_LABEL_PITCH = 12;
/** Rounded corners cost ~8x a plain rect per seat: only where they show and stay cheap. */
const ROUNDED_PITCH = 10;
/** Seats are drawn as pixels when more than this many are in view and each is at most
 *  PIXEL_PITCH device pixels wide: then rasterizing a path costs more per seat than writing its
 *  few pixels does. (Larger seats have more pixels to write: a path is cheaper again.) */
const PIXEL_SEATS = 1_500;
const PIXEL_PITCH = 12;
/** Tiles of the seat layer: this many device pixels square, at most MAX_TILES kept. */
const TILE = 256;
const MAX_TILES = 128;
/** The overview: at most this many pixels per seat and this many pixels a side. */
const OVERVIEW_PITCH = 16;
const OVERVIEW_SIZE = 2048;
/** A moving frame uses the overview up to this much enlarged. */
const OVERVIEW_STRETCH = 2;
/** Device pixels per CSS pixel, at most, while the map moves. */
const MOTION_DPR = 2;

interface Tile {
  tx: number;
  ty: number;
  canvas: HTMLCanvasElement;
  ctx: CanvasRenderingContext2D;
}

/** '#rrggbb' as one opaque pixel of a little-endian RGBA buffer (Uint32Array over ImageData). */
function pixelOf(hex: string): number {
  const n = Number.parseInt(hex.slice(1), 16);
  return ((0xff << 24) | ((n & 0xff) << 16) | (n & 0xff00) | ((n >> 16) & 0xff)) >>> 0;
}

export class SeatMapRenderer {
  private readonly ctx: CanvasRenderingContext2D;
  private readonly palette: string[];
  private readonly palettePixels: number[];
  /** One reusable index list per style (no allocation per frame once they have grown). */
  private readonly buckets: number[][];
  /** The canvas's pixels, for frames drawn as pixels (allocated on the first such frame). */
  private image: ImageData | null = null;
  private width = 0;
  private height = 0;
  /** Device pixels per CSS pixel of the canvas now (less than the screen's while moving). */
  private dpr = 1;
  /** The screen's device pixels per CSS pixel. */
  private screenDpr = 1;
  private motion = false;
  /** Cached seat-layer tiles (key `tx,ty`) at `tileScale`; insertion order = least recent first. */
  private tiles = new Map<string, Tile>();
  private tileScale = 0;
  /** The scale of the last full frame: a scale drawn twice in a row is worth tiling. */
  private lastScale = 0;
  /** The whole map at `pitch` pixels per unit (null until drawn, or after a snapshot). */
  private overview: { canvas: HTMLCanvasElement; ctx: CanvasRenderingContext2D; pitch: number } | null = null;
  private overviewPending = false;
  /** Seats drawn by the last full frame. */
  visibleSeats = 0;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly g: SeatGeometry,
  ) {
    const ctx = canvas.getContext('2d', { alpha: false });
    if (!ctx) throw new Error('canvas 2D is not available');
    this.ctx = ctx;
    this.palette = [
      COLOURS.unknown,
      COLOURS.held,
      COLOURS.sold,
      COLOURS.blocked,
      COLOURS.selected,
      COLOURS.mineHeld,
      COLOURS.mineBought,
      ...g.tiers.map((_, i) => tierColour(i)),
    ];
    if (g.tiers.length === 0) this.palette.push(tierColour(0));
    this.palettePixels = this.palette.map(pixelOf);
    this.buckets = this.palette.map(() => []);
  }

  /** The box is `width` × `height` CSS pixels on a screen of `dpr` device pixels per CSS px. */
  setSize(width: number, height: number, dpr: number): void {
    this.width = width;
    this.height = height;
    this.screenDpr = dpr > 0 ? dpr : 1;
    this.allocate();
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
  }

  /** Whether the map is moving (see MOTION_DPR). Returns true when the canvas was reallocated
   *  (and so cleared): then the caller draws the whole frame. */
  setMotion(moving: boolean): boolean {
    if (moving === this.motion) return false;
    this.motion = moving;
    const before = this.dpr;
    if (this.density() === before) return false;
    this.allocate();
    return true;
  }

  /** Device pixels per CSS pixel of the canvas now: a view on this grid draws crisp cells. */
  get pixelRatio(): number {
    return this.dpr;
  }

  private density(): number {
    return this.motion ? Math.min(this.screenDpr, MOTION_DPR) : this.screenDpr;
  }

  private allocate(): void {
    this.dpr = this.density();
    this.canvas.width = Math.max(1, Math.round(this.width * this.dpr));
    this.canvas.height = Math.max(1, Math.round(this.height * this.dpr));
    this.image = null;
    this.tiles.clear();
    this.tileScale = 0;
  }

  /** The whole frame. `focus` is the seat with the keyboard ring, or -1. */
  draw(view: View, styleOf: (i: number) => number, focus: number): void {
    const { ctx } = this;
    const { scale } = view;
    const rowFrom = Math.max(0, Math.floor(-view.y / scale - MARGIN_Y));
    const rowTo = Math.min(this.g.height - 1, Math.floor((this.height - view.y) / scale - MARGIN_Y));
    const tiled = scale === this.lastScale || (scale === this.tileScale && this.tiles.size > 0);
    this.lastScale = scale;
    const overview = this.motion && !tiled && this.overview && scale * this.dpr <= this.overview.pitch * OVERVIEW_STRETCH ? this.overview : null;
    const seen = this.collect(view, this.width, this.height, tiled || overview ? null : styleOf, focus);
    this.visibleSeats = seen.visible;
    if (tiled) {
      this.blitTiles(view, styleOf);
      ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    } else if (overview) {
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = COLOURS.background;
      ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
      const zoom = (scale * this.dpr) / overview.pitch;
      const { width, height } = overview.canvas;
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(overview.canvas, view.x * this.dpr, view.y * this.dpr, width * zoom, height * zoom);
      ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    } else {
      ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
      if (this.visibleSeats > PIXEL_SEATS && scale * this.dpr <= PIXEL_PITCH) {
        this.pixels(view);
      } else {
        // A frame of a pinch or a zoom animation (the scale changes every frame): plain squares,
        // as rounded corners cost several times more; the frame at rest rounds them again.
        this.paintBuckets(ctx, view, this.width, this.height, !this.motion && this.rounded(scale));
      }
    }
    this.drawStage(view);
    if (!this.motion && !this.overview) this.prepareOverview(styleOf);
    if (!tiled && !overview) {
      for (let style = Style.Selected; style <= Style.MineBought; style++) {
        for (const i of this.buckets[style] ?? []) this.mark(ctx, view, i);
      }
    }
    if (seen.focusShown) this.ring(view, focus);
    this.drawRowLabels(view, rowFrom, rowTo);
    this.drawSectionLabels(view);
  }

  /**
   * The seats whose cells cross a `width` x `height` (CSS px) box seen through `view`. With
   * `styleOf`, they are put into the style buckets too. How many, and whether `focus` is one.
   */
  private collect(
    view: View,
    width: number,
    height: number,
    styleOf: ((i: number) => number) | null,
    focus: number,
  ): { visible: number; focusShown: boolean } {
    const { g } = this;
    if (styleOf) for (const bucket of this.buckets) bucket.length = 0;
    const { scale } = view;
    const x0 = -view.x / scale - MARGIN_X;
    const x1 = (width - view.x) / scale - MARGIN_X;
    const rowFrom = Math.max(0, Math.floor(-view.y / scale - MARGIN_Y));
    const rowTo = Math.min(g.height - 1, Math.floor((height - view.y) / scale - MARGIN_Y));
    let visible = 0;
    let focusShown = false;
    for (let r = rowFrom; r <= rowTo; r++) {
      const line = g.lines[g.lineAtY[r] ?? -1];
      if (!line) continue;
      const from = Math.max(0, Math.floor(x0) - line.col);
      const to = Math.min(line.count - 1, Math.floor(x1) - line.col);
      if (to < from) continue;
      visible += to - from + 1;
      if (focus >= line.start + from && focus <= line.start + to) focusShown = true;
      if (!styleOf) continue;
      for (let k = from; k <= to; k++) {
        const i = line.start + k;
        this.buckets[styleOf(i)]?.push(i);
      }
    }
    return { visible, focusShown };
  }

  /** Background and the bucketed seats (collect) as paths, onto a box of `width` x `height`. */
  private paintBuckets(
    ctx: CanvasRenderingContext2D,
    view: View,
    width: number,
    height: number,
    rounded = this.rounded(view.scale),
  ): void {
    ctx.fillStyle = COLOURS.background;
    ctx.fillRect(0, 0, width, height);
    this.buckets.forEach((seats, style) => {
      if (seats.length === 0) return;
      ctx.fillStyle = this.palette[style] ?? COLOURS.unknown;
      ctx.beginPath();
      for (const i of seats) this.seatPath(ctx, view, i, rounded);
      ctx.fill();
    });
  }

  /** Whether seats get rounded corners at this pitch: where they show, and while the box holds
   *  few enough seats for them to stay cheap. The same for every way a seat is drawn. */
  private rounded(scale: number): boolean {
    return scale >= ROUNDED_PITCH && (this.width / scale) * (this.height / scale) <= PIXEL_SEATS;
  }

  // -- the tiled seat layer -------------------------------------------------------------------

  /** Drop the cached tiles and the overview (the seats' styles all changed: a snapshot). */
  forget(): void {
    this.tiles.clear();
    this.tileScale = 0;
    this.overview = null;
  }

  /** Draw the overview in idle time (soon after the map comes to rest). */
  private prepareOverview(styleOf: (i: number) => number): void {
    if (this.overviewPending) return;
    this.overviewPending = true;
    const build = () => {
      this.overviewPending = false;
      if (!this.overview) this.overview = this.drawOverview(styleOf);
    };
    if (typeof window.requestIdleCallback === 'function') window.requestIdleCallback(build, { timeout: 2000 });
    else window.setTimeout(build, 200);
  }

  /** Every seat at one pitch onto a canvas of its own (world unit u at pixel u × pitch). */
  private drawOverview(styleOf: (i: number) => number): { canvas: HTMLCanvasElement; ctx: CanvasRenderingContext2D; pitch: number } | null {
    const w = worldWidth(this.g);
    const h = worldHeight(this.g);
    const pitch = Math.min(OVERVIEW_PITCH, Math.floor(OVERVIEW_SIZE / Math.max(w, h)));
    if (pitch < 2) return null;
    const canvas = document.createElement('canvas');
    canvas.width = Math.ceil(w * pitch);
    canvas.height = Math.ceil(h * pitch);
    const ctx = canvas.getContext('2d', { alpha: false });
    if (!ctx) return null;
    const overview = { canvas, ctx, pitch };
    this.onOverview(() => {
      const view = { scale: pitch, x: 0, y: 0 };
      this.collect(view, canvas.width, canvas.height, styleOf, -1);
      this.paintBuckets(ctx, view, canvas.width, canvas.height, false);
      for (let style = Style.Selected; style <= Style.MineBought; style++) {
        for (const i of this.buckets[style] ?? []) this.mark(ctx, view, i);
      }
    });
    return overview;
  }

  /** Run `paint` with the overview's pixel grid (one pixel per unit of its view). */
  private onOverview(paint: () => void): void {
    const dpr = this.dpr;
    this.dpr = 1;
    try {
      paint();
    } finally {
      this.dpr = dpr;
    }
  }

  /** Copy the tiles in view onto the canvas (drawing the ones missing), at whole device pixels. */
  private blitTiles(view: View, styleOf: (i: number) => number): void {
    if (view.scale !== this.tileScale) {
      this.tiles.clear();
      this.tileScale = view.scale;
    }
    const { ctx } = this;
    const ox = Math.round(view.x * this.dpr);
    const oy = Math.round(view.y * this.dpr);
    const w = this.canvas.width;
    const h = this.canvas.height;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    const tx0 = Math.floor(-ox / TILE);
    const tx1 = Math.floor((w - 1 - ox) / TILE);
    const ty0 = Math.floor(-oy / TILE);
    const ty1 = Math.floor((h - 1 - oy) / TILE);
    for (let ty = ty0; ty <= ty1; ty++) {
      for (let tx = tx0; tx <= tx1; tx++) {
        ctx.drawImage(this.tile(tx, ty, view.scale, styleOf).canvas, ox + tx * TILE, oy + ty * TILE);
      }
    }
    // Least recently used first: drop the oldest beyond the cap (never the ones just drawn).
    for (const key of this.tiles.keys()) {
      if (this.tiles.size <= Math.max(MAX_TILES, (tx1 - tx0 + 1) * (ty1 - ty0 + 1))) break;
      this.tiles.delete(key);
    }
  }

  /** The view that draws tile (tx, ty) of the layer at `scale` onto its own canvas. */
  private tileView(tx: number, ty: number, scale: number): View {
    return { scale, x: (-tx * TILE) / this.dpr, y: (-ty * TILE) / this.dpr };
  }

  private tile(tx: number, ty: number, scale: number, styleOf: (i: number) => number): Tile {
    const key = `${tx},${ty}`;
    let tile = this.tiles.get(key);
    if (tile) {
      this.tiles.delete(key); // to the end: most recently used
      this.tiles.set(key, tile);
      return tile;
    }
    const canvas = document.createElement('canvas');
    canvas.width = TILE;
    canvas.height = TILE;
    const ctx = canvas.getContext('2d', { alpha: false });
    if (!ctx) throw new Error('canvas 2D is not available');
    tile = { tx, ty, canvas, ctx };
    const view = this.tileView(tx, ty, scale);
    const size = TILE / this.dpr;
    this.collect(view, size, size, styleOf, -1);
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    this.paintBuckets(ctx, view, size, size);
    for (let style = Style.Selected; style <= Style.MineBought; style++) {
      for (const i of this.buckets[style] ?? []) this.mark(ctx, view, i);
    }
    this.tiles.set(key, tile);
    return tile;
  }

  /** These seats changed: repaint their cells in the cached tiles that hold them. */
  repaintCached(seats: ReadonlySet<number>, styleOf: (i: number) => number): void {
    const overview = this.overview;
    if (overview) {
      overview.ctx.setTransform(1, 0, 0, 1, 0, 0);
      const view = { scale: overview.pitch, x: 0, y: 0 };
      this.onOverview(() => {
        for (const i of seats) if (i >= 0 && i < this.g.count) this.paintCell(overview.ctx, view, i, styleOf(i), false);
      });
    }
    if (this.tiles.size === 0) return;
    const scale = this.tileScale;
    const pitch = scale * this.dpr;
    const rounded = this.rounded(scale);
    for (const i of seats) {
      if (i < 0 || i >= this.g.count) continue;
      const cell = this.cell({ scale, x: 0, y: 0 }, i);
      const left = cell.x * this.dpr;
      const top = cell.y * this.dpr;
      const style = styleOf(i);
      for (let ty = Math.floor(top / TILE); ty <= Math.floor((top + pitch) / TILE); ty++) {
        for (let tx = Math.floor(left / TILE); tx <= Math.floor((left + pitch) / TILE); tx++) {
          const tile = this.tiles.get(`${tx},${ty}`);
          if (!tile) continue;
          const view = this.tileView(tx, ty, scale);
          tile.ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
          this.paintCell(tile.ctx, view, i, style, rounded);
        }
      }
    }
  }

  /** Seat i's cell: background, the seat in `style`, the user's mark. */
  private paintCell(ctx: CanvasRenderingContext2D, view: View, i: number, style: number, rounded: boolean): void {
    const { x, y } = this.cell(view, i);
    ctx.fillStyle = COLOURS.background;
    ctx.fillRect(x, y, view.scale, view.scale);
    ctx.fillStyle = this.palette[style] ?? COLOURS.unknown;
    ctx.beginPath();
    this.seatPath(ctx, view, i, rounded);
    ctx.fill();
    if (isMine(style)) this.mark(ctx, view, i);
  }

  /**
   * Repaint just these seats' cells; only while `view` is on the device pixel grid. Returns
   * false, drawing nothing, when a cell lies under a row label stuck to the box's edge (a cell
   * repaint would erase the label): then the caller draws the whole frame.
   */
  drawSeats(view: View, seats: ReadonlySet<number>, styleOf: (i: number) => number, focus: number): boolean {
    const { ctx } = this;
    if (view.scale >= ROW_LABEL_PITCH) {
      const zone = view.scale;
      for (const i of seats) {
        const { x } = this.cell(view, i);
        if (x < zone && x + view.scale > 0) return false;
        if (x + view.scale > this.width - zone && x < this.width) return false;
      }
    }
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    const rounded = this.rounded(view.scale);
    for (const i of seats) {
      if (i < 0 || i >= this.g.count) continue;
      const { x, y } = this.cell(view, i);
      if (x + view.scale < 0 || y + view.scale < 0 || x > this.width || y > this.height) continue;
      this.paintCell(ctx, view, i, styleOf(i), rounded);
      if (i === focus) this.ring(view, i);
    }
    return true;
  }

  /** Top-left corner of seat i's cell in CSS pixels of the box. */
  cell(view: View, i: number): { x: number; y: number } {
    const line = this.g.lines[this.g.line[i] ?? 0];
    return {
      x: ((this.g.col[i] ?? 0) + MARGIN_X) * view.scale + view.x,
      y: ((line?.y ?? 0) + MARGIN_Y) * view.scale + view.y,
    };
  }

  private inset(scale: number): number {
    return Math.max(0.5, Math.min(scale * 0.12, 4));
  }

  /** Seat i's square in device pixels: whole pixels, so every way of drawing it agrees. */
  private square(view: View, i: number): { x: number; y: number; size: number } {
    const { x, y } = this.cell(view, i);
    const inset = this.inset(view.scale);
    const { dpr } = this;
    return {
      x: Math.round((x + inset) * dpr),
      y: Math.round((y + inset) * dpr),
      size: Math.max(1, Math.round((view.scale - 2 * inset) * dpr)),
    };
  }

  private seatPath(ctx: CanvasRenderingContext2D, view: View, i: number, rounded: boolean): void {
    const { x, y, size } = this.square(view, i);
    const { dpr } = this;
    if (rounded) ctx.roundRect(x / dpr, y / dpr, size / dpr, size / dpr, (size / dpr) * 0.28);
    else ctx.rect(x / dpr, y / dpr, size / dpr, size / dpr);
  }

  /** The frame's background and seats written as pixels (many small seats in view). The same
   *  squares as square(), computed inline: this runs for up to every seat of the map a frame. */
  private pixels(view: View): void {
    const { canvas, dpr, g } = this;
    const w = canvas.width;
    const h = canvas.height;
    this.image ??= this.ctx.createImageData(w, h);
    const px = new Uint32Array(this.image.data.buffer);
    px.fill(pixelOf(COLOURS.background));
    const { scale } = view;
    const inset = this.inset(scale);
    const size = Math.max(1, Math.round((scale - 2 * inset) * dpr));
    this.buckets.forEach((seats, style) => {
      const colour = this.palettePixels[style] ?? 0xff000000;
      for (const i of seats) {
        const line = g.lines[g.line[i] ?? 0];
        const x = Math.round((((g.col[i] ?? 0) + MARGIN_X) * scale + view.x + inset) * dpr);
        const y = Math.round((((line?.y ?? 0) + MARGIN_Y) * scale + view.y + inset) * dpr);
        const left = Math.max(0, x);
        const right = Math.min(w, x + size);
        if (right <= left) continue;
        for (let row = Math.max(0, y), end = Math.min(h, y + size); row < end; row++) {
          px.fill(colour, row * w + left, row * w + right);
        }
      }
    });
    this.ctx.putImageData(this.image, 0, 0);
  }

  /** The user's own seat: a white dot in the middle. */
  private mark(ctx: CanvasRenderingContext2D, view: View, i: number): void {
    if (view.scale < 5) return;
    const { x, y } = this.cell(view, i);
    const half = view.scale / 2;
    ctx.fillStyle = COLOURS.mark;
    ctx.beginPath();
    ctx.arc(x + half, y + half, Math.max(1, view.scale * 0.14), 0, Math.PI * 2);
    ctx.fill();
  }

  /** Keyboard focus: a ring in the cell's margin. */
  private ring(view: View, i: number): void {
    const { x, y } = this.cell(view, i);
    const width = Math.max(1, this.inset(view.scale) * 0.9);
    this.ctx.strokeStyle = COLOURS.ring;
    this.ctx.lineWidth = width;
    this.ctx.strokeRect(x + width / 2, y + width / 2, view.scale - width, view.scale - width);
  }

  private drawStage(view: View): void {
    const { ctx, g } = this;
    const { scale } = view;
    const units = Math.max(5, g.width * 0.6);
    const width = units * scale;
    const x = ((worldWidth(g) - units) / 2) * scale + view.x;
    const y = (MARGIN_Y + 0.4) * scale + view.y;
    const height = (STAGE_UNITS - 2) * scale;
    if (y > this.height || y + height < 0) return;
    ctx.fillStyle = COLOURS.stage;
    ctx.beginPath();
    ctx.roundRect(x, y, width, height, Math.min(height / 2, 10));
    ctx.fill();
    if (height < 10) return; // too thin for its name: the shape says it
    ctx.fillStyle = COLOURS.stageText;
    // Whole pixels: every font size is a glyph cache of its own, and a pinch passes through many.
    ctx.font = `600 ${Math.round(Math.max(7, Math.min(16, height * 0.5, width / 5)))}px system-ui, sans-serif`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    // Centred on the part of the stage in view, so it reads even zoomed in on one side.
    const from = Math.max(x, 0);
    const to = Math.min(x + width, this.width);
    if (to > from) ctx.fillText('STAGE', (from + to) / 2, y + height / 2);
  }

  /** Each row's name beside its first and last seat, in the columns just outside the row. When
   *  the map is zoomed into the middle of a wide row, the names stick to the box's edges (on a
   *  white tab over the seats), so every row in view is labelled. */
  private drawRowLabels(view: View, rowFrom: number, rowTo: number): void {
    const { ctx, g } = this;
    const { scale } = view;
    if (scale < ROW_LABEL_PITCH) return;
    const size = Math.round(Math.min(13, scale * 0.45));
    ctx.font = `600 ${size}px system-ui, sans-serif`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    const tab = scale * 0.9;
    const edge = tab / 2 + 1;
    for (let r = rowFrom; r <= rowTo; r++) {
      const line = g.lines[g.lineAtY[r] ?? -1];
      if (!line) continue;
      const y = (line.y + MARGIN_Y + 0.5) * scale + view.y;
      const first = (line.col + MARGIN_X) * scale + view.x;
      const last = first + line.count * scale;
      if (last < 0 || first > this.width) continue;
      const left = first - scale / 2;
      const right = last + scale / 2;
      this.rowLabel(line.row, left < edge ? edge : left, y, left < edge, tab);
      this.rowLabel(line.row, right > this.width - edge ? this.width - edge : right, y, right > this.width - edge, tab);
    }
  }

  private rowLabel(text: string, x: number, y: number, onTab: boolean, tab: number): void {
    const { ctx } = this;
    if (onTab) {
      ctx.fillStyle = COLOURS.labelTab;
      ctx.beginPath();
      ctx.roundRect(x - tab / 2, y - tab / 2, tab, tab, 4);
      ctx.fill();
    }
    ctx.fillStyle = COLOURS.rowLabel;
    ctx.fillText(text, x, y);
  }

  /** Each label sits on its section's label line and may rise into the empty line above it
   *  (the gap between sections, or the space under the stage). Zoomed in, a label stays inside
   *  the box while any of its section is in view. */
  private drawSectionLabels(view: View): void {
    const { ctx, g } = this;
    const { scale } = view;
    ctx.fillStyle = COLOURS.label;
    ctx.font = `600 ${Math.round(Math.max(9, Math.min(16, scale * 1.2)))}px system-ui, sans-serif`;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    for (const section of g.sections) {
      const y = (section.y + MARGIN_Y + 0.95) * scale + view.y;
      if (y < 0 || y - 2 * scale > this.height) continue;
      const left = (section.col + MARGIN_X) * scale + view.x;
      const right = left + section.width * scale;
      if (right < 0 || left > this.width) continue;
      const half = ctx.measureText(section.name).width / 2 + 6;
      const centre = (section.centre + MARGIN_X) * scale + view.x;
      const x = Math.min(Math.max(centre, Math.max(left, 0) + half), Math.min(right, this.width) - half);
      ctx.fillText(section.name, Number.isFinite(x) ? x : centre, y);
    }
  }
}
