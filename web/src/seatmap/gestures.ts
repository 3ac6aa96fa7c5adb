// Pointer events (mouse, touch, pen) into map gestures: tap, drag-pan, two-finger pinch. Pure:
// the controller feeds it each pointer's down/move/up/cancel and acts on what comes back.
//
//   pointers   what happened                        outcome
//   0 → 1      down                                 "pressed": a tap if it lifts where it landed
//   1          moved more than the slop             "panning": every move pans by its delta
//   1 → 2      a second finger                      "pinching" from both fingers' positions
//   2          moved                                pinch (the controller scales from the start)
//   2 → 1      one finger lifts                     "panning" with the one left (never a tap)
//   1 → 0      up while "pressed"                   tap at the lift point
//   any        cancel (the browser took over)       forget that pointer, no tap
//
// A third finger is ignored. The mouse pans with its primary button only.

import { MIN_DEFAULT_PITCH, type Point } from './camera';

export type PointerKind = 'mouse' | 'touch' | 'pen';

export interface PointerInput {
  id: number;
  x: number;
  y: number;
  kind: PointerKind;
  /** MouseEvent.button of a down: 0 is the primary button. */
  button?: number;
}

export type Gesture =
  | { type: 'pan'; dx: number; dy: number }
  /** Fingers that started at a0, b0 (at 'pinch-start') are now at a1, b1. */
  | { type: 'pinch'; a0: Point; b0: Point; a1: Point; b1: Point }
  /** Two fingers are down: remember the view the pinch scales from. */
  | { type: 'pinch-start' }
  | { type: 'tap'; x: number; y: number; kind: PointerKind }
  /** The last pointer lifted after a pan or pinch: a good moment to settle the view. */
  | { type: 'end' };

/** How far (CSS px) a press may wander and still be a tap: a finger wobbles more than a mouse. */
export const SLOP: Record<PointerKind, number> = { mouse: 4, pen: 6, touch: 10 };

/** Seats must be at least this big (CSS px) for a tap to pick one rather than zoom in. A finger
 *  needs the default view's pitch (WCAG 2.5.8's 24 px): on smaller seats a tap a few pixels off
 *  centre lands on the neighbour. */
export const TAP_PITCH: Record<PointerKind, number> = { mouse: 8, pen: 12, touch: MIN_DEFAULT_PITCH };

/** Whether a tap with seats `scale` CSS px apart picks the seat under it. Counted in whole
 *  device pixels, as a view at rest is snapped to them (camera.snapView): the default view's
 *  24 px may be drawn half a device pixel smaller, and a tap there must pick, not zoom to it. */
export function tapPicks(kind: PointerKind, scale: number, dpr: number): boolean {
  return Math.round(scale * dpr) >= Math.round(TAP_PITCH[kind] * dpr);
}

/** Whether a finger's tap on a seat too small to pick zooms in about the tap to TAP_PITCH (the
 *  seat stays under the finger and the next tap there picks it): seats at least half that big.
 *  Smaller ones (a zoomed-out hall), and the mouse and pen, zoom to the section instead. */
export function tapZoomsToSeat(kind: PointerKind, scale: number, dpr: number): boolean {
  return kind === 'touch' && !tapPicks(kind, scale, dpr) && scale >= TAP_PITCH.touch / 2;
}

type Phase = 'idle' | 'pressed' | 'panning' | 'pinching';

export class GestureTracker {
  private readonly pointers = new Map<number, Point>();
  private phase: Phase = 'idle';
  private origin: Point = { x: 0, y: 0 };
  private kind: PointerKind = 'mouse';
  private pinchStart: [Point, Point] | null = null;

  get active(): boolean {
    return this.phase !== 'idle';
  }

  /** Whether the gesture so far moved the map (a pan or a pinch, not a press). */
  get moving(): boolean {
    return this.phase === 'panning' || this.phase === 'pinching';
  }

  down(p: PointerInput): Gesture | null {
    if (p.kind === 'mouse' && (p.button ?? 0) !== 0) return null;
    if (this.pointers.size >= 2) return null;
    this.pointers.set(p.id, { x: p.x, y: p.y });
    if (this.pointers.size === 1) {
      this.phase = 'pressed';
      this.origin = { x: p.x, y: p.y };
      this.kind = p.kind;
      return null;
    }
    this.phase = 'pinching';
    const [a, b] = [...this.pointers.values()] as [Point, Point];
    this.pinchStart = [{ ...a }, { ...b }];
    return { type: 'pinch-start' };
  }

  move(p: PointerInput): Gesture | null {
    const last = this.pointers.get(p.id);
    if (!last) return null;
    const now = { x: p.x, y: p.y };
    this.pointers.set(p.id, now);
    switch (this.phase) {
      case 'pressed': {
        if (Math.hypot(now.x - this.origin.x, now.y - this.origin.y) <= SLOP[this.kind]) return null;
        // The whole way from where it was pressed: the map stays under the finger.
        this.phase = 'panning';
        return { type: 'pan', dx: now.x - this.origin.x, dy: now.y - this.origin.y };
      }
      case 'panning':
        return { type: 'pan', dx: now.x - last.x, dy: now.y - last.y };
      case 'pinching': {
        if (!this.pinchStart || this.pointers.size < 2) return null;
        const [a1, b1] = [...this.pointers.values()] as [Point, Point];
        const [a0, b0] = this.pinchStart;
        return { type: 'pinch', a0, b0, a1: { ...a1 }, b1: { ...b1 } };
      }
      default:
        return null;
    }
  }

  up(p: PointerInput): Gesture | null {
    if (!this.pointers.has(p.id)) return null;
    this.pointers.set(p.id, { x: p.x, y: p.y });
    const phase = this.phase;
    this.pointers.delete(p.id);
    if (this.pointers.size === 1) {
      // Lifting one finger of a pinch: carry on panning with the other, from where it is.
      this.phase = 'panning';
      this.pinchStart = null;
      return null;
    }
    this.reset();
    if (phase === 'pressed') return { type: 'tap', x: p.x, y: p.y, kind: this.kind };
    return phase === 'idle' ? null : { type: 'end' };
  }

  cancel(id: number): Gesture | null {
    if (!this.pointers.delete(id)) return null;
    if (this.pointers.size > 0) {
      this.phase = 'panning';
      this.pinchStart = null;
      return null;
    }
    const moved = this.moving;
    this.reset();
    return moved ? { type: 'end' } : null;
  }

  private reset(): void {
    this.pointers.clear();
    this.phase = 'idle';
    this.pinchStart = null;
  }
}
