// The seat map widget without React: live state + geometry + renderer + input.
//
// Messages from the seats topic go straight here (never through React state), so a delta costs
// a few cell repaints on the next animation frame and no re-render. The selection lives in the
// page's store; the controller is told when it changes and repaints those seats.

import { money, seatName } from '../shared/format';
import type { SeatStatus } from '../shared/types';
import { labelOf, move, seatAt, type Direction, type SeatGeometry } from './geometry';
import { COLOURS, SeatMapRenderer, tierColour, type SeatLook } from './renderer';
import { Code, parseSeatMessage, SeatMapState, type SnapshotMessage } from './state';

export interface SeatMapHooks {
  /** The user's pick: selected, or in their active hold (drawn alike). */
  isPicked(seatId: string): boolean;
  /** The seats selected but not yet held (the ones that someone else can take from us). */
  selectedSeats(): readonly string[];
  toggle(seatId: string, status: SeatStatus | undefined): void;
  /** Picked seats that the live map now shows as taken. */
  taken(seatIds: string[]): void;
  /** Text for the aria-live region. */
  announce(text: string): void;
}

/** What tests (Playwright) read through window.__concertHub.seatMap. */
export interface SeatMapProbe {
  status(seatId: string): string | undefined;
  /** Page coordinates (add nothing for scroll: subtract window.scrollX/Y to click). */
  seatCenter(seatId: string): { x: number; y: number } | undefined;
  seq(): number;
  /** 'awaiting' | 'live' | 'resync' */
  phase(): string;
  selected(): string[];
  /** Up to `limit` seat ids currently available, in layout order. */
  availableSeats(limit?: number): string[];
}

const KEYS: Record<string, Direction> = {
  ArrowLeft: 'left',
  ArrowRight: 'right',
  ArrowUp: 'up',
  ArrowDown: 'down',
  Home: 'home',
  End: 'end',
};

