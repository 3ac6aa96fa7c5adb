import { useEffect, useMemo, useRef, useState } from 'react';

import { money } from '../../shared/format';
import { requestJson } from '../../shared/http';
import type { EventDetail } from '../../shared/types';
import { SeatMapController, type SeatMapProbe } from '../../seatmap/controller';
import { buildGeometry } from '../../seatmap/geometry';
import { COLOURS, tierColour } from '../../seatmap/renderer';
import type { SnapshotMessage } from '../../seatmap/state';
import { live, useConnection } from '../live';
import { useShop } from '../shop';

declare global {
  interface Window {
    /** Hooks for end-to-end tests (Playwright); harmless for everyone else. */
    __concertHub?: { seatMap?: SeatMapProbe };
  }
}

const ZOOMS = [1, 1.5, 2, 3, 4];

/** The live seat map: a canvas fed by /topic/events/{id}/seats, plus legend and zoom. */
export function SeatMapView({ event }: { event: EventDetail }) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const scrollerRef = useRef<HTMLDivElement>(null);
  const controllerRef = useRef<SeatMapController | null>(null);
  const [announcement, setAnnouncement] = useState('');
  const [zoom, setZoom] = useState(1);
  const [isLive, setIsLive] = useState(false);
  // Only once the map was live: the first connect is not "paused".
  const paused = useConnection((s) => s.everConnected && s.state !== 'connected');
  const geometry = useMemo(() => buildGeometry(event.layout, event.tiers), [event]);

  useEffect(() => {
    const canvas = canvasRef.current;
    const scroller = scrollerRef.current;
    if (!canvas || !scroller) return;
    const shop = useShop.getState;
    const controller = new SeatMapController(canvas, geometry, event.id, {
      isPicked: (id) => shop().selected.includes(id) || (shop().hold?.seats.includes(id) ?? false),
      selectedSeats: () => shop().selected,
      toggle: (id, status) => shop().toggleSeat(id, status),
      taken: (ids) => shop().dropTaken(ids),
      announce: setAnnouncement,
    });
    controllerRef.current = controller;

    const resize = new ResizeObserver(() => controller.resize(scroller.clientWidth));
    resize.observe(scroller);
    controller.resize(scroller.clientWidth);

    // The selection and the hold live in the store: repaint the seats that entered or left them.
    const unwatch = useShop.subscribe((state, previous) => {
      if (state.selected === previous.selected && state.hold === previous.hold) return;
      const changed = new Set([...state.selected, ...previous.selected, ...(state.hold?.seats ?? []), ...(previous.hold?.seats ?? [])]);
      controller.repaint(changed);
    });

    const subscription = live.subscribe(
      `/topic/events/${event.id}/seats`,
      (body) => {
        if (controller.onMessage(body)) subscription.resubscribe(); // a gap: fresh snapshot
        setIsLive(controller.state.phase === 'live');
      },
      { onSubscribe: () => controller.onSubscribe() },
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
      dpr.removeEventListener('change', onDpr);
      controller.destroy();
      controllerRef.current = null;
      if (window.__concertHub) delete window.__concertHub.seatMap;
    };
  }, [event.id, geometry]);

  const changeZoom = (next: number) => {
    setZoom(next);
    controllerRef.current?.setZoom(next);
  };
  const zoomIndex = ZOOMS.indexOf(zoom);

  return (
    <div className="seatmap">
      <div className="seatmap__toolbar">
        <ul className="legend" aria-label="Legend">
          {event.tiers.map((tier, i) => (
            <li key={tier.id}>
              <span className="swatch" style={{ background: tierColour(i) }} aria-hidden="true" />
              {tier.name} {money(tier.price_cents, tier.currency)}
            </li>
          ))}
          <li>
            <span className="swatch swatch--picked" style={{ background: COLOURS.selected }} aria-hidden="true" />
            Your pick
          </li>
          <li>
            <span className="swatch" style={{ background: COLOURS.held }} aria-hidden="true" />
            Held
          </li>
          <li>
            <span className="swatch" style={{ background: COLOURS.sold }} aria-hidden="true" />
            Sold
          </li>
          <li>
            <span className="swatch" style={{ background: COLOURS.blocked }} aria-hidden="true" />
            Blocked
          </li>
        </ul>
        <div className="zoom" role="group" aria-label="Zoom">
          <button type="button" className="icon-button" aria-label="Zoom out" disabled={zoomIndex <= 0} onClick={() => changeZoom(ZOOMS[zoomIndex - 1] ?? 1)}>
            −
          </button>
          <span className="zoom__level" aria-live="polite">{Math.round(zoom * 100)}%</span>
          <button type="button" className="icon-button" aria-label="Zoom in" disabled={zoomIndex >= ZOOMS.length - 1} onClick={() => changeZoom(ZOOMS[zoomIndex + 1] ?? zoom)}>
            +
          </button>
        </div>
      </div>
      {paused && (
        <p className="seatmap__stale" role="status">
          Live updates paused while reconnecting: seats may have changed since. The map refreshes itself once the connection is back.
        </p>
      )}
      <div className="seatmap__scroller" ref={scrollerRef}>
        <canvas
          ref={canvasRef}
          className="seatmap__canvas"
          data-testid="seat-map"
          tabIndex={0}
          role="application"
          aria-roledescription="seat map"
          aria-label={`Seat map of ${event.name}, ${geometry.count.toLocaleString('en')} seats. Arrow keys move between seats, Enter or Space selects.`}
          aria-describedby="seatmap-help"
          aria-busy={!isLive}
        />
      </div>
      <p id="seatmap-help" className="seatmap__help muted">
        Click a seat, or focus the map and use the arrow keys, then Enter or Space to select.
      </p>
      <div className="visually-hidden" aria-live="polite" aria-atomic="true" data-testid="seat-announcer">
        {announcement}
      </div>
    </div>
  );
}
