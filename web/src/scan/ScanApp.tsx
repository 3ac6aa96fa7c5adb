// The door scanner (/scan): camera QR scanning (the browser's BarcodeDetector where it reads QR
// codes, else jsQR), a big green or red answer with its reason, a beep and a buzz, manual entry,
// and offline scanning from the cached check-in list with a queue that syncs when back online.

import jsQR from 'jsqr';
import { useCallback, useEffect, useRef, useState } from 'react';

import { seatIdName } from '../shared/format';
import { ApiError, describeError, isNetworkError, requestJson } from '../shared/http';
import { load, save } from '../shared/storage';
import { type CameraProblem, cameraProblem, cameraProblemText, cameraUnavailable, canRetry } from './camera';
import { type CheckInList, type Reason, reasonText, ticketId, verifyExitOffline, verifyOffline } from './codes';
import { SignOut, TokenInput } from './SignOut';
import * as store from './store';
import { eventFor, isTokenRefused, readClaims, tokenInHash } from './token';

interface ScanAnswer {
  result: Reason;
  admitted: boolean;
  seat_id?: string | null;
  tier?: string | null;
  used_gate?: string | null;
  used_at?: string | null;
}

/**
 * One scan at the server: 200 with the answer when admitted (or let out); a refusal is a 409 or
 * 404 problem (SPEC §5) carrying the same fields, shown like any other answer.
 */
async function scanOnline(token: string, body: { code: string; event_id: number; direction: 'in' | 'out' }): Promise<ScanAnswer> {
  try {
    return await requestJson<ScanAnswer>('POST', '/api/checkin', { token, body, timeoutMs: 4000 });
  } catch (caught) {
    const refused = caught instanceof ApiError && (caught.status === 409 || caught.status === 404) ? (caught.problem as Partial<ScanAnswer>) : null;
    if (refused?.result) return refused as ScanAnswer;
    throw caught;
  }
}

interface Shown {
  reason: Reason;
  seat?: string | null;
  tier?: string | null;
  usedGate?: string | null;
  usedAt?: string | null;
  offline: boolean;
  at: number;
}

interface SyncAnswer {
  admitted: number;
  conflicts: number;
  void: number;
  results: { ticket_id: string; outcome: string }[];
}

interface Queued {
  code: string;
  at: string;
  ticketId: string;
  /** The seat the code names (for telling the door staff about it later). */
  seat?: string;
  /** An exit scan (re-entry events). */
  direction?: 'out';
}

/** The same code is read again only after it was out of view this long. */
const SAME_CODE_PAUSE_MS = 1500;
const SYNC_EVERY_MS = 5000;
const LIST_EVERY_MS = 60_000;
const FRAME_EVERY_MS = 150;
const TOKEN_REFUSED = 'This scanner’s token is no longer valid (expired or revoked): ask for a new one.';

/** The token of a link opened as `/scan#token=…`, taken out of the address bar (and the
 *  history) at once. */
function tokenFromHash(): string | null {
  const { hash } = window.location;
  if (!/token=/.test(hash)) return null;
  history.replaceState(null, '', window.location.pathname);
  return tokenInHash(hash);
}

function feedback(admitted: boolean): void {
  navigator.vibrate?.(admitted ? 120 : [120, 60, 120]);
  try {
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    tone.frequency.value = admitted ? 880 : 220;
    tone.connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + (admitted ? 0.12 : 0.35));
    tone.onended = () => void audio.close();
  } catch {
    // no audio (autoplay policy before a gesture): the colour and the buzz remain
  }
}

/** The camera: asking for it, reading frames (with which decoder), or why there is none. */
type Camera = { state: 'starting' } | { state: 'scanning'; decoder: 'BarcodeDetector' | 'jsQR' } | { state: 'failed'; problem: CameraProblem };

type Detector = { detect(source: CanvasImageSource): Promise<{ rawValue: string }[]> };

async function qrDetector(): Promise<Detector | null> {
  const Native = (window as unknown as { BarcodeDetector?: { new (o: { formats: string[] }): Detector; getSupportedFormats(): Promise<string[]> } }).BarcodeDetector;
  if (!Native) return null;
  try {
    return (await Native.getSupportedFormats()).includes('qr_code') ? new Native({ formats: ['qr_code'] }) : null;
  } catch {
    return null;
  }
}

