// The seat map's camera: which part of the map the canvas shows, and at what size. Pure math.
//
// A view maps world units (geometry.ts) to CSS pixels of the canvas box:
//
//   screen = world × scale + (x, y)
//
// so `scale` is the seat pitch in CSS pixels. Gestures, buttons and keys each produce a new view
// from the current one; `clampView` then keeps it inside the zoom limits and keeps the map on
// screen (a map narrower than the box is centred in it, a wider one cannot be dragged away
// past its edges).

import type { Rect } from './geometry';

export interface View {
  scale: number;
  x: number;
  y: number;
}

export interface Point {
  x: number;
  y: number;
}

export interface Size {
  width: number;
  height: number;
}

export interface Limits {
  min: number;
  max: number;
}

/** A seat is at least this many CSS pixels wide at the default zoom: a finger's target (WCAG
 *  2.5.8's 24 px). */
export const MIN_DEFAULT_PITCH = 24;
/** The default zoom never makes seats larger than this (a small hall on a wide screen). */
export const MAX_DEFAULT_PITCH = 40;
/** The largest zoom. */
export const MAX_PITCH = 72;

export function toScreen(view: View, world: Point): Point {
  return { x: world.x * view.scale + view.x, y: world.y * view.scale + view.y };
}

export function toWorld(view: View, screen: Point): Point {
  return { x: (screen.x - view.x) / view.scale, y: (screen.y - view.y) / view.scale };
}

function within(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}

/** Zoom limits for a map of `world` units in a `box`: out to the whole map (or 24 px, if
 *  that is smaller still), in to MAX_PITCH. */
export function limitsFor(world: Size, box: Size): Limits {
  const whole = fitScale(world, box);
  return { min: Math.min(whole, MIN_DEFAULT_PITCH), max: Math.max(MAX_PITCH, whole) };
}

/** The scale at which `rect` fits inside `box`. */
export function fitScale(rect: Size, box: Size): number {
  if (rect.width <= 0 || rect.height <= 0 || box.width <= 0 || box.height <= 0) return 1;
  return Math.min(box.width / rect.width, box.height / rect.height);
}

/** `view` with its scale inside `limits` and the map kept on screen (per axis: centred when it
 *  is smaller than the box, else its edges never come inside the box's). */
export function clampView(view: View, box: Size, world: Size, limits: Limits): View {
  const scale = within(view.scale, limits.min, limits.max);
  const axis = (offset: number, worldSize: number, boxSize: number): number => {
    const size = worldSize * scale;
    if (size <= boxSize) return (boxSize - size) / 2;
    return within(offset, boxSize - size, 0);
  };
  return { scale, x: axis(view.x, world.width, box.width), y: axis(view.y, world.height, box.height) };
}

/** Zoom by `factor` about the screen point `at`: the world point under it stays under it. */
export function zoomAt(view: View, factor: number, at: Point): View {
  const anchor = toWorld(view, at);
  const scale = view.scale * factor;
  return { scale, x: at.x - anchor.x * scale, y: at.y - anchor.y * scale };
}

export function panBy(view: View, dx: number, dy: number): View {
  return { scale: view.scale, x: view.x + dx, y: view.y + dy };
}

function distance(a: Point, b: Point): number {
  return Math.hypot(a.x - b.x, a.y - b.y);
}

