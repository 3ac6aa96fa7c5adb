import { useMemo } from 'react';

import { money, seatIdName } from '../../shared/format';
import type { EventDetail } from '../../shared/types';
import { isOnSale } from '../sale';
import { canShop, useShop } from '../shop';

/** The seats picked so far and the Hold button. */
export function SelectionPanel({ event }: { event: EventDetail }) {
  const selected = useShop((s) => s.selected);
  const busy = useShop((s) => s.busy);
  const allowed = useShop(canShop);
  const placeHold = useShop((s) => s.placeHold);
  const toggle = useShop((s) => s.toggleSeat);

  // seat id → tier id, once per event (a layout may hold 100,000 seats).
  const tierOf = useMemo(() => {
    const map = new Map<string, number>();
    for (const section of event.layout.sections) {
      for (const row of section.rows) for (const seat of row.seats) map.set(seat.id, seat.tier_id);
    }
    return map;
  }, [event]);
  const tiers = useMemo(() => new Map(event.tiers.map((t) => [t.id, t])), [event]);
  const currency = event.tiers[0]?.currency ?? 'EUR';
  const total = selected.reduce((sum, id) => sum + (tiers.get(tierOf.get(id) ?? -1)?.price_cents ?? 0), 0);
  const max = event.max_seats_per_user;

  let hint: string;
  if (!isOnSale(event)) hint = 'This event is not on sale right now.';
  else if (!allowed) hint = 'You can pick seats now and hold them once the waiting room lets you in.';
  else if (selected.length === 0) hint = `Pick up to ${max} seat${max === 1 ? '' : 's'} on the map.`;
  else hint = `Seats are held for ${Math.round(event.hold_ttl_s / 60)} minutes while you pay.`;

  return (
    <section className="card selection" aria-labelledby="selection-title">
      <h2 id="selection-title" className="card__title">
        Your seats <span className="muted">({selected.length}/{max})</span>
      </h2>
      {selected.length > 0 && (
        <ul className="seat-list">
          {selected.map((id) => {
            const tier = tiers.get(tierOf.get(id) ?? -1);
            return (
              <li key={id}>
                <span>{seatIdName(id)}</span>
                <span className="seat-list__price">{tier ? money(tier.price_cents, tier.currency) : ''}</span>
                <button type="button" className="link-button" onClick={() => toggle(id, undefined)} aria-label={`Remove ${seatIdName(id)}`}>
                  ×
                </button>
              </li>
            );
          })}
        </ul>
      )}
      {selected.length > 0 && (
        <p className="total">
          Total <strong>{money(total, currency)}</strong>
        </p>
      )}
      <p className="muted small">{hint}</p>
      <button type="button" className="button button--primary button--wide" data-testid="hold-button" onClick={() => void placeHold()} disabled={selected.length === 0 || !allowed || busy !== null}>
        {busy === 'hold' ? 'Holding…' : selected.length > 1 ? `Hold ${selected.length} seats` : 'Hold seat'}
      </button>
    </section>
  );
}
