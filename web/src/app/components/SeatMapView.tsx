import { useEffect, useMemo, useRef, useState } from 'react';

import { money, sectionName } from '../../shared/format';
import { requestJson } from '../../shared/http';
import type { EventDetail } from '../../shared/types';
import { SeatMapController, type SeatMapProbe } from '../../seatmap/controller';
import { buildGeometry } from '../../seatmap/geometry';
import { COLOURS, tierColour } from '../../seatmap/renderer';
import type { SnapshotMessage } from '../../seatmap/state';
import { live, useConnection } from '../live';
import { useShop, type ShopState } from '../shop';

declare global {
  interface Window {
    /** Hooks for end-to-end tests (Playwright) and benchmarks; harmless for everyone else. */
    __concertHub?: { seatMap?: SeatMapProbe };
  }
}

/** The bar fixed to the bottom of a narrow screen (StickyBar), about as high as it gets with
 *  its note line: the map leaves room for it whether or not it is showing. */
const BOTTOM_BAR_PX = 96;
/** The share of a narrow screen (between the fixed bars) the map may take: the canvas takes
 *  every touch for itself (touch-action: none), so the rest is where the page scrolls from. */
const MAP_SHARE = 0.6;

/** How high the map's box may grow: on a narrow screen, 60% of what the fixed bars leave (the
 *  bottom bar, and the top bar where it stays put); on a desktop, the window less 240 px. */
function maxBoxHeight(): number {
  const h = window.innerHeight;
  if (window.innerWidth > 900) return Math.max(360, h - 240);
  const topbar = document.querySelector('.topbar');
  const stuck = topbar !== null && getComputedStyle(topbar).position !== 'static';
  const top = stuck ? topbar.getBoundingClientRect().height : 0;
  return Math.round((h - top - BOTTOM_BAR_PX) * MAP_SHARE);
}

/** The legend after the tiers: [colour, words, the user's own (drawn with a dot)]. */
function legend(hasOwnTickets: boolean): [string, string, boolean][] {
  return [
    [COLOURS.selected, 'Your pick', true],
    [COLOURS.mineHeld, 'Held for you', true],
    ...(hasOwnTickets ? [[COLOURS.mineBought, 'Your tickets', true] as [string, string, boolean]] : []),
    [COLOURS.held, 'Held', false],
    [COLOURS.sold, 'Sold', false],
    [COLOURS.blocked, 'Blocked', false],
  ];
}

const ownSeats = (s: ShopState) => [s.selected, s.hold?.seats ?? [], s.bought] as const;

