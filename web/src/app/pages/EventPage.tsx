import { useEffect, useMemo } from 'react';

import { eventDateTime } from '../../shared/format';
import { Feedback } from '../components/Feedback';
import { HoldPanel } from '../components/HoldPanel';
import { NotFound } from '../components/NotFound';
import { SeatMapView } from '../components/SeatMapView';
import { SelectionPanel } from '../components/SelectionPanel';
import { NARROW, StickyBar, useMedia } from '../components/StickyBar';
import { WaitingRoomPanel } from '../components/WaitingRoomPanel';
import { listenForAnnouncements, listenForStatus } from '../live';
import { href } from '../router';
import { saleLabel, useSaleClock } from '../sale';
import { useShop } from '../shop';

export function EventPage({ id }: { id: number }) {
  const event = useShop((s) => (s.eventId === id ? s.event : null));
  const loadError = useShop((s) => s.loadError);
  const loadStatus = useShop((s) => s.loadStatus);
  const narrow = useMedia(NARROW);
  const hold = useShop((s) => s.hold);
  const error = useShop((s) => s.error);
  const notice = useShop((s) => s.notice);
  const dismiss = useShop((s) => s.dismiss);
  // Re-renders the page (the badge, the selection panel, the sticky bar) as the sale opens.
  const now = useSaleClock(useMemo(() => (event ? [event] : []), [event]));

  useEffect(() => {
    void useShop.getState().open(id);
    const stop = listenForAnnouncements(`/topic/events/${id}/announcements`);
    const stopStatus = listenForStatus(id);
    // A tab left in the background may have missed pushes (a suspended connection): read the
    // event again when the user comes back to it.
    const onVisible = () => {
      if (document.visibilityState === 'visible') void useShop.getState().refreshEvent();
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      document.removeEventListener('visibilitychange', onVisible);
      stop();
      stopStatus();
      useShop.getState().leave();
    };
  }, [id]);

  if (loadError && !event && loadStatus === 404) {
    return (
      <NotFound title="Event not found">
        <p>We could not find event {id}. It may have been removed, or the link may be mistyped.</p>
      </NotFound>
    );
  }
  if (loadError && !event) {
    return (
      <>
        <a className="back" href={href.events()}>
          ← All events
        </a>
        <Feedback error={loadError} />
      </>
    );
  }
  if (!event) return <p className="muted">Loading event…</p>;
  const sale = saleLabel(event, now);
  // Above the sidebar's panels on a wide screen. On a narrow one at the end of the page, stuck
  // above the sticky bar while the end is out of view (styles.css): what a tap on the bar or the
  // map caused (a refused hold, a seat taken live) shows where the user is, and, taking its own
  // room at the end of the page, it never hides the page's last controls for good.
  const feedback = (
    <div className="event-feedback">
      <Feedback error={error} notice={notice} onDismiss={dismiss} />
    </div>
  );

  return (
    <div className={narrow ? 'event-page event-page--bar' : 'event-page'}>
      <a className="back" href={href.events()}>
        ← All events
      </a>
      <div className="event-head">
        <div>
          <h1 className="page-title">{event.name}</h1>
          <p className="event-head__meta">
            {event.venue} · {eventDateTime(event.starts_at, event)}
          </p>
        </div>
        <span className={`badge badge--${sale.tone} badge--large`}>{sale.text}</span>
      </div>
      <div className="event-layout">
        <section className="card map-card" aria-label="Seat map">
          <SeatMapView event={event} />
        </section>
        <aside className="sidebar">
          {!narrow && feedback}
          {event.waiting_room && !hold && <WaitingRoomPanel eventId={event.id} />}
          {hold ? <HoldPanel hold={hold} /> : <SelectionPanel event={event} />}
        </aside>
      </div>
      {narrow && feedback}
      {narrow && <StickyBar />}
    </div>
  );
}
