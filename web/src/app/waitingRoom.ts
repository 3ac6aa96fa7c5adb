// The waiting room in words, for its panel and the sticky bar. Pure.

import { waitEstimate } from '../shared/format';
import type { QueuePosition } from '../shared/types';

/** "19:05" on the browser's clock: a deadline for the person at the screen (the end of their
 *  admission, of an offer), not a time of the event. */
export function timeOfDay(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
}

/** "Your turn — hold seats by 19:05": an admission and when it ends. */
export function turnNote(expiresAt: string): string {
  return `Your turn — hold seats by ${timeOfDay(expiresAt)}`;
}

/** What to expect while in line (beside "Number 12 in line"): the estimated wait, or why the
 *  line is not moving; nothing in the pre-queue, whose places are not drawn yet. */
export function lineNote(queue: QueuePosition): string | undefined {
  if (queue.state === 'paused') return 'Every seat is held right now: stay in line';
  if (queue.state === 'sold_out') return 'Sold out: you keep your place on the waiting list';
  if (queue.state !== 'waiting' || queue.position === null) return undefined;
  return `Estimated wait: ${waitEstimate(queue.eta_seconds)}`;
}