/** The live seat map: a canvas fed by /topic/events/{id}/seats, plus legend, zoom and sections. */
export function SeatMapView({ event }: { event: EventDetail }) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const boxRef = useRef<HTMLDivElement>(null);
  const controllerRef = useRef<SeatMapController | null>(null);
  const [announcement, setAnnouncement] = useState('');
  const [zoom, setZoom] = useState(1);
  const [isLive, setIsLive] = useState(false);
  // Only once the map was live: the first connect is not "paused".
  const paused = useConnection((s) => s.everConnected && s.state !== 'connected');
  // From the layout alone: the event is read again when its sale changes (shop.refreshEvent),
  // which must not rebuild the map.
  const geometry = useMemo(() => buildGeometry(event.layout, event.tiers), [event.layout, event.tiers]);
  const hasOwnTickets = useShop((s) => s.bought.length > 0);

  useEffect(() => {
    const canvas = canvasRef.current;
    const box = boxRef.current;
    if (!canvas || !box) return;
    const shop = useShop.getState;
    const controller = new SeatMapController(canvas, geometry, event.id, {
      selectedSeats: () => shop().selected,
      toggle: (id, status) => shop().toggleSeat(id, status),
      taken: (ids) => shop().dropTaken(ids),
      announce: setAnnouncement,
      settled: setZoom,
    });
    controllerRef.current = controller;
    controller.setOwnership(...ownSeats(shop()));

    // The box's height follows the window's, but not the ~60 px a phone's URL bar takes and
    // gives back while the page scrolls (that would resize the canvas mid-scroll).
    let maxHeight = maxBoxHeight();
    let width = box.clientWidth;
    const fit = () => {
      const next = maxBoxHeight();
      if (box.clientWidth !== width || Math.abs(next - maxHeight) > 120) maxHeight = next;
      width = box.clientWidth;
      controller.resize(width, maxHeight);
    };
    // The box's width follows the page's column (minmax(0, 1fr): never held open by the
    // canvas), so a rotation or a narrower window reaches it and the map fits again.
    const resize = new ResizeObserver(fit);
    resize.observe(box);
    window.addEventListener('resize', fit);
    screen.orientation?.addEventListener('change', fit);
    fit();

    // The user's own seats live in the store: repaint the ones that entered or left a group,
    // and show the seats best available just held.
    const unwatch = useShop.subscribe((state, previous) => {
      if (state.selected !== previous.selected || state.hold !== previous.hold || state.bought !== previous.bought) {
        controller.setOwnership(...ownSeats(state));
      }
      if (state.reveal && state.reveal !== previous.reveal) controller.showSeats(state.reveal);
    });

    const subscription = live.subscribe(
      `/topic/events/${event.id}/seats`,
      (body) => {
        if (controller.onMessage(body)) subscription.resubscribe(); // a gap: fresh snapshot
        setIsLive(controller.state.phase === 'live');
      },
      {
        onSubscribe: () => {
          controller.onSubscribe();
          setIsLive(false);
        },
        headers: () => controller.subscribeHeaders(), // resume where the map was, if it was live
      },
    );
    const dpr = window.matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`);
    const onDpr = () => controller.refresh();
    dpr.addEventListener('change', onDpr);

    // Draw the REST snapshot at once; the topic's own snapshot replaces it when it arrives.
    let current = true;
    requestJson<SnapshotMessage>('GET', `/api/events/${event.id}/seats`).then(
      (snapshot) => current && controller.applyInitial(snapshot),
      () => undefined,
    );

    window.__concertHub = { ...window.__concertHub, seatMap: controller.probe() };
    return () => {
      current = false;
      subscription.unsubscribe();
      unwatch();
      resize.disconnect();
      window.removeEventListener('resize', fit);
      screen.orientation?.removeEventListener('change', fit);
      dpr.removeEventListener('change', onDpr);
      controller.destroy();
      controllerRef.current = null;
      if (window.__concertHub) delete window.__concertHub.seatMap;
    };
  }, [event.id, geometry]);

  const control = (action: (c: SeatMapController) => void) => () => {
    if (controllerRef.current) action(controllerRef.current);
  };

  return (
    <div className="seatmap">
      <div className="seatmap__toolbar">
        <div className="zoom" role="group" aria-label="Zoom">
          <button type="button" className="icon-button" aria-label="Zoom out" data-testid="zoom-out" onClick={control((c) => c.zoomOut())}>
            −
          </button>
          <span className="zoom__level" aria-live="polite" data-testid="zoom-level">
            {Math.round(zoom * 100)}%
          </span>
          <button type="button" className="icon-button" aria-label="Zoom in" data-testid="zoom-in" onClick={control((c) => c.zoomIn())}>
            +
          </button>
          <button type="button" className="button button--small" data-testid="zoom-all" onClick={control((c) => c.showAll())}>
            Whole map
          </button>
        </div>
        {geometry.sections.length > 1 && (
          <div className="sections" role="group" aria-label="Go to a section">
            {geometry.sections.map((section, s) => (
              <button key={section.name} type="button" className="chip" data-testid={`section-${section.name}`} onClick={control((c) => c.showSection(s))}>
                {sectionName(section.name)}
              </button>
            ))}
          </div>
        )}
      </div>
      {paused && (
        <p className="seatmap__stale" role="status">
          Live updates paused while reconnecting: seats may have changed since. The map refreshes itself once the connection is back.
        </p>
      )}
      <div className="seatmap__box" ref={boxRef}>
        <canvas
          ref={canvasRef}
          className="seatmap__canvas"
          data-testid="seat-map"
          tabIndex={0}
          role="application"
          aria-roledescription="seat map"
          aria-label={`Seat map of ${event.name}, ${geometry.count.toLocaleString('en')} seats. Arrow keys move between seats, Enter or Space selects, plus and minus zoom.`}
          aria-describedby="seatmap-help"
          aria-busy={!isLive}
        />
      </div>
      <ul className="legend" aria-label="Legend">
        {event.tiers.map((tier, i) => (
          <li key={tier.id}>
            <span className="swatch" style={{ background: tierColour(i) }} aria-hidden="true" />
            {tier.name} {money(tier.price_cents, tier.currency)}
          </li>
        ))}
        {legend(hasOwnTickets).map(([colour, label, mine]) => (
          <li key={label}>
            <span className={mine ? 'swatch swatch--mine' : 'swatch'} style={{ background: colour }} aria-hidden="true" />
            {label}
          </li>
        ))}
      </ul>
      <p id="seatmap-help" className="seatmap__help muted">
        Tap or click a seat to pick it; drag to move the map, pinch or use + and − to zoom, tap a section to zoom to it. With a keyboard: focus the map, arrow keys move between seats, Enter or Space picks, + and − zoom, 0 goes back.
      </p>
      <div className="visually-hidden" aria-live="polite" aria-atomic="true" data-testid="seat-announcer">
        {announcement}
      </div>
    </div>
  );
}
