// The one thing the user should do next on an event page, for the sticky bar on narrow screens:
// join the waiting room, hold the picked seats, or check out the hold. Pure.

import { inLine, type EventDetail } from '../shared/types';
import { isOnSale } from './sale';
import { canShop, type ShopState } from './shop';

export type PrimaryAction =
  | { kind: 'join'; label: string; disabled: boolean }
  | { kind: 'hold'; label: string; disabled: boolean }
  | { kind: 'checkout'; label: string; disabled: boolean }
  /** Nothing to press: `label` says why (waiting in line, not on sale…). */
  | { kind: 'none'; label: string };

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
      return { kind: 'none', label: queue.position === null ? 'In the pre-queue' : `Number ${queue.position} in line` };
    }
    if (!state.queueKnown) return { kind: 'none', label: 'Checking your place…' };
    return {
      kind: 'join',
      label: state.busy === 'join' ? 'Joining…' : queue ? 'Join the queue again' : 'Join the queue',
      disabled: state.busy !== null,
    };
  }
  const count = state.selected.length;
  return {
    kind: 'hold',
    label: state.busy === 'hold' ? 'Holding…' : holdLabel(count),
    disabled: count === 0 || state.busy !== null,
  };
}