export class SeatMapController {
  readonly state: SeatMapState;
  private readonly renderer: SeatMapRenderer;
  private focus = -1;
  private hasFocus = false;
  private readonly dirty = new Set<number>();
  private fullRedraw = true;
  private frame = 0;
  private width = 0;
  private zoom = 1;
  private hover = -1;
  private readonly cleanups: (() => void)[] = [];

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly g: SeatGeometry,
    eventId: number,
    private readonly hooks: SeatMapHooks,
  ) {
    this.state = new SeatMapState(g.index, eventId);
    this.renderer = new SeatMapRenderer(canvas, g);
    this.listen('click', (e) => this.onClick(e as MouseEvent));
    this.listen('keydown', (e) => this.onKey(e as KeyboardEvent));
    this.listen('focus', () => this.onFocus());
    this.listen('blur', () => this.onBlur());
    this.listen('mousemove', (e) => this.onHover(e as MouseEvent));
    this.listen('mouseleave', () => this.setHover(-1));
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    for (const cleanup of this.cleanups) cleanup();
  }

  // -- live data ------------------------------------------------------------------------------

  /** A new SUBSCRIBE is going out: wait for its snapshot. */
  onSubscribe(): void {
    this.state.reset();
  }

  /** One MESSAGE of the seats topic; returns true when the caller must resubscribe (a gap). */
  onMessage(body: string): boolean {
    const message = parseSeatMessage(body);
    if (!message) return false;
    const result = this.state.apply(message);
    switch (result.kind) {
      case 'snapshot':
        this.fullRedraw = true;
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
    this.schedule();
  }

  /** The selection or hold changed: repaint these seats. */
  repaint(seatIds: Iterable<string>): void {
    for (const id of seatIds) {
      const i = this.g.index.get(id);
      if (i !== undefined) this.dirty.add(i);
    }
    this.schedule();
  }

  // -- size -----------------------------------------------------------------------------------

  resize(cssWidth: number): void {
    if (cssWidth <= 0 || cssWidth === this.width) return;
    this.width = cssWidth;
    this.relayout();
  }

  setZoom(zoom: number): void {
    this.zoom = Math.min(8, Math.max(1, zoom));
    this.relayout();
  }

  get zoomLevel(): number {
    return this.zoom;
  }

  /** Lay out and draw again (the device pixel ratio changed: another screen, browser zoom). */
  refresh(): void {
    this.relayout();
  }

  private relayout(): void {
    this.renderer.layout(this.width, this.zoom, window.devicePixelRatio || 1);
    this.fullRedraw = true;
    this.draw(); // synchronously: resizing a canvas clears it
  }

  // -- drawing --------------------------------------------------------------------------------

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
  }

  private draw(): void {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    if (this.width === 0) return;
    if (this.fullRedraw) {
      this.fullRedraw = false;
      this.dirty.clear();
      this.renderer.drawAll(this.look);
    } else if (this.dirty.size > 0) {
      this.renderer.drawSeats(this.dirty, this.look);
      this.dirty.clear();
    }
  }

  private readonly look = (i: number): SeatLook => {
    const id = this.g.ids[i] ?? '';
    const picked = this.hooks.isPicked(id);
    let fill: string;
    if (picked) fill = COLOURS.selected;
    else {
      switch (this.state.code(i)) {
        case Code.Available:
          fill = tierColour(this.g.tier[i] ?? 0);
          break;
        case Code.Held:
          fill = COLOURS.held;
          break;
        case Code.Sold:
          fill = COLOURS.sold;
          break;
        case Code.Blocked:
          fill = COLOURS.blocked;
          break;
        default:
          fill = COLOURS.unknown;
      }
    }
    return { fill, mark: picked, ring: this.hasFocus && i === this.focus };
  };

  /** Picked seats that are no longer available to us (a delta or a fresh snapshot said so). */
  private checkPicked(): void {
    const taken = this.hooks.selectedSeats().filter((id) => {
      const status = this.state.status(id);
      return status !== undefined && status !== 'available';
    });
    if (taken.length > 0) this.hooks.taken(taken);
  }

  // -- input ----------------------------------------------------------------------------------

  private listen(type: string, handler: (e: Event) => void): void {
    this.canvas.addEventListener(type, handler);
    this.cleanups.push(() => this.canvas.removeEventListener(type, handler));
  }

  private seatFromEvent(e: MouseEvent): number {
    const rect = this.canvas.getBoundingClientRect();
    const units = this.renderer.toUnits(e.clientX - rect.left, e.clientY - rect.top);
    return seatAt(this.g, units.x, units.y);
  }

  private onClick(e: MouseEvent): void {
    const i = this.seatFromEvent(e);
    if (i < 0) return;
    this.setFocus(i, false);
    this.toggle(i);
  }

  private onHover(e: MouseEvent): void {
    this.setHover(this.seatFromEvent(e));
  }

  private setHover(i: number): void {
    if (i === this.hover) return;
    this.hover = i;
    this.canvas.style.cursor = i >= 0 ? 'pointer' : 'default';
    this.canvas.title = i >= 0 ? this.describe(i) : '';
  }

  private onKey(e: KeyboardEvent): void {
    const direction = KEYS[e.key];
    if (direction) {
      e.preventDefault();
      this.setFocus(move(this.g, this.focus, direction), true);
    } else if (e.key === 'Enter' || e.key === ' ' || e.key === 'Spacebar') {
      e.preventDefault();
      if (this.focus >= 0) this.toggle(this.focus);
    }
  }

  private onFocus(): void {
    this.hasFocus = true;
    if (this.focus < 0) {
      // Start on the first seat one could buy, else the first seat.
      let first = 0;
      for (let i = 0; i < this.g.count; i++) {
        if (this.state.code(i) === Code.Available) {
          first = i;
          break;
        }
      }
      this.setFocus(first, true);
    } else {
      this.dirty.add(this.focus);
      this.schedule();
      this.hooks.announce(this.describe(this.focus));
    }
  }

  private onBlur(): void {
    this.hasFocus = false;
    if (this.focus >= 0) {
      this.dirty.add(this.focus);
      this.schedule();
    }
  }

  private setFocus(i: number, announce: boolean): void {
    if (i < 0 || i >= this.g.count) return;
    if (this.focus >= 0) this.dirty.add(this.focus);
    this.focus = i;
    this.dirty.add(i);
    this.schedule();
    if (announce) {
      this.hooks.announce(this.describe(i));
      this.scrollIntoView(i);
    }
  }

  private toggle(i: number): void {
    const id = this.g.ids[i];
    if (!id) return;
    const before = this.hooks.isPicked(id);
    this.hooks.toggle(id, this.statusAt(i));
    const after = this.hooks.isPicked(id);
    this.repaint([id]);
    if (before !== after) this.hooks.announce(`${this.describe(i)}${after ? '' : ', deselected'}`);
  }

  private statusAt(i: number): SeatStatus | undefined {
    const id = this.g.ids[i];
    return id === undefined ? undefined : this.state.status(id);
  }

  /** "Stalls row A seat 12, available, Premium €120" (", selected" when picked). */
  describe(i: number): string {
    const label = labelOf(this.g, i);
    if (!label) return '';
    const status = this.statusAt(i) ?? 'loading';
    const tier = label.tier ? `, ${label.tier.name} ${money(label.tier.price_cents, label.tier.currency)}` : '';
    const picked = this.hooks.isPicked(this.g.ids[i] ?? '') ? ', selected' : '';
    return `${seatName(label)}, ${status}${tier}${picked}`;
  }

  /** Keep a keyboard-focused seat visible when the map is zoomed or taller than the window. */
  private scrollIntoView(i: number): void {
    const centre = this.centreOf(i);
    const margin = this.renderer.pitch * 2;
    const scroller = this.canvas.parentElement;
    if (scroller && scroller.scrollWidth > scroller.clientWidth) {
      const box = scroller.getBoundingClientRect();
      if (centre.x < box.left + margin) scroller.scrollLeft -= box.left + margin - centre.x;
      else if (centre.x > box.right - margin) scroller.scrollLeft += centre.x - (box.right - margin);
    }
    if (centre.y < margin || centre.y > window.innerHeight - margin) {
      window.scrollBy({ top: centre.y - window.innerHeight / 2, behavior: 'auto' });
    }
  }

  /** Client (viewport) coordinates of seat `i`'s centre, as they are now. */
  private centreOf(i: number): { x: number; y: number } {
    const rect = this.canvas.getBoundingClientRect();
    const cell = this.renderer.cellOrigin(i);
    const half = this.renderer.pitch / 2;
    return { x: rect.left + cell.x + half, y: rect.top + cell.y + half };
  }

  // -- the test probe -------------------------------------------------------------------------

  probe(): SeatMapProbe {
    return {
      status: (seatId) => this.state.status(seatId),
      seatCenter: (seatId) => {
        const i = this.g.index.get(seatId);
        if (i === undefined) return undefined;
        // When the map is zoomed wider than its box, bring the seat's column into the box
        // first: page coordinates cannot reach a seat scrolled out of an overflow container.
        const scroller = this.canvas.parentElement;
        if (scroller && scroller.scrollWidth > scroller.clientWidth) {
          const box = scroller.getBoundingClientRect();
          const x = this.centreOf(i).x;
          if (x < box.left || x > box.right) scroller.scrollLeft += x - (box.left + box.right) / 2;
        }
        // Page coordinates (independent of the window's scroll): scroll to them, subtract
        // window.scrollX/Y, click.
        const centre = this.centreOf(i);
        return { x: centre.x + window.scrollX, y: centre.y + window.scrollY };
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
    };
  }
}