export function ScanApp() {
  const [token, setToken] = useState<string | null>(() => {
    const fresh = tokenFromHash();
    if (fresh) save('scan.token', fresh);
    return fresh ?? load<string>('scan.token');
  });
  const claims = token ? readClaims(token) : { gate: null, eventId: null };
  const [eventId, setEventId] = useState<number | null>(() => eventFor(token, load<number>('scan.event')));
  const [list, setList] = useState<CheckInList | null>(null);
  const [queue, setQueue] = useState<Queued[]>([]);
  const [online, setOnline] = useState(navigator.onLine);
  const [shown, setShown] = useState<Shown | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  /** The token the server refused (401): the page offers to enter another, and sends nothing
   *  with this one again (the ref, for the timers). An answer to an earlier token's request
   *  does not mark a newer token refused. */
  const [refusedToken, setRefusedToken] = useState<string | null>(null);
  const refusedRef = useRef<string | null>(null);
  const tokenRefused = token !== null && refusedToken === token;
  const [camera, setCamera] = useState<Camera>({ state: 'starting' });
  /** Bumped by "Try camera again": the camera is asked for anew. */
  const [cameraTry, setCameraTry] = useState(0);
  const [manual, setManual] = useState('');
  const usedHere = useRef(new Set<string>());
  const leftHere = useRef(new Set<string>());
  const [exitMode, setExitMode] = useState(false);
  const exitRef = useRef(false);
  const queueRef = useRef<Queued[]>([]);
  const listRef = useRef<CheckInList | null>(null);
  const videoRef = useRef<HTMLVideoElement>(null);
  const syncing = useRef(false);

  /** Drop what the page holds for the event it scans (its list, queue, what it let in, the
   *  answer shown); IndexedDB keeps the list and the queue. */
  const forgetEvent = () => {
    listRef.current = null;
    queueRef.current = [];
    usedHere.current.clear();
    leftHere.current.clear();
    setList(null);
    setQueue([]);
    setShown(null);
    setError(null);
    setNotice(null);
  };

  /** Forget the event (a mistyped id, the next night's show) and ask for it again. The offline
   *  queue is kept per event in IndexedDB, so scans not yet uploaded are not lost: they sync
   *  when this event is chosen again. */
  const changeEvent = () => {
    save('scan.event', null);
    forgetEvent();
    setEventId(null);
  };

  /** Forget the token (expired, revoked, or for another gate) and the event, and ask for a new
   *  one: without this only clearing the site's data would get a door scanner out of it. */
  const signOut = () => {
    save('scan.token', null);
    changeEvent();
    refusedRef.current = null;
    setRefusedToken(null);
    setToken(null);
  };

  /** A new token (pasted after "Sign out" or a refusal): a bound one decides the event. Scans
   *  still queued for that event were kept (IndexedDB) and upload with this token. */
  const signIn = (value: string) => {
    save('scan.token', value);
    refusedRef.current = null;
    setRefusedToken(null);
    setError(null);
    setToken(value);
    setEventId(eventFor(value, load<number>('scan.event')));
  };

  /** Another token while this one is in use (typed in "Sign out", or a new `#token=` link opened
   *  on the open page): signed in as at start, the event's state dropped if the event changes
   *  (a bound token decides it), so nothing queued for one event uploads to another. */
  const switchToken = (value: string) => {
    if (value === token && refusedToken !== token) return;
    if (eventFor(value, load<number>('scan.event')) !== eventId) forgetEvent();
    signIn(value);
  };
  const switchRef = useRef(switchToken);
  useEffect(() => {
    switchRef.current = switchToken;
  });

  // A scanner link opened on a page already open (`/scan#token=…`): only the hash changes.
  useEffect(() => {
    const opened = () => {
      const fresh = tokenFromHash();
      if (fresh) switchRef.current(fresh);
    };
    window.addEventListener('hashchange', opened);
    return () => window.removeEventListener('hashchange', opened);
  }, []);

  /** A 401 from any request made with `used` (scan, list, sync): that token is no longer good.
   *  Queued scans stay queued; the page stops sending and offers to enter a new token. False
   *  for other errors. */
  const refused = useCallback((caught: unknown, used: string): boolean => {
    if (!isTokenRefused(caught)) return false;
    refusedRef.current = used;
    setRefusedToken(used);
    return true;
  }, []);

  const setQueued = useCallback(
    (next: Queued[]) => {
      queueRef.current = next;
      setQueue(next);
      if (eventId !== null) void store.put(`queue:${eventId}`, next);
    },
    [eventId],
  );

  const refreshList = useCallback(async () => {
    if (!token || eventId === null || refusedRef.current === token) return;
    try {
      const fresh = await requestJson<CheckInList>('GET', `/api/checkin/events/${eventId}/list`, { token, timeoutMs: 10_000 });
      listRef.current = fresh;
      setList(fresh);
      setOnline(true);
      // the fresh list knows every entry and exit uploaded: keep only what is still queued
      const queued = new Set(queueRef.current.map((q) => q.ticketId));
      for (const seen of [usedHere.current, leftHere.current]) for (const id of [...seen]) if (!queued.has(id)) seen.delete(id);
      await store.put(`list:${eventId}`, fresh);
    } catch (caught) {
      if (isNetworkError(caught)) {
        setOnline(false);
        const cached = await store.get<CheckInList>(`list:${eventId}`);
        if (cached) {
          listRef.current = cached;
          setList(cached);
        }
      } else if (!refused(caught, token)) setError(describeError(caught));
    }
  }, [token, eventId, refused]);

  const sync = useCallback(async () => {
    const pending = queueRef.current;
    if (!token || eventId === null || pending.length === 0 || syncing.current || refusedRef.current === token || !navigator.onLine) return;
    syncing.current = true;
    try {
      const batch = pending.slice(0, 2000);
      const answer = await requestJson<SyncAnswer>('POST', `/api/checkin/events/${eventId}/sync`, {
        token,
        body: { redemptions: batch.map((q) => (q.direction ? { code: q.code, at: q.at, direction: q.direction } : { code: q.code, at: q.at })) },
        timeoutMs: 15_000,
      });
      const sent = new Set(batch.map((q) => q.ticketId + q.at));
      setQueued(queueRef.current.filter((q) => !sent.has(q.ticketId + q.at)));
      if (answer.void > 0) {
        // let in offline, but void meanwhile (order cancelled, or its tickets reissued): not counted
        const seats = batch.filter((q) => answer.results.some((r) => r.ticket_id === q.ticketId && r.outcome === 'void'));
        setNotice(
          `${answer.void} ticket${answer.void === 1 ? '' : 's'} let in offline ${answer.void === 1 ? 'was' : 'were'} void ` +
            `(order cancelled or ticket reissued), not counted${seats.length ? `: seat ${seats.map((q) => q.seat ?? q.ticketId).join(', ')}` : ''}`,
        );
      }
      setOnline(true);
      await refreshList();
    } catch (caught) {
      if (isNetworkError(caught)) setOnline(false);
      else if (!refused(caught, token)) setError(describeError(caught));
    } finally {
      syncing.current = false;
    }
  }, [token, eventId, refreshList, refused, setQueued]);

  // start: the cached queue and list, then a fresh list, and what is queued goes up at once
  useEffect(() => {
    if (eventId === null) return;
    void (async () => {
      const saved = await store.get<Queued[]>(`queue:${eventId}`);
      if (saved) {
        queueRef.current = saved;
        setQueue(saved);
        for (const q of saved) {
          if (q.direction === 'out') {
            usedHere.current.delete(q.ticketId);
            leftHere.current.add(q.ticketId);
          } else {
            usedHere.current.add(q.ticketId);
            leftHere.current.delete(q.ticketId);
          }
        }
      }
      const cached = await store.get<CheckInList>(`list:${eventId}`);
      if (cached && listRef.current === null) {
        listRef.current = cached;
        setList(cached);
      }
      await refreshList();
      await sync();
    })();
  }, [eventId, refreshList, sync]);

  useEffect(() => {
    const up = () => {
      setOnline(true);
      void sync();
    };
    const down = () => setOnline(false);
    window.addEventListener('online', up);
    window.addEventListener('offline', down);
    const timer = setInterval(() => void sync(), SYNC_EVERY_MS);
    // tickets sold and orders cancelled since: a fresh list while the network is there
    const refresh = setInterval(() => {
      if (navigator.onLine && queueRef.current.length === 0) void refreshList();
    }, LIST_EVERY_MS);
    return () => {
      window.removeEventListener('online', up);
      window.removeEventListener('offline', down);
      clearInterval(timer);
      clearInterval(refresh);
    };
  }, [sync, refreshList]);

  const show = useCallback((next: Omit<Shown, 'at'>) => {
    setShown({ ...next, at: Date.now() });
    feedback(next.reason === 'admitted' || next.reason === 'exited');
  }, []);

  const offlineScan = useCallback(
    async (code: string) => {
      const cached = listRef.current;
      if (cached === null || eventId === null) {
        setError('Offline and no check-in list cached: connect once to download it.');
        return;
      }
      const exit = exitRef.current && cached.reentry;
      const verdict = exit
        ? await verifyExitOffline(code, eventId, cached, usedHere.current, leftHere.current)
        : await verifyOffline(code, eventId, cached, usedHere.current, leftHere.current);
      const queued: Queued = { code, at: new Date().toISOString(), ticketId: verdict.ticketId, seat: verdict.seatId };
      if (verdict.reason === 'admitted') {
        usedHere.current.add(verdict.ticketId);
        leftHere.current.delete(verdict.ticketId);
        setQueued([...queueRef.current, queued]);
      } else if (verdict.reason === 'exited') {
        usedHere.current.delete(verdict.ticketId);
        leftHere.current.add(verdict.ticketId);
        setQueued([...queueRef.current, { ...queued, direction: 'out' }]);
      }
      show({ reason: verdict.reason, seat: verdict.seatId, offline: true });
    },
    [eventId, setQueued, show],
  );

  const handle = useCallback(
    async (code: string) => {
      setError(null);
      if (!token || eventId === null) return;
      if (!navigator.onLine) {
        setOnline(false);
        await offlineScan(code);
        return;
      }
      try {
        const direction = exitRef.current && listRef.current?.reentry ? 'out' : 'in';
        const answer = await scanOnline(token, { code, event_id: eventId, direction });
        setOnline(true);
        // what this scanner saw online, for answering offline until the next fresh list
        const id = await ticketId(code);
        if (answer.result === 'admitted') {
          usedHere.current.add(id);
          leftHere.current.delete(id);
        } else if (answer.result === 'exited') {
          usedHere.current.delete(id);
          leftHere.current.add(id);
        }
        show({ reason: answer.result, seat: answer.seat_id, tier: answer.tier, usedGate: answer.used_gate, usedAt: answer.used_at, offline: false });
        void sync();
      } catch (caught) {
        if (isNetworkError(caught)) {
          setOnline(false);
          await offlineScan(code);
        } else if (!refused(caught, token)) setError(describeError(caught));
      }
    },
    [token, eventId, offlineScan, refused, show, sync],
  );

  // the camera: frames to the detector, each new code once while it stays in view
  useEffect(() => {
    if (!token || eventId === null) return;
    let stream: MediaStream | null = null;
    let timer: ReturnType<typeof setInterval> | null = null;
    let last: { code: string; seen: number } | null = null;
    let busy = false;
    let stopped = false;
    const canvas = document.createElement('canvas');
    const context = canvas.getContext('2d', { willReadFrequently: true });
    void (async () => {
      // http (not a secure context) or an old browser: no getUserMedia at all
      if (!navigator.mediaDevices?.getUserMedia) {
        setCamera({ state: 'failed', problem: cameraUnavailable(window.isSecureContext) });
        return;
      }
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
      } catch (caught) {
        if (!stopped) setCamera({ state: 'failed', problem: cameraProblem(caught) });
        return;
      }
      const video = videoRef.current;
      // cleaned up while the browser was asking (another try, another token): let it go
      if (stopped || !video) {
        stream.getTracks().forEach((t) => t.stop());
        return;
      }
      video.srcObject = stream;
      await video.play().catch(() => undefined);
      const detector = await qrDetector();
      if (stopped) return;
      setCamera({ state: 'scanning', decoder: detector ? 'BarcodeDetector' : 'jsQR' });
      timer = setInterval(async () => {
        if (busy || video.readyState < 2 || !context) return;
        busy = true;
        try {
          let code: string | null = null;
          if (detector) {
            const found = await detector.detect(video);
            code = found[0]?.rawValue ?? null;
          } else {
            canvas.width = video.videoWidth;
            canvas.height = video.videoHeight;
            context.drawImage(video, 0, 0);
            const image = context.getImageData(0, 0, canvas.width, canvas.height);
            code = jsQR(image.data, image.width, image.height, { inversionAttempts: 'dontInvert' })?.data ?? null;
          }
          const now = Date.now();
          if (code) {
            const fresh = last === null || last.code !== code || now - last.seen > SAME_CODE_PAUSE_MS;
            last = { code, seen: now };
            if (fresh) await handle(code);
          }
        } finally {
          busy = false;
        }
      }, FRAME_EVERY_MS);
    })();
    return () => {
      stopped = true;
      if (timer) clearInterval(timer);
      stream?.getTracks().forEach((t) => t.stop());
    };
  }, [token, eventId, handle, cameraTry]);

  const retryCamera = () => {
    setCamera({ state: 'starting' });
    setCameraTry((n) => n + 1);
  };

  if (!token) {
    return (
      <main className="scan-setup">
        <h1>Door scanner</h1>
        <p>Paste the scanner token an admin minted for this device (or open the link they sent).</p>
        <form
          className="scan-setup__form"
          onSubmit={(e) => {
            e.preventDefault();
            const value = (new FormData(e.currentTarget).get('token') as string).trim();
            if (value) signIn(value);
          }}
        >
          <label className="scan-field">
            <span className="scan-field__label">Scanner token</span>
            <TokenInput />
          </label>
          <button type="submit" className="scan-button scan-button--primary">
            Start
          </button>
        </form>
      </main>
    );
  }

  if (eventId === null) {
    return (
      <main className="scan-setup">
        <h1>Door scanner{claims.gate ? ` — ${claims.gate}` : ''}</h1>
        <form
          className="scan-setup__form"
          onSubmit={(e) => {
            e.preventDefault();
            const value = Number(new FormData(e.currentTarget).get('event'));
            if (Number.isInteger(value) && value > 0) {
              save('scan.event', value);
              setEventId(value);
            }
          }}
        >
          <label className="scan-field">
            <span className="scan-field__label">Event id</span>
            <input name="event" className="scan-input" inputMode="numeric" autoComplete="off" enterKeyHint="go" data-testid="scan-event" />
          </label>
          <button type="submit" className="scan-button scan-button--primary">
            Start
          </button>
        </form>
        <div className="scan-device">
          <SignOut label="Use another token" refused={tokenRefused} queued={0} onSignOut={signOut} onToken={switchToken} />
        </div>
      </main>
    );
  }

  const good = shown !== null && (shown.reason === 'admitted' || shown.reason === 'exited');
  /** Why there is no camera (null: there is one, or the browser is still asking). */
  const noCamera = camera.state === 'failed' ? camera.problem : null;
  const manualEntry = (
    <form
      className="scan-manual"
      onSubmit={(e) => {
        e.preventDefault();
        const code = manual.trim();
        if (code) void handle(code);
        setManual('');
      }}
    >
      {/* Codes are case-sensitive base64url: the phone's keyboard must not touch them. */}
      <input
        className="scan-input"
        value={manual}
        onChange={(e) => setManual(e.target.value)}
        placeholder="Ticket code"
        aria-label="Ticket code"
        autoComplete="off"
        autoCapitalize="off"
        autoCorrect="off"
        spellCheck={false}
        enterKeyHint="go"
        data-testid="manual-code"
      />
      <button type="submit" className="scan-button scan-button--primary" data-testid="manual-submit">
        Check
      </button>
    </form>
  );
  return (
    <main className={`scan${noCamera ? ' scan--no-camera' : ''}`}>
      <header className="scan-bar">
        {/* The page's h1 (every page has one, for those who move by headings), kept bar-sized. */}
        <h1 className="scan-bar__title">
          {claims.gate ? `Gate ${claims.gate}` : 'No gate'} · event {eventId}
        </h1>
        {/* A token bound to one event (claim `evt`) decides it: nothing to change then. */}
        {claims.eventId === null && (
          <button type="button" className="scan-button scan-button--small" onClick={changeEvent} data-testid="scan-change-event">
            Change event
          </button>
        )}
        <span className="scan-bar__facts">
          <span data-testid="scan-status" className={online ? 'scan-online' : 'scan-offline'}>
            {online ? 'Online' : 'Offline'}
          </span>
          <span>
            Queued: <span data-testid="scan-queued">{queue.length}</span>
          </span>
          <span data-testid="scan-list">{list ? `${list.valid.length} tickets cached` : 'no list yet'}</span>
        </span>
        {list?.reentry && (
          <label className="scan-toggle">
            <input
              type="checkbox"
              checked={exitMode}
              data-testid="scan-exit"
              onChange={(e) => {
                exitRef.current = e.target.checked;
                setExitMode(e.target.checked);
              }}
            />{' '}
            Exit scans
          </label>
        )}
      </header>
      <div className="scan-view">
        {/* Always in the page (hidden without a camera), so that another try has it to fill. */}
        <video ref={videoRef} className="scan-video" muted playsInline hidden={noCamera !== null} data-testid="scan-video" />
        {noCamera === null && (
          <p className="scan-camera" data-testid="scan-camera">
            Camera: {camera.state === 'scanning' ? `scanning (${camera.decoder})` : 'starting…'}
          </p>
        )}
        <div className="scan-answer">
          {/* Without a camera, typing is how codes come in: the box comes first. */}
          {noCamera && manualEntry}
          <section
            className={`scan-result ${shown === null ? '' : good ? 'scan-good' : 'scan-bad'}`}
            data-testid="scan-result"
            data-reason={shown?.reason ?? ''}
            aria-live="assertive"
          >
            {shown === null ? (
              <span>{noCamera ? 'Type a ticket’s code and tap Check' : 'Point the camera at a ticket’s QR code'}</span>
            ) : (
              <>
                <span className="scan-word">{reasonText(shown.reason)}</span>
                {shown.seat && (
                  <span>
                    {seatIdName(shown.seat)}
                    {shown.tier ? ` · ${shown.tier}` : ''}
                  </span>
                )}
                {shown.reason === 'already_used' && shown.usedGate && (
                  <span>
                    at {shown.usedGate}
                    {shown.usedAt ? `, ${new Date(shown.usedAt).toLocaleTimeString()}` : ''}
                  </span>
                )}
                {shown.offline && <span>(checked offline)</span>}
              </>
            )}
          </section>
          {tokenRefused ? (
            <p role="alert" className="scan-alert" data-testid="scan-error">
              {TOKEN_REFUSED}
              {queue.length > 0 && ` ${queue.length} scan${queue.length === 1 ? '' : 's'} made offline ${queue.length === 1 ? 'is' : 'are'} kept: they upload once a new token is entered.`}
              {error && ` ${error}`}{' '}
              <button type="button" className="scan-button scan-button--small" onClick={signOut} data-testid="scan-new-token">
                Enter a new token
              </button>
            </p>
          ) : (
            error && (
              <p role="alert" className="scan-alert" data-testid="scan-error">
                {error}
              </p>
            )
          )}
          {notice && (
            <p role="status" className="scan-notice" data-testid="scan-notice">
              {notice}{' '}
              <button type="button" className="scan-button scan-button--small" onClick={() => setNotice(null)}>
                OK
              </button>
            </p>
          )}
          {!noCamera && manualEntry}
        </div>
        {noCamera && (
          <div className="scan-camera-problem">
            <p role="status" data-testid="scan-camera">
              {cameraProblemText(noCamera)}
            </p>
            {canRetry(noCamera) && (
              <button type="button" className="scan-button" onClick={retryCamera} data-testid="scan-camera-retry">
                Try camera again
              </button>
            )}
          </div>
        )}
      </div>
      {/* Away from "Change event" and the answers, and it asks first. */}
      <div className="scan-device">
        <SignOut label="Sign out" refused={tokenRefused} queued={queue.length} onSignOut={signOut} onToken={switchToken} />
      </div>
    </main>
  );
}
