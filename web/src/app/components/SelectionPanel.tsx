import { useId, useState } from 'react';

import { exactDuration, money, sectionName } from '../../shared/format';
import type { BestAvailableRequest, EventDetail } from '../../shared/types';
import { isOnSale } from '../sale';
import { seatIndex, seatWords, tierOf, totalOf } from '../seats';
import { canShop, useShop } from '../shop';

/** Why the user cannot hold yet, or what to do next. */
function hintFor(event: EventDetail, allowed: boolean, selected: number): string {
  const max = event.max_seats_per_user;
  if (!isOnSale(event)) return 'This event is not on sale right now.';
  if (!allowed) return 'You can pick seats now and hold them once the waiting room lets you in.';
  if (selected === 0) return `Pick up to ${max} seat${max === 1 ? '' : 's'} on the map, or let us find the best ones.`;
  return `Seats are held for ${exactDuration(event.hold_ttl_s)} while you pay.`;
}

/** The seats picked so far, the Hold button, and "best available". */
export function SelectionPanel({ event }: { event: EventDetail }) {
  const selected = useShop((s) => s.selected);
  const busy = useShop((s) => s.busy);
  const allowed = useShop(canShop);
  const placeHold = useShop((s) => s.placeHold);
  const toggle = useShop((s) => s.toggleSeat);
  const total = totalOf(event, selected);
  const max = event.max_seats_per_user;

  return (
    <section className="card selection" aria-labelledby="selection-title">
      <h2 id="selection-title" className="card__title">
        Your seats <span className="muted">({selected.length}/{max})</span>
      </h2>
      {selected.length > 0 && (
        <ul className="seat-list">
          {selected.map((id) => {
            const tier = tierOf(event, id);
            const name = seatWords(event, id);
            return (
              <li key={id}>
                <span>{name}</span>
                <span className="seat-list__price">{tier ? money(tier.price_cents, tier.currency) : ''}</span>
                <button type="button" className="link-button" onClick={() => toggle(id, undefined)} aria-label={`Remove ${name}`}>
                  ×
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {selected.length > 0 && (
        <p className="total">
          Total <strong>{total.text}</strong>
        </p>
      )}
      <p className="muted small">{hintFor(event, allowed, selected.length)}</p>
      <button type="button" className="button button--primary button--wide" data-testid="hold-button" onClick={() => void placeHold()} disabled={selected.length === 0 || !allowed || busy !== null}>
        {busy === 'hold' ? 'Holding…' : selected.length > 1 ? `Hold ${selected.length} seats` : 'Hold seat'}
      </button>
      <BestAvailable event={event} disabled={!allowed || busy !== null || !isOnSale(event)} />
    </section>
  );
}

/** "Find me N seats": count, and optionally a section, a price tier, wheelchair access. */
function BestAvailable({ event, disabled }: { event: EventDetail; disabled: boolean }) {
  const holdBest = useShop((s) => s.holdBest);
  const busy = useShop((s) => s.busy);
  const id = useId();
  const max = event.max_seats_per_user;
  const [count, setCount] = useState(Math.min(2, max));
  const [section, setSection] = useState('');
  const [tier, setTier] = useState('');
  const [accessible, setAccessible] = useState(false);
  // The layout marks wheelchair spaces (seat attribute `accessible`) only where there are any.
  const hasAccessible = [...seatIndex(event).values()].some((s) => s.accessible);

  const request: BestAvailableRequest = { count };
  if (section) request.section = section;
  if (tier) request.tier = Number(tier);
  if (accessible) request.accessible = true;

  return (
    <form
      className="best"
      aria-labelledby={`${id}-title`}
      onSubmit={(e) => {
        e.preventDefault();
        void holdBest(request);
      }}
    >
      <h3 id={`${id}-title`} className="best__title">
        Best available
      </h3>
      <p className="muted small best__help">We find the best seats side by side and hold them for you.</p>
      <div className="best__fields">
        <label className="field field--inline">
          <span className="field__label">Seats</span>
          <select data-testid="best-count" value={count} onChange={(e) => setCount(Number(e.target.value))}>
            {Array.from({ length: max }, (_, k) => k + 1).map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        {event.layout.sections.length > 1 && (
          <label className="field field--inline">
            <span className="field__label">Section</span>
            <select data-testid="best-section" value={section} onChange={(e) => setSection(e.target.value)}>
              <option value="">Any</option>
              {event.layout.sections.map((s) => (
                <option key={s.name} value={s.name}>
                  {sectionName(s.name)}
                </option>
              ))}
            </select>
          </label>
        )}
        {event.tiers.length > 1 && (
          <label className="field field--inline">
            <span className="field__label">Price</span>
            <select data-testid="best-tier" value={tier} onChange={(e) => setTier(e.target.value)}>
              <option value="">Any</option>
              {event.tiers.map((t) => (
                <option key={t.id} value={t.id}>
                  {t.name} {money(t.price_cents, t.currency)}
                </option>
              ))}
            </select>
          </label>
        )}
      </div>
      {hasAccessible && (
        <label className="toggle">
          <input type="checkbox" data-testid="best-accessible" checked={accessible} onChange={(e) => setAccessible(e.target.checked)} />
          Wheelchair space (with a companion seat beside it)
        </label>
      )}
      <button type="submit" className="button button--wide" data-testid="best-button" disabled={disabled}>
        {busy === 'hold' ? 'Finding seats…' : `Find the best ${count === 1 ? 'seat' : `${count} seats`}`}
      </button>
    </form>
  );
}
