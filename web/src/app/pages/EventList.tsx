import { useEffect, useState } from 'react';

import { eventDateTime, money } from '../../shared/format';
import { describeError } from '../../shared/http';
import type { EventSummary } from '../../shared/types';
import { api } from '../api';
import { Feedback } from '../components/Feedback';
import { href } from '../router';
import { saleLabel, useSaleClock } from '../sale';

function priceRange(event: EventSummary): string {
  if (event.tiers.length === 0) return '';
  const prices = event.tiers.map((t) => t.price_cents);
  const currency = event.tiers[0]?.currency ?? 'EUR';
  const low = Math.min(...prices);
  const high = Math.max(...prices);
  return low === high ? money(low, currency) : `${money(low, currency)} – ${money(high, currency)}`;
}

const NO_EVENTS: EventSummary[] = [];

export function EventList() {
  const [events, setEvents] = useState<EventSummary[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const now = useSaleClock(events ?? NO_EVENTS);

  useEffect(() => {
    let current = true;
    api.events().then(
      (list) => current && setEvents(list),
      (e: unknown) => current && setError(describeError(e)),
    );
    return () => {
      current = false;
    };
  }, []);

  return (
    <>
      <h1 className="page-title">Upcoming events</h1>
      <Feedback error={error} />
      {events === null && !error && <p className="muted">Loading events…</p>}
      {events?.length === 0 && <p className="muted">No events yet. An admin can create one in the console.</p>}
      <ul className="event-grid">
        {events?.map((event) => {
          const sale = saleLabel(event, now);
          return (
            <li key={event.id}>
              <a className="event-card" href={href.event(event.id)} data-testid={`event-link-${event.id}`}>
                <div className="event-card__date">{eventDateTime(event.starts_at, event)}</div>
                <h2 className="event-card__name">{event.name}</h2>
                <div className="event-card__venue">{event.venue}</div>
                <div className="event-card__meta">
                  <span className={`badge badge--${sale.tone}`}>{sale.text}</span>
                  {event.waiting_room && <span className="badge badge--queue">Waiting room</span>}
                </div>
                <div className="event-card__foot">
                  <span>{priceRange(event)}</span>
                  <span className="muted">{event.seat_count.toLocaleString('en')} seats</span>
                </div>
              </a>
            </li>
          );
        })}
      </ul>
    </>
  );
}
