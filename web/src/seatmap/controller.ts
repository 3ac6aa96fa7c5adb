// The seat map widget without React: live state + geometry + camera + gestures + renderer.
//
// Messages from the seats topic go straight here (never through React state), so a delta costs
// a few cell repaints on the next animation frame and no re-render. The user's own seats
// (selected, held, bought) live in the page's store; the controller is told when they change
// and repaints those seats.
//
// Input: pointer events (mouse, touch, pen) become taps, drag-pans and two-finger pinches
// (gestures.ts); ctrl+wheel (and a trackpad pinch) zooms at the pointer; the keyboard moves a
// focus ring from seat to seat and zooms with + / - / 0. A tap on a seat picks it once seats are
// big enough to hit (gestures.tapPicks); a finger on seats nearly that big zooms in about the tap,
// and on a zoomed-out map a tap zooms to the section under it. Every frame is drawn on
// requestAnimationFrame, at most one per display frame.

import { money, seatName } from '../shared/format';
import type { SeatStatus } from '../shared/types';
import {
  between,
  clampView,
  fitView,
  limitsFor,
  MIN_DEFAULT_PITCH,
  panBy,
  pinchView,
  reveal,
  sameView,
  sectionView,
  snapView,
  isSnapped,
  toWorld,
  zoomAt,
  type Limits,
  type Size,
  type View,
} from './camera';
import {
  cellX,
  cellY,
  labelOf,
  MARGIN_Y,
  move,
  sectionAtWorld,
  sectionOf,
  sectionRect,
  seatAtWorld,
  worldHeight,
  worldWidth,
  type Direction,
  type SeatGeometry,
} from './geometry';
import { GestureTracker, TAP_PITCH, tapPicks, tapZoomsToSeat, type PointerInput, type PointerKind } from './gestures';
import { SeatMapRenderer, Style } from './renderer';
import { Code, parseSeatMessage, SeatMapState, unavailablePicks, type SnapshotMessage } from './state';

export type Ownership = 'selected' | 'held' | 'bought';

export interface SeatMapHooks {
  /** The seats selected but not yet held (the ones that someone else can take from us). */
  selectedSeats(): readonly string[];
  toggle(seatId: string, status: SeatStatus | undefined): void;
  /** Picked seats that the live map now shows as taken. */
  taken(seatIds: string[]): void;
  /** Text for the aria-live region. */
  announce(text: string): void;
  /** The view came to rest (after a gesture, an animation, a button): zoom relative to the
   *  default view, 1 = default. */
  settled?(zoom: number): void;
}

/** What tests (Playwright) and the frame-time benchmark read through window.__concertHub.seatMap. */
export interface SeatMapProbe {
  status(seatId: string): string | undefined;
  /** Brings the seat into view (zooming to its section if seats are too small to tap) and
   *  returns its centre in page coordinates (subtract window.scrollX/Y to click). */
  seatCenter(seatId: string): { x: number; y: number } | undefined;
  /** Where the seat's centre is in the viewport right now (client coordinates), without moving
   *  the map; undefined when it is outside the map's box. */
  seatOnScreen(seatId: string): { x: number; y: number } | undefined;
  seq(): number;
  /** 'awaiting' | 'live' | 'resync' */
  phase(): string;
  selected(): string[];
  /** Up to `limit` seat ids currently available, in layout order. */
  availableSeats(limit?: number): string[];
  /** The camera: seat pitch (CSS px), offsets, the box's size, the default view's pitch. */
  view(): { scale: number; x: number; y: number; width: number; height: number; home: number };
  /** Whether the seat is the user's: picked, in their hold, or bought. */
  mine(seatId: string): Ownership | null;
  /** Start (or stop) recording how long each frame's drawing takes. */
  measure(on: boolean): void;
  /** Draw times (ms) recorded since the last call. */
  drawTimes(): number[];
  /** Seats drawn by the last full frame. */
  visibleSeats(): number;
}

const KEYS: Record<string, Direction> = {
  ArrowLeft: 'left',
  ArrowRight: 'right',
  ArrowUp: 'up',
  ArrowDown: 'down',
  Home: 'home',
  End: 'end',
};

