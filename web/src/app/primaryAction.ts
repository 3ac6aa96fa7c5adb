// The one thing the user should do next on an event page, for the sticky bar on narrow screens:
// join the waiting room, hold the picked seats, or check out the hold; and, beside it, what the
// waiting room says (the wait while in line, the end of the turn once admitted), which is
// otherwise only in the panel below the map. Pure.

import { inLine, type EventDetail } from '../shared/types';
import { isOnSale } from './sale';
import { canShop, type ShopState } from './shop';
import { lineNote, turnNote } from './waitingRoom';

export type PrimaryAction = (
  | { kind: 'join'; label: string; disabled: boolean }
  | { kind: 'hold'; label: string; disabled: boolean }
  | { kind: 'checkout'; label: string; disabled: boolean }
  /** Nothing to press: `label` says why (waiting in line, not on sale…). */
  | { kind: 'none'; label: string }
) & {
  /** A line about the waiting room: "Your turn — hold seats by 19:05", "Estimated wait: …". */
  note?: string;
};

type Inputs = Pick<ShopState, 'event' | 'queue' | 'queueKnown' | 'admission' | 'selected' | 'hold' | 'busy'>;

function holdLabel(count: number): string {
  return count > 1 ? `Hold ${count} seats` : 'Hold seat';
}

export function primaryAction(state: Inputs, now = Date.now()): PrimaryAction {
  const event: EventDetail | null = state.event;
  if (!event) return { kind: 'none', label: 'Loading…' };
  if (state.hold) return { kind: 'checkout', label: state.busy === 'pay' ? 'Paying…' : 'Checkout', disabled: state.busy !== null };
  if (!isOnSale(event, now)) return { kind: 'none', label: 'Not on sale' };
  if (!canShop(state)) {
    const queue = state.queue;
    if (queue && inLine(queue.state)) {
      const label = queue.position === null ? 'In the pre-queue' : `Number ${queue.position} in line`;
      const note = lineNote(queue);
      return note ? { kind: 'none', label, note } : { kind: 'none', label };
    }
    if (!state.queueKnown) return { kind: 'none', label: 'Checking your place…' };
    return {
      kind: 'join',
      label: state.busy === 'join' ? 'Joining…' : queue ? 'Join the queue again' : 'Join the queue',
      disabled: state.busy !== null,
    };
  }
  const count = state.selected.length;
  const action: PrimaryAction = {
    kind: 'hold',
    label: state.busy === 'hold' ? 'Holding…' : holdLabel(count),
    disabled: count === 0 || state.busy !== null,
  };
  // Let in by the waiting room: the turn is the news, and it ends.
  if (event.waiting_room && state.admission) action.note = turnNote(state.admission.expiresAt);
  return action;
}
