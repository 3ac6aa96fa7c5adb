import { useSyncExternalStore } from 'react';

import { clock, money } from '../../shared/format';
import { secondsLeft } from '../../hold/countdown';
import { primaryAction } from '../primaryAction';
import { totalOf } from '../seats';
import { useShop, type ActiveHold } from '../shop';
import { useHoldClock } from './HoldPanel';

/** The same breakpoint as the stylesheet's one-column event page. */
export const NARROW = '(max-width: 900px)';

/** Whether `query` matches, kept current. */
export function useMedia(query: string): boolean {
  return useSyncExternalStore(
    (onChange) => {
      const list = window.matchMedia(query);
      list.addEventListener('change', onChange);
      return () => list.removeEventListener('change', onChange);
    },
    () => window.matchMedia(query).matches,
  );
}

function HoldClock({ hold }: { hold: ActiveHold }) {
  const now = useHoldClock(hold);
  return <>{clock(secondsLeft(hold.deadline, now))} left</>;
}

/**
 * On narrow screens: a bar fixed to the bottom of the screen with the user's seats, their total
 * and the next step (join / hold / checkout), so it is always a thumb away from the map.
 */
export function StickyBar() {
  const state = useShop();
  const { event, hold, selected } = state;
  if (!event) return null;
  const action = primaryAction(state);
  const seats = hold ? hold.seats : selected;
  const total = hold ? money(hold.amount_cents, hold.currency) : totalOf(event, seats).text;

  const run = () => {
    const shop = useShop.getState();
    if (action.kind === 'join') void shop.join();
    else if (action.kind === 'hold') void shop.placeHold();
    else if (action.kind === 'checkout') {
      // Payment happens in the hold panel: bring it up, ready for the card.
      document.getElementById('hold-panel')?.scrollIntoView({ behavior: 'smooth', block: 'start' });
      document.getElementById('card-select')?.focus({ preventScroll: true });
    }
  };

  return (
    <div className="sticky-bar" data-testid="sticky-bar" role="region" aria-label="Your seats and next step">
      <div className="sticky-bar__summary" data-testid="bar-summary" aria-live="polite">
        {hold ? (
          <>
            <strong>
              {seats.length} seat{seats.length === 1 ? '' : 's'} held · {total}
            </strong>
            <span className="muted small">
              <HoldClock hold={hold} />
            </span>
          </>
        ) : seats.length > 0 ? (
          <>
            <strong>
              {seats.length} seat{seats.length === 1 ? '' : 's'} · {total}
            </strong>
            <span className="muted small">of {event.max_seats_per_user} you can pick</span>
          </>
        ) : (
          <span className="muted">No seats picked yet</span>
        )}
      </div>
      {action.kind === 'none' ? (
        <span className="sticky-bar__status" data-testid="bar-status">
          {action.label}
        </span>
      ) : (
        <button type="button" className="button button--primary sticky-bar__action" data-testid="bar-action" onClick={run} disabled={action.disabled}>
          {action.label}
        </button>
      )}
    </div>
  );
}