/** Revealing a seat (keyboard focus, the test probe) zooms in to at least this pitch. */
const REVEAL_PITCH = MIN_DEFAULT_PITCH;
/** The box is never lower than this (CSS px), nor higher than the caller's maximum. */
const MIN_BOX_HEIGHT = 200;
const ANIMATION_MS = 280;
const BUTTON_ZOOM = 1.5;

interface Animation {
  from: View;
  to: View;
  start: number;
}

export class SeatMapController {
  readonly state: SeatMapState;
  private readonly renderer: SeatMapRenderer;
  private readonly tracker = new GestureTracker();
  private readonly world: Size;
  private view: View = { scale: 1, x: 0, y: 0 };
  private home: View = { scale: 1, x: 0, y: 0 };
  private box: Size = { width: 0, height: 0 };
  private maxHeight = 0;
  private dpr = 1;
  private limits: Limits = { min: 1, max: 1 };
  /** Whether the user moved the view (then a resize keeps their place instead of going home). */
  private touched = false;
  private animation: Animation | null = null;
  private pinchFrom: View | null = null;
  private boxOrigin = { left: 0, top: 0 };
  private wheelTimer = 0;
  /** A wheel zoom is going on (until its rest timer fires). */
  private wheeling = false;
  private own = new Map<number, Ownership>();
  private focus = -1;
  private hasFocus = false;
  /** The ring shows only for keyboard use (a tap or click focuses the canvas too). */
  private keyboard = false;
  /** When a pointer last went down (performance.now): a focus right after it is the pointer's. */
  private pointerAt = -Infinity;
  private readonly dirty = new Set<number>();
  private fullRedraw = true;
  /** Every seat's style may have changed (a snapshot): the renderer's cached tiles are stale. */
  private restyled = true;
  private frame = 0;
  private hover = -1;
  private samples: number[] | null = null;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly g: SeatGeometry,
    eventId: number,
    private readonly hooks: SeatMapHooks,
  ) {
    this.state = new SeatMapState(g.index, eventId);
    this.renderer = new SeatMapRenderer(canvas, g);
    this.world = { width: worldWidth(g), height: worldHeight(g) };
    this.listen('pointerdown', (e) => this.onPointerDown(e as PointerEvent));
    this.listen('pointermove', (e) => this.onPointerMove(e as PointerEvent));
    this.listen('pointerup', (e) => this.onPointerUp(e as PointerEvent));
    this.listen('pointercancel', (e) => this.onPointerCancel(e as PointerEvent));
    this.listen('pointerleave', () => this.setHover(-1));
    this.listen('wheel', (e) => this.onWheel(e as WheelEvent), { passive: false });
    this.listen('keydown', (e) => this.onKey(e as KeyboardEvent));
    this.listen('focus', () => this.onFocus());
    this.listen('blur', () => this.onBlur());
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    window.clearTimeout(this.wheelTimer);
    for (const cleanup of this.cleanups) cleanup();
  }

  // -- live data ------------------------------------------------------------------------------

  /** A new SUBSCRIBE is going out: wait for its snapshot. */
  onSubscribe(): void {
    this.state.reset();
  }

  /** Headers of the next SUBSCRIBE: `resume-seq` when the map can continue where it was. */
  subscribeHeaders(): Record<string, string> {
    const from = this.state.resumeFrom();
    return from === null ? {} : { 'resume-seq': String(from) };
  }

  /** One MESSAGE of the seats topic; returns true when the caller must resubscribe (a gap). */
  onMessage(body: string): boolean {
    const message = parseSeatMessage(body);
    if (!message) return false;
    const result = this.state.apply(message);
    switch (result.kind) {
      case 'snapshot':
        this.fullRedraw = true;
        this.restyled = true;
        this.schedule();
        this.checkPicked();
        return false;
      case 'delta':
        for (const i of result.changed) this.dirty.add(i);
        if (result.changed.length > 0) {
          this.schedule();
          this.checkPicked();
        }
        return false;
      case 'gap':
        return true;
      case 'ignored':
        return false;
    }
  }

  /** The REST snapshot, drawn while the STOMP one is on its way (never over a live state). */
  applyInitial(snapshot: SnapshotMessage): void {
    if (this.state.seq >= 0) return;
    this.state.apply(snapshot);
    this.state.reset(); // still wait for the topic's own snapshot before taking deltas
    this.fullRedraw = true;
    this.restyled = true;
    this.schedule();
  }

  /** The user's own seats changed: repaint the ones that entered or left a group. */
  setOwnership(selected: readonly string[], held: readonly string[], bought: readonly string[]): void {
    const next = new Map<number, Ownership>();
    const add = (ids: readonly string[], kind: Ownership) => {
      for (const id of ids) {
        const i = this.g.index.get(id);
        if (i !== undefined) next.set(i, kind);
      }
    };
    add(bought, 'bought');
    add(held, 'held');
    add(selected, 'selected');
    for (const [i, kind] of this.own) if (next.get(i) !== kind) this.dirty.add(i);
    for (const [i, kind] of next) if (this.own.get(i) !== kind) this.dirty.add(i);
    this.own = next;
    this.schedule();
  }

  // -- size and view --------------------------------------------------------------------------

  /**
   * The box is `width` CSS pixels wide and may be up to `maxHeight` high: it takes the map's
   * height at the default zoom, within that. The first layout (and any resize before the user
   * moved the map) shows the default view: the first section, seats at least 24 px.
   */
  resize(width: number, maxHeight: number): void {
    if (width <= 0) return;
    this.maxHeight = maxHeight;
    const dpr = window.devicePixelRatio || 1;
    const first = sectionRect(this.g, 0);
    const height = Math.round(
      Math.max(MIN_BOX_HEIGHT, Math.min(maxHeight, this.world.height * sectionView(first, { width, height: maxHeight }).scale)),
    );
    if (width === this.box.width && height === this.box.height && dpr === this.dpr) return;
    const keep = this.box.width > 0 && this.touched ? toWorld(this.view, this.centre()) : null;
    this.box = { width, height };
    this.dpr = dpr;
    this.renderer.setSize(width, height, dpr);
    this.limits = limitsFor(this.world, this.box);
    this.home = this.settle(sectionView(first, this.box));
    this.animation = null;
    if (keep) {
      const c = this.centre();
      this.view = this.settle({ scale: this.view.scale, x: c.x - keep.x * this.view.scale, y: c.y - keep.y * this.view.scale });
    } else {
      this.view = this.home;
    }
    this.fullRedraw = true;
    this.draw(); // synchronously: resizing a canvas clears it
    this.notifySettled();
  }

  /** Lay out and draw again (the device pixel ratio changed: another screen, browser zoom). */
  refresh(): void {
    this.dpr = 0;
    this.resize(this.box.width, this.maxHeight);
  }

  zoomIn(): void {
    this.zoomBy(BUTTON_ZOOM);
  }

  zoomOut(): void {
    this.zoomBy(1 / BUTTON_ZOOM);
  }

  /** The whole map in the box. */
  showAll(): void {
    this.touched = true;
    this.animateTo(fitView({ x: 0, y: 0, ...this.world }, this.box));
    this.hooks.announce('Showing the whole map');
  }

  /** Zoom to a section (by index), seats at least 24 px. */
  showSection(s: number): void {
    const section = this.g.sections[s];
    if (!section) return;
    this.touched = true;
    this.animateTo(sectionView(sectionRect(this.g, s), this.box));
    this.hooks.announce(`Showing section ${section.name}`);
  }

  /** Bring these seats into view (e.g. the ones best available just held). */
  showSeats(seatIds: readonly string[]): void {
    const seats = seatIds.map((id) => this.g.index.get(id)).filter((i): i is number => i !== undefined);
    if (seats.length === 0) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const i of seats) {
      x0 = Math.min(x0, cellX(this.g, i));
      y0 = Math.min(y0, cellY(this.g, i));
      x1 = Math.max(x1, cellX(this.g, i) + 1);
      y1 = Math.max(y1, cellY(this.g, i) + 1);
    }
    let target = this.view;
    if (target.scale < REVEAL_PITCH) target = sectionView(sectionRect(this.g, sectionOf(this.g, seats[0]!)), this.box);
    target = reveal(target, { x: x0, y: y0, width: x1 - x0, height: y1 - y0 }, this.box, target.scale);
    this.animateTo(target);
  }

  private zoomBy(factor: number): void {
    this.touched = true;
    this.animateTo(zoomAt(this.view, factor, this.centre()));
  }

  private centre(): { x: number; y: number } {
    return { x: this.box.width / 2, y: this.box.height / 2 };
  }

  private clamp(view: View): View {
    return clampView(view, this.box, this.world, this.limits);
  }

  /** Clamped and on the device pixel grid: how a view looks at rest. */
  private settle(view: View): View {
    return this.clamp(snapView(this.clamp(view), this.dpr, this.centre()));
  }

  private setView(view: View, atRest: boolean): void {
    const next = atRest ? this.settle(view) : this.clamp(view);
    if (sameView(next, this.view)) return;
    this.view = next;
    this.fullRedraw = true;
    this.schedule();
  }

  private animateTo(target: View): void {
    const to = this.settle(target);
    const still = window.matchMedia?.('(prefers-reduced-motion: reduce)').matches ?? false;
    if (still || sameView(to, this.view) || this.box.width === 0) {
      this.animation = null;
      this.setView(to, true);
      this.notifySettled();
      return;
    }
    this.animation = { from: this.view, to, start: -1 };
    this.schedule();
  }

  private notifySettled(): void {
    this.hooks.settled?.(this.home.scale > 0 ? this.view.scale / this.home.scale : 1);
  }

  // -- drawing --------------------------------------------------------------------------------

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame((t) => this.draw(t));
  }

  private draw(time = performance.now()): void {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    if (this.box.width === 0) return;
    const animation = this.animation;
    if (animation) {
      if (animation.start < 0) animation.start = time;
      const t = Math.min(1, (time - animation.start) / ANIMATION_MS);
      const eased = 1 - Math.pow(1 - t, 3);
      this.view = t >= 1 ? animation.to : this.clamp(between(animation.from, animation.to, eased, this.box));
      this.fullRedraw = true;
      if (t >= 1) {
        this.animation = null;
        this.notifySettled();
      } else {
        this.schedule();
      }
    }
    const started = this.samples ? performance.now() : 0;
    const ring = this.hasFocus && this.keyboard ? this.focus : -1;
    // Moving frames are drawn at a lower density, the frame at rest at the screen's own.
    if (this.renderer.setMotion(this.animation !== null || this.tracker.moving || this.wheeling)) this.fullRedraw = true;
    if (!this.fullRedraw && this.dirty.size === 0) return;
    if (this.restyled) this.renderer.forget();
    else if (this.dirty.size > 0) this.renderer.repaintCached(this.dirty, this.styleOf);
    this.restyled = false;
    const partial =
      !this.fullRedraw && isSnapped(this.view, this.renderer.pixelRatio) && this.renderer.drawSeats(this.view, this.dirty, this.styleOf, ring);
    if (!partial) this.renderer.draw(this.view, this.styleOf, ring);
    this.fullRedraw = false;
    this.dirty.clear();
    if (this.samples && this.samples.length < 100_000) this.samples.push(performance.now() - started);
  }

  private readonly styleOf = (i: number): number => {
    const own = this.own.get(i);
    const code = this.state.code(i);
    if (own === 'selected') return Style.Selected;
    if (own === 'held') return Style.MineHeld;
    if (own === 'bought' && code === Code.Sold) return Style.MineBought;
    switch (code) {
      case Code.Available:
        return Style.Tier + (this.g.tier[i] ?? 0);
      case Code.Held:
        return Style.Held;
      case Code.Sold:
        return Style.Sold;
      case Code.Blocked:
        return Style.Blocked;
      default:
        return Style.Unknown;
    }
  };

  /** Picked seats that are no longer available to us (a delta or a fresh snapshot said so). */
  private checkPicked(): void {
    const taken = unavailablePicks(this.hooks.selectedSeats(), (id) => this.state.status(id));
    if (taken.length > 0) this.hooks.taken(taken);
  }

  // -- pointer input --------------------------------------------------------------------------

  private listen(type: string, handler: (e: Event) => void, options?: AddEventListenerOptions): void {
    this.canvas.addEventListener(type, handler, options);
    this.cleanups.push(() => this.canvas.removeEventListener(type, handler, options));
  }

  private input(e: PointerEvent): PointerInput {
    const kind: PointerKind = e.pointerType === 'touch' || e.pointerType === 'pen' ? e.pointerType : 'mouse';
    return { id: e.pointerId, x: e.clientX - this.boxOrigin.left, y: e.clientY - this.boxOrigin.top, kind, button: e.button };
  }

  private onPointerDown(e: PointerEvent): void {
    if (!this.tracker.active) {
      const rect = this.canvas.getBoundingClientRect();
      this.boxOrigin = { left: rect.left, top: rect.top };
    }
    this.pointerAt = performance.now();
    const gesture = this.tracker.down(this.input(e));
    if (!this.tracker.active) return;
    this.keyboard = false;
    try {
      this.canvas.setPointerCapture(e.pointerId);
    } catch {
      // a synthetic or already-released pointer: the gesture still works inside the canvas
    }
    if (this.animation) {
      this.animation = null; // a finger on the map stops it where it is
      this.setView(this.view, false);
    }
    if (gesture?.type === 'pinch-start') this.pinchFrom = this.view;
  }

  private onPointerMove(e: PointerEvent): void {
    if (!this.tracker.active) {
      if (e.pointerType === 'mouse') this.onHover(e);
      return;
    }
    const gesture = this.tracker.move(this.input(e));
    if (!gesture) return;
    if (gesture.type === 'pan') {
      this.touched = true;
      if (this.canvas.style.cursor !== 'grabbing') this.canvas.style.cursor = 'grabbing';
      this.setView(panBy(this.view, gesture.dx, gesture.dy), false);
    } else if (gesture.type === 'pinch' && this.pinchFrom) {
      this.touched = true;
      this.setView(pinchView(this.pinchFrom, gesture.a0, gesture.b0, gesture.a1, gesture.b1), false);
    }
  }

  private onPointerUp(e: PointerEvent): void {
    const gesture = this.tracker.up(this.input(e));
    if (!gesture) return;
    if (gesture.type === 'tap') this.onTap(gesture.x, gesture.y, gesture.kind);
    else if (gesture.type === 'end') this.rest();
  }

  private onPointerCancel(e: PointerEvent): void {
    if (this.tracker.cancel(e.pointerId)?.type === 'end') this.rest();
  }

  /** A gesture ended: settle the view on the pixel grid. */
  private rest(): void {
    this.pinchFrom = null;
    this.canvas.style.cursor = '';
    this.setView(this.view, true);
    this.schedule(); // the frame at rest, at the screen's full density (even if the view stays)
    this.notifySettled();
  }

  private onTap(x: number, y: number, kind: PointerKind): void {
    const world = toWorld(this.view, { x, y });
    const dpr = this.dpr || 1;
    const big = tapPicks(kind, this.view.scale, dpr);
    const i = seatAtWorld(this.g, world.x, world.y);
    if (big && i >= 0) {
      this.setFocus(i, false);
      this.toggle(i);
      return;
    }
    if (i >= 0 && tapZoomsToSeat(kind, this.view.scale, dpr)) {
      this.touched = true;
      this.animateTo(zoomAt(this.view, TAP_PITCH[kind] / this.view.scale, { x, y }));
      return;
    }
    const s = sectionAtWorld(this.g, world.x, world.y);
    const onLabel = s >= 0 && Math.floor(world.y - MARGIN_Y) === this.g.sections[s]?.y;
    if (s >= 0 && (!big || onLabel)) {
      this.showSection(s);
    } else if (!big) {
      this.touched = true;
      this.animateTo(zoomAt(this.view, 2, { x, y }));
    }
  }

  private onWheel(e: WheelEvent): void {
    // A plain wheel scrolls the page; ctrl+wheel (and a trackpad pinch, which the browser sends
    // as one) zooms the map at the pointer.
    if (!e.ctrlKey && !e.metaKey) return;
    e.preventDefault();
    const rect = this.canvas.getBoundingClientRect();
    const delta = e.deltaMode === 1 ? e.deltaY * 16 : e.deltaY;
    const factor = Math.exp(-Math.max(-100, Math.min(100, delta)) * 0.01);
    this.touched = true;
    this.animation = null;
    this.wheeling = true;
    this.setView(zoomAt(this.view, factor, { x: e.clientX - rect.left, y: e.clientY - rect.top }), false);
    window.clearTimeout(this.wheelTimer);
    this.wheelTimer = window.setTimeout(() => {
      this.wheeling = false;
      this.rest();
    }, 150);
  }

  private onHover(e: PointerEvent): void {
    const rect = this.canvas.getBoundingClientRect();
    const world = toWorld(this.view, { x: e.clientX - rect.left, y: e.clientY - rect.top });
    this.setHover(seatAtWorld(this.g, world.x, world.y));
  }

  private setHover(i: number): void {
    if (i === this.hover) return;
    this.hover = i;
    this.canvas.style.cursor = i >= 0 ? 'pointer' : '';
    this.canvas.title = i >= 0 ? this.describe(i) : '';
  }

  // -- keyboard -------------------------------------------------------------------------------

  private onKey(e: KeyboardEvent): void {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const direction = KEYS[e.key];
    const wasKeyboard = this.keyboard;
    this.keyboard = true;
    if (!wasKeyboard && this.focus >= 0) this.dirty.add(this.focus);
    if (direction) {
      e.preventDefault();
      this.setFocus(this.focus < 0 ? this.firstAvailable() : move(this.g, this.focus, direction), true);
    } else if (e.key === 'Enter' || e.key === ' ' || e.key === 'Spacebar') {
      e.preventDefault();
      if (this.focus >= 0) this.toggle(this.focus);
    } else if (e.key === '+' || e.key === '=') {
      e.preventDefault();
      this.zoomIn();
    } else if (e.key === '-' || e.key === '_') {
      e.preventDefault();
      this.zoomOut();
    } else if (e.key === '0') {
      e.preventDefault();
      this.touched = false;
      this.animateTo(this.home);
    }
    this.schedule();
  }

  private onFocus(): void {
    this.hasFocus = true;
    // Focus that comes with a tap or click: the tap speaks for itself (a seat picked, a section
    // shown); the first arrow key puts the ring on a seat.
    if (performance.now() - this.pointerAt < 1000) return;
    if (this.focus < 0) {
      this.setFocus(this.firstAvailable(), false);
    } else {
      this.dirty.add(this.focus);
      this.schedule();
    }
    this.hooks.announce(this.describe(this.focus));
  }

  /** The first seat one could buy, among those in view first; else the first seat. */
  private firstAvailable(): number {
    let anywhere = -1;
    for (let i = 0; i < this.g.count; i++) {
      if (this.state.code(i) !== Code.Available) continue;
      if (anywhere < 0) anywhere = i;
      const x = cellX(this.g, i) * this.view.scale + this.view.x;
      const y = cellY(this.g, i) * this.view.scale + this.view.y;
      if (x >= 0 && y >= 0 && x + this.view.scale <= this.box.width && y + this.view.scale <= this.box.height) return i;
    }
    return anywhere >= 0 ? anywhere : 0;
  }

  private onBlur(): void {
    this.hasFocus = false;
    if (this.focus >= 0) {
      this.dirty.add(this.focus);
      this.schedule();
    }
  }

  private setFocus(i: number, fromKeyboard: boolean): void {
    if (i < 0 || i >= this.g.count) return;
    if (this.focus >= 0) this.dirty.add(this.focus);
    this.focus = i;
    this.dirty.add(i);
    this.schedule();
    if (fromKeyboard) {
      this.hooks.announce(this.describe(i));
      this.revealSeat(i);
    }
  }

  /** Pan (and if seats are too small, zoom to the seat's section) so seat i is well in view. */
  private revealSeat(i: number): void {
    let target = this.view;
    if (target.scale < REVEAL_PITCH) target = sectionView(sectionRect(this.g, sectionOf(this.g, i)), this.box);
    const margin = Math.min(target.scale * 1.5, this.box.width / 4, this.box.height / 4);
    target = reveal(target, { x: cellX(this.g, i), y: cellY(this.g, i), width: 1, height: 1 }, this.box, margin);
    this.animation = null;
    if (!sameView(this.settle(target), this.view)) {
      this.touched = true;
      this.setView(target, true);
      this.notifySettled();
    }
  }

  private toggle(i: number): void {
    const id = this.g.ids[i];
    if (!id) return;
    const before = this.own.get(i) === 'selected';
    this.hooks.toggle(id, this.statusAt(i));
    const after = this.hooks.selectedSeats().includes(id);
    if (before !== after) this.hooks.announce(`${this.describe(i, after)}${after ? '' : ', deselected'}`);
  }

  private statusAt(i: number): SeatStatus | undefined {
    const id = this.g.ids[i];
    return id === undefined ? undefined : this.state.status(id);
  }

  /** "Stalls row A seat 12, available, Premium €120" (", selected" when picked; "held for you",
   *  "your ticket" for the user's own). */
  describe(i: number, selected = this.own.get(i) === 'selected'): string {
    const label = labelOf(this.g, i);
    if (!label) return '';
    const own = this.own.get(i);
    let status: string = this.statusAt(i) ?? 'loading';
    if (own === 'held') status = 'held for you';
    else if (own === 'bought' && status === 'sold') status = 'your ticket';
    const tier = label.tier ? `, ${label.tier.name} ${money(label.tier.price_cents, label.tier.currency)}` : '';
    return `${seatName(label)}, ${status}${tier}${selected ? ', selected' : ''}`;
  }

  // -- the test probe -------------------------------------------------------------------------

  probe(): SeatMapProbe {
    return {
      status: (seatId) => this.state.status(seatId),
      seatCenter: (seatId) => {
        const i = this.g.index.get(seatId);
        if (i === undefined) return undefined;
        this.revealSeat(i);
        const rect = this.canvas.getBoundingClientRect();
        const x = rect.left + (cellX(this.g, i) + 0.5) * this.view.scale + this.view.x;
        const y = rect.top + (cellY(this.g, i) + 0.5) * this.view.scale + this.view.y;
        return { x: x + window.scrollX, y: y + window.scrollY };
      },
      seatOnScreen: (seatId) => {
        const i = this.g.index.get(seatId);
        if (i === undefined) return undefined;
        const x = (cellX(this.g, i) + 0.5) * this.view.scale + this.view.x;
        const y = (cellY(this.g, i) + 0.5) * this.view.scale + this.view.y;
        if (x < 0 || y < 0 || x > this.box.width || y > this.box.height) return undefined;
        const rect = this.canvas.getBoundingClientRect();
        return { x: rect.left + x, y: rect.top + y };
      },
      seq: () => this.state.seq,
      phase: () => this.state.phase,
      selected: () => [...this.hooks.selectedSeats()],
      availableSeats: (limit = 10) => {
        const found: string[] = [];
        for (let i = 0; i < this.g.count && found.length < limit; i++) {
          if (this.state.code(i) === Code.Available) found.push(this.g.ids[i] ?? '');
        }
        return found;
      },
      view: () => ({ ...this.view, ...this.box, home: this.home.scale }),
      mine: (seatId) => {
        const i = this.g.index.get(seatId);
        const own = i === undefined ? undefined : this.own.get(i);
        if (own === 'bought' && this.state.status(seatId) !== 'sold') return null;
        return own ?? null;
      },
      measure: (on) => {
        this.samples = on ? [] : null;
      },
      drawTimes: () => {
        const taken = this.samples ?? [];
        if (this.samples) this.samples = [];
        return taken;
      },
      visibleSeats: () => this.renderer.visibleSeats,
    };
  }
}
