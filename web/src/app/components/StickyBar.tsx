import { useEffect, useLayoutEffect, useRef, useState, useSyncExternalStore } from 'react';

import { clock, money } from '../../shared/format';
import { secondsLeft } from '../../hold/countdown';
import { emailProblem } from '../orders';
import { primaryAction } from '../primaryAction';
import { seatsByRow, totalOf } from '../seats';
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

/** Fields that bring up an on-screen keyboard (not checkboxes, buttons or selects). */
function isTextField(element: EventTarget | null): boolean {
  if (element instanceof HTMLTextAreaElement) return true;
  if (element instanceof HTMLElement && element.isContentEditable) return true;
  return element instanceof HTMLInputElement && /^(text|email|search|tel|url|password|number)$/.test(element.type);
}

/**
 * Whether the bar should step aside: while the hold panel's Pay button is on screen (the next
 * step is right there, and the bar would only cover it with a "Checkout" that leads where the
 * user already is), and while a text field has focus (an on-screen keyboard leaves the page
 * little room, and a second fixed bar would take a third of it).
 */
function useStepAside(holding: boolean): boolean {
  const [typing, setTyping] = useState(() => isTextField(document.activeElement));
  const [payShown, setPayShown] = useState(false);

  useEffect(() => {
    const onFocusIn = (e: FocusEvent) => setTyping(isTextField(e.target));
    const onFocusOut = (e: FocusEvent) => setTyping(isTextField(e.relatedTarget));
    document.addEventListener('focusin', onFocusIn);
    document.addEventListener('focusout', onFocusOut);
    return () => {
      document.removeEventListener('focusin', onFocusIn);
      document.removeEventListener('focusout', onFocusOut);
    };
  }, []);

  useEffect(() => {
    const pay = holding ? document.getElementById('pay-button') : null;
    if (!pay) {
      setPayShown(false);
      return undefined;
    }
    const observer = new IntersectionObserver((entries) => {
      const last = entries[entries.length - 1];
      if (last) setPayShown(last.isIntersecting);
    });
    observer.observe(pay);
    return () => observer.disconnect();
  }, [holding]);

  return typing || payShown;
}

/** Bring up the payment form below the sticky top bar, ready for what it lacks: the e-mail
 *  address while it has none, else the card. */
function showPaymentForm(): void {
  const reduced = window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  document.getElementById('hold-panel')?.scrollIntoView({ behavior: reduced ? 'auto' : 'smooth', block: 'start' });
  const email = document.getElementById('checkout-email');
  const wantsEmail = email instanceof HTMLInputElement && emailProblem(email.value) !== null;
  (wantsEmail ? email : document.getElementById('card-select'))?.focus({ preventScroll: true });
}

/**
 * On narrow screens: a bar fixed to the bottom of the screen with the user's seats (by name, so
 * a wrong pick shows), their total, the next step (join / hold / checkout) and the waiting
 * room's news (the wait, the turn and when it ends), so it is always a thumb away from the map.
 * Its height is `--sticky-bar-height` on the page (kept clear at the page's end), and
 * `--sticky-bar-offset` while it shows (for the messages stuck above it; 0 while it steps aside).
 */
export function StickyBar() {
  const state = useShop();
  const { event, hold, selected } = state;
  const away = useStepAside(hold !== null);
  const bar = useRef<HTMLDivElement>(null);

  useLayoutEffect(() => {
    const element = bar.current;
    const page = element?.parentElement;
    if (!element || !page) return undefined;
    const measure = () => {
      const height = `${element.offsetHeight}px`;
      page.style.setProperty('--sticky-bar-height', height); // the page's end stays clear of it
      page.style.setProperty('--sticky-bar-offset', away ? '0px' : height); // what sits above it
    };
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    measure();
    return () => {
      observer.disconnect();
      page.style.removeProperty('--sticky-bar-height');
      page.style.removeProperty('--sticky-bar-offset');
    };
  }, [away, event !== null]);

  if (!event) return null;
  const action = primaryAction(state);
  const seats = hold ? hold.seats : selected;
  const total = hold ? money(hold.amount_cents, hold.currency) : totalOf(event, seats).text;
  const count = `${seats.length} seat${seats.length === 1 ? '' : 's'}`;

  const run = () => {
    const shop = useShop.getState();
    if (action.kind === 'join') void shop.join();
    else if (action.kind === 'hold') void shop.placeHold();
    else if (action.kind === 'checkout') showPaymentForm();
  };

  return (
    <div
      ref={bar}
      className={away ? 'sticky-bar sticky-bar--away' : 'sticky-bar'}
      data-testid="sticky-bar"
      role="region"
      aria-label="Your seats and next step"
    >
      {/* Not a live region: the waiting room panel already announces the wait and the turn. */}
      {action.note && (
        <p className={action.kind === 'none' ? 'sticky-bar__note' : 'sticky-bar__note sticky-bar__note--turn'} data-testid="bar-note">
          {action.note}
        </p>
      )}
      <div className="sticky-bar__main">
        <div className="sticky-bar__summary" data-testid="bar-summary">
          <span className="sticky-bar__headline">
            {/* Only the count and total are spoken as they change: the map already says each
                seat picked, and a hold's clock ticking every second is not news. */}
            <span aria-live="polite">
              {seats.length > 0 ? <strong>{hold ? `${count} held · ${total}` : `${count} · ${total}`}</strong> : <span className="muted">No seats picked yet</span>}
            </span>
            {hold && (
              <span className="muted small">
                <HoldClock hold={hold} />
              </span>
            )}
          </span>
          {seats.length > 0 && <span className="sticky-bar__seats">{seatsByRow(event, seats)}</span>}
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
    </div>
  );
}
