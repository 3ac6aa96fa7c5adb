// The hold countdown, independent of the browser's clock being right.
//
// A hold's `created_at` and `expires_at` are both server instants, so their difference is the
// hold's lifetime whatever the client's clock says; anchoring that lifetime at the moment the
// answer arrived gives a local deadline that a skewed client clock cannot shorten or stretch
// (it errs by the request's latency, on the safe side: the local deadline comes a little early).

export interface Deadline {
  /** Local clock (Date.now()) time at which the hold lapses. */
  at: number;
  /** Whole lifetime in seconds, for progress bars. */
  total: number;
}

/** The local deadline of a hold answered at local time `receivedAt`. */
export function deadlineOf(createdAt: string, expiresAt: string, receivedAt: number): Deadline {
  const created = Date.parse(createdAt);
  const expires = Date.parse(expiresAt);
  if (Number.isNaN(expires)) return { at: receivedAt, total: 0 };
  const lifetime = Number.isNaN(created) ? expires - receivedAt : expires - created;
  const ms = Math.max(0, lifetime);
  return { at: receivedAt + ms, total: ms / 1000 };
}

/** Whole seconds left at local time `now` (rounded up: "1" until the very end, then 0). */
export function secondsLeft(deadline: Deadline, now: number): number {
  return Math.max(0, Math.ceil((deadline.at - now) / 1000));
}

export type Urgency = 'calm' | 'hurry' | 'expired';

/** How the countdown should look: a warning in the last minute (or last fifth of a short hold). */
export function urgency(deadline: Deadline, now: number): Urgency {
  const left = secondsLeft(deadline, now);
  if (left <= 0) return 'expired';
  return left <= Math.min(60, deadline.total / 5) ? 'hurry' : 'calm';
}

/** Fraction of the hold still left, 1 → 0, for a progress bar. */
export function fractionLeft(deadline: Deadline, now: number): number {
  if (deadline.total <= 0) return 0;
  return Math.min(1, Math.max(0, (deadline.at - now) / 1000 / deadline.total));
}

/** Milliseconds until the displayed seconds next change, so a timer ticks on the boundary. */
export function msToNextTick(deadline: Deadline, now: number): number {
  const remaining = deadline.at - now;
  if (remaining <= 0) return 0;
  const ms = remaining % 1000;
  return ms === 0 ? 1000 : ms;
}