function midpoint(a: Point, b: Point): Point {
  return { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
}

/**
 * Two fingers that went down at `a0`, `b0` (when the view was `start`) and are now at `a1`,
 * `b1`: the map scales by how much their distance changed, and the world point that was under
 * their midpoint stays under it as it moves (pinch and pan in one gesture, as on any map).
 */
export function pinchView(start: View, a0: Point, b0: Point, a1: Point, b1: Point): View {
  const before = distance(a0, b0);
  const factor = before < 1 ? 1 : distance(a1, b1) / before;
  const anchor = toWorld(start, midpoint(a0, b0));
  const to = midpoint(a1, b1);
  const scale = start.scale * factor;
  return { scale, x: to.x - anchor.x * scale, y: to.y - anchor.y * scale };
}

/** `rect` (world units) centred in `box` at `scale`. */
export function centreOn(rect: Rect, box: Size, scale: number): View {
  return {
    scale,
    x: box.width / 2 - (rect.x + rect.width / 2) * scale,
    y: box.height / 2 - (rect.y + rect.height / 2) * scale,
  };
}

/** The whole of `rect` in the box, centred. */
export function fitView(rect: Rect, box: Size): View {
  return centreOn(rect, box, fitScale(rect, box));
}

/**
 * A section in view: its width fills the box, but seats are never smaller than
 * MIN_DEFAULT_PITCH (a section wider than that shows its middle, to pan from) nor larger than
 * MAX_DEFAULT_PITCH. Its top (for the first section: the stage) is at the top of the box when
 * the section is taller than the box.
 */
export function sectionView(rect: Rect, box: Size): View {
  const scale = within(box.width / rect.width, MIN_DEFAULT_PITCH, MAX_DEFAULT_PITCH);
  const view = centreOn(rect, box, scale);
  if (rect.height * scale > box.height) view.y = -rect.y * scale;
  return view;
}

/** The smallest pan that brings `rect` (world units) `margin` pixels inside the box. */
export function reveal(view: View, rect: Rect, box: Size, margin = 0): View {
  const axis = (offset: number, start: number, size: number, boxSize: number): number => {
    const low = start * view.scale + offset;
    const high = (start + size) * view.scale + offset;
    if (high - low + 2 * margin > boxSize) return boxSize / 2 - (start + size / 2) * view.scale;
    if (low < margin) return offset + (margin - low);
    if (high > boxSize - margin) return offset - (high - (boxSize - margin));
    return offset;
  };
  return {
    scale: view.scale,
    x: axis(view.x, rect.x, rect.width, box.width),
    y: axis(view.y, rect.y, rect.height, box.height),
  };
}

/** Whether `rect` is entirely inside the box. */
export function shows(view: View, rect: Rect, box: Size): boolean {
  const a = toScreen(view, { x: rect.x, y: rect.y });
  const b = toScreen(view, { x: rect.x + rect.width, y: rect.y + rect.height });
  return a.x >= -0.5 && a.y >= -0.5 && b.x <= box.width + 0.5 && b.y <= box.height + 0.5;
}

/**
 * The view between `from` (t = 0) and `to` (t = 1) for an animated move: the scale changes
 * geometrically (each step zooms by the same factor) and the box's centre travels in a straight
 * line through world space.
 */
export function between(from: View, to: View, t: number, box: Size): View {
  if (t <= 0) return from;
  if (t >= 1) return to;
  const centre = { x: box.width / 2, y: box.height / 2 };
  const a = toWorld(from, centre);
  const b = toWorld(to, centre);
  const scale = from.scale * Math.pow(to.scale / from.scale, t);
  const world = { x: a.x + (b.x - a.x) * t, y: a.y + (b.y - a.y) * t };
  return { scale, x: centre.x - world.x * scale, y: centre.y - world.y * scale };
}

/**
 * `view` moved onto the device pixel grid: a whole number of device pixels per seat and whole
 * device-pixel offsets, zoomed about `anchor` (the world point under it stays put, to within a
 * pixel). Then every seat's cell has the same size and sharp edges, and one cell can be
 * repainted without touching its neighbours (a delta repaints just its seats).
 */
export function snapView(view: View, dpr: number, anchor: Point = { x: 0, y: 0 }): View {
  const devicePitch = Math.max(1, Math.round(view.scale * dpr));
  const scaled = zoomAt(view, devicePitch / dpr / view.scale, anchor);
  return { scale: devicePitch / dpr, x: Math.round(scaled.x * dpr) / dpr, y: Math.round(scaled.y * dpr) / dpr };
}

/** Whether `view` is on the device pixel grid (see snapView). */
export function isSnapped(view: View, dpr: number): boolean {
  const near = (v: number) => Math.abs(v - Math.round(v)) < 1e-6;
  return near(view.scale * dpr) && near(view.x * dpr) && near(view.y * dpr);
}

export function sameView(a: View, b: View): boolean {
  return Math.abs(a.scale - b.scale) < 1e-9 && Math.abs(a.x - b.x) < 1e-6 && Math.abs(a.y - b.y) < 1e-6;
}
