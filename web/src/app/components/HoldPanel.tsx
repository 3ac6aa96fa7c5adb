import { useEffect, useId, useRef, useState } from 'react';

import { fractionLeft, msToNextTick, secondsLeft, urgency } from '../../hold/countdown';
import { clock, money } from '../../shared/format';
import { focusElement, focusLost } from '../../shared/focus';
import { currentCustomer } from '../../shared/identity';
import { emailProblem, rememberedEmail } from '../orders';
import { navigate, href } from '../router';
import { seatWords } from '../seats';
import { TEST_CARDS, useShop, type ActiveHold } from '../shop';

/** The time now, re-rendering on each whole second of the hold's countdown. */
export function useHoldClock(hold: ActiveHold): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    let timer = 0;
    const tick = () => {
      const t = Date.now();
      setNow(t);
      if (t < hold.deadline.at) timer = window.setTimeout(tick, msToNextTick(hold.deadline, t) + 5);
    };
    tick();
    return () => window.clearTimeout(timer);
  }, [hold]);
  return now;
}

/** An active hold: the countdown, the seats, the test card and the pay button. */
export function HoldPanel({ hold }: { hold: ActiveHold }) {
  const now = useHoldClock(hold);
  const busy = useShop((s) => s.busy);
  const pay = useShop((s) => s.pay);
  const release = useShop((s) => s.releaseHold);
  const lapsed = useShop((s) => s.holdLapsed);
  const event = useShop((s) => s.event);
  const [card, setCard] = useState<string>(TEST_CARDS[0].token);
  const customer = currentCustomer();
  const [email, setEmail] = useState<string>(() => customer?.email ?? rememberedEmail());
  const problem = emailProblem(email);
  const emailOk = problem === null;
  // The problem shows once the user has been in the field and left it, not while they are
  // still typing the address.
  const [touched, setTouched] = useState(false);
  const showProblem = touched && problem !== null;
  // Until then, the Pay button says itself why it waits (a disabled button alone says nothing).
  const payWaits = problem !== null && !showProblem && busy !== 'pay';
  const id = useId();
  const left = secondsLeft(hold.deadline, now);
  const mood = urgency(hold.deadline, now);
  const heading = useRef<HTMLHeadingElement>(null);
  const payButton = useRef<HTMLButtonElement>(null);

  // This panel replaces the Hold button that had focus: take focus to its heading, so the
  // countdown and the payment form are what a keyboard or screen-reader user meets next.
  useEffect(() => {
    if (heading.current && focusLost()) focusElement(heading.current);
  }, []);

  // A payment that failed (declined, gateway error) leaves the Pay button, disabled while it
  // worked, unfocused: give focus back to it, beside the error the page now shows.
  const wasBusy = useRef(busy);
  useEffect(() => {
    if (wasBusy.current === 'pay' && busy === null && payButton.current && focusLost()) {
      if (payButton.current.disabled) focusElement(heading.current ?? payButton.current);
      else payButton.current.focus();
    }
    wasBusy.current = busy;
  }, [busy]);

  useEffect(() => {
    if (left === 0 && busy !== 'pay') lapsed();
  }, [left, busy, lapsed]);

  const onPay = async () => {
    if (!emailOk) return;
    const order = await pay(card, email.trim());
    if (order) navigate(href.order(order.order_id));
  };

  return (
    <section className={`card hold hold--${mood}`} aria-labelledby="hold-title" id="hold-panel">
      <h2 id="hold-title" className="card__title" ref={heading} tabIndex={-1}>
        Your seats are held
      </h2>
      <div className="hold__timer" role="timer" aria-label={`${clock(left)} left to pay`}>
        <span className="hold__clock">
          <span data-testid="hold-countdown">{left}</span>
          <span className="hold__unit"> s left</span>
        </span>
        <span className="muted">({clock(left)})</span>
      </div>
      <div className="progress" aria-hidden="true">
        <div className="progress__bar" style={{ width: `${fractionLeft(hold.deadline, now) * 100}%` }} />
      </div>
      <ul className="seat-list">
        {hold.seats.map((id) => (
          <li key={id}>{seatWords(event, id)}</li>
        ))}
      </ul>
      <p className="total">
        Total <strong>{money(hold.amount_cents, hold.currency)}</strong>
      </p>
      <label className="field">
        <span className="field__label">E-mail for your tickets</span>
        <input
          type="email"
          id="checkout-email"
          data-testid="checkout-email"
          autoComplete="email"
          required
          maxLength={254}
          value={email}
          onChange={(e) => setEmail(e.target.value)}
          onBlur={() => setTouched(true)}
          disabled={busy === 'pay'}
          aria-invalid={showProblem}
          aria-describedby={showProblem ? `${id}-email-error ${id}-email-help` : `${id}-email-help`}
          placeholder="you@example.com"
        />
        {showProblem && (
          <span id={`${id}-email-error`} className="field__error small" data-testid="checkout-email-error">
            {problem}
          </span>
        )}
        <span id={`${id}-email-help`} className="muted small">
          The tickets (QR codes and a PDF) and a link to your order are sent there.
        </span>
      </label>
      <label className="field">
        <span className="field__label">Test card</span>
        <select data-testid="card-select" id="card-select" value={card} onChange={(e) => setCard(e.target.value)} disabled={busy === 'pay'}>
          {TEST_CARDS.map((c) => (
            <option key={c.token} value={c.token}>
              {c.label}
            </option>
          ))}
        </select>
      </label>
      {payWaits && (
        <p id={`${id}-pay-why`} className="hold__why small" data-testid="pay-why">
          Enter your e-mail address above to pay.
        </p>
      )}
      <button
        type="button"
        ref={payButton}
        id="pay-button"
        className="button button--primary button--wide"
        data-testid="pay-button"
        onClick={() => void onPay()}
        disabled={busy !== null || left === 0 || !emailOk}
        aria-describedby={showProblem ? `${id}-email-error` : payWaits ? `${id}-pay-why` : undefined}
      >
        {busy === 'pay' ? 'Processing payment…' : `Pay ${money(hold.amount_cents, hold.currency)}`}
      </button>
      <button type="button" className="button button--ghost button--wide" onClick={() => void release()} disabled={busy !== null}>
        {busy === 'release' ? 'Releasing…' : 'Release seats'}
      </button>
    </section>
  );
}
