// The live connection: one @stomp/stompjs Client over /ws for the whole page.
//
// stompjs reconnects by itself (here with exponential backoff) but forgets subscriptions when a
// connection drops, so this module keeps the set of wanted subscriptions and subscribes all of
// them again on every (re)connect. Each subscription may ask to hear about that moment
// (`onSubscribe`), which is how the seat map knows to wait for a fresh snapshot, and may
// `resubscribe()` itself, which is how it recovers from a gap in the deltas.
//
// What the page says about the connection comes from status.ts. Three things feed it besides
// the socket's own open and close: the server's heart-beats (we ask for them, and a watchdog
// drops a connection that stays silent for 1.5 negotiated intervals: a network that silently
// stopped forwarding shows as "reconnecting" within 2 intervals, not after stompjs's own 2–3),
// the browser's online/offline events, and REST calls that got no answer (`requestFailed`).
import { Client, ReconnectionTimeMode, type IMessage, type IStompSocket, type StompSubscription } from '@stomp/stompjs';

import {
  incomingInterval,
  INITIAL_STATUS,
  mustReconnect,
  nextStatus,
  silenceCheckMs,
  silenceLimitMs,
  type ConnectionState,
  type LiveStatus,
  type StatusSignal,
} from './status';

export type { ConnectionState, LiveStatus } from './status';

/**
 * The heart-beat interval we ask the server for (STOMP `cy`). The interval used is the larger of
 * this and the server's offer (`--heartbeat-ms`, 10 s by default), so asking for little lets the
 * operator's setting decide; a test node with a short offer gets short beats.
 */
export const HEARTBEAT_INCOMING_MS = 1_000;
export const HEARTBEAT_OUTGOING_MS = 10_000;

export interface LiveSubscription {
  /** UNSUBSCRIBE and SUBSCRIBE again (a fresh snapshot for the seat map). */
  resubscribe(): void;
  unsubscribe(): void;
}

export interface SubscribeOptions {
  /** Called right before each SUBSCRIBE frame, including the ones after a reconnect. */
  onSubscribe?: () => void;
  /** Only for authenticated sessions (`/user/...`): skipped while connected anonymously. */
  needsAuth?: boolean;
  /** Extra SUBSCRIBE headers, asked right after `onSubscribe` (the seat map's `resume-seq`). */
  headers?: () => Record<string, string>;
}

export interface LiveOptions {
  /** ws(s)://host/ws by default, next to the page. */
  url?: string;
  /** The STOMP passcode (a token) for the next CONNECT, or null to connect anonymously. */
  credentials: () => Promise<string | null>;
  /** The server refused `passcode` ("authentication failed"): forget it before the retry. */
  onAuthFailed?: (passcode: string) => void;
}

interface Entry {
  key: number;
  destination: string;
  onMessage: (body: string, message: IMessage) => void;
  options: SubscribeOptions;
  active: StompSubscription | null;
}

export function defaultUrl(location: Location = window.location): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

export class LiveConnection {
  private readonly client: Client;
  private readonly entries = new Map<number, Entry>();
  private readonly listeners = new Set<(status: LiveStatus) => void>();
  private _status: LiveStatus = INITIAL_STATUS;
  private passcode: string | null = null;
  private nextKey = 1;
  private nextId = 1;
  private credentialsTimer = 0;
  /** The socket of the current attempt, and when a byte last arrived on it (performance.now). */
  private socket: WebSocket | null = null;
  private lastActivity = 0;
  private watchdog = 0;
  private stopped = false;
  private readonly url: string;

  constructor(private readonly options: LiveOptions) {
    this.url = options.url ?? defaultUrl();
    this.client = new Client({
      webSocketFactory: () => this.openSocket(),
      // Backoff: 0.5 s, 1 s, 2 s … capped at 15 s; reset by a successful CONNECTED.
      reconnectDelay: 500,
      maxReconnectDelay: 15_000,
      reconnectTimeMode: ReconnectionTimeMode.EXPONENTIAL,
      connectionTimeout: 10_000,
      heartbeatIncoming: HEARTBEAT_INCOMING_MS,
      heartbeatOutgoing: HEARTBEAT_OUTGOING_MS,
      // A connection given up on is dropped at once (its close event is not awaited: on a
      // network that stopped forwarding it would not come for a long time).
      discardWebsocketOnCommFailure: true,
      beforeConnect: async (client) => {
        this.signal('start');
        try {
          this.passcode = await this.options.credentials();
        } catch {
          this.passcode = null; // no identity yet (server unreachable?): public topics only
        }
        client.connectHeaders = this.passcode ? { login: 'concert-hub-web', passcode: this.passcode } : {};
      },
      onConnect: (frame) => {
        this.watch(incomingInterval(frame.headers['heart-beat'], HEARTBEAT_INCOMING_MS));
        this.signal('connected');
        for (const entry of this.entries.values()) this.attach(entry);
        if (this.passcode === null) this.retryCredentials();
      },
      onWebSocketClose: () => {
        this.watch(0);
        this.socket = null;
        for (const entry of this.entries.values()) entry.active = null;
        this.signal('closed');
      },
      onStompError: (frame) => {
        if (frame.headers.message === 'authentication failed' && this.passcode) {
          this.options.onAuthFailed?.(this.passcode);
        }
      },
    });
    if (typeof window !== 'undefined') {
      window.addEventListener('offline', () => this.signal('browser-offline'));
      window.addEventListener('online', () => {
        this.signal('browser-online');
        this.reconnectNow();
      });
      if (navigator.onLine === false) this.signal('browser-offline');
    }
  }

  get status(): LiveStatus {
    return this._status;
  }

  get state(): ConnectionState {
    return this._status.state;
  }

  /** Whether the current session carries credentials (so `/user/...` may be subscribed). */
  get authenticated(): boolean {
    return this._status.state === 'connected' && this.passcode !== null;
  }

  start(): void {
    if (this.client.active) return;
    this.stopped = false;
    this.signal('start'); // at once: the first CONNECT is under way, not "disconnected"
    this.client.activate();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch(0);
    await this.client.deactivate();
    this.signal('stopped');
  }

  onStatus(listener: (status: LiveStatus) => void): () => void {
    this.listeners.add(listener);
    listener(this._status);
    return () => this.listeners.delete(listener);
  }

  /**
   * A REST call got no answer at all (a network error or a timeout). If the page believed it
   * was live, it no longer does: the badge says so and the connection is made again, which
   * either proves the server reachable (back to "connected") or keeps saying it is not.
   */
  requestFailed(): void {
    this.signal('request-failed');
  }

  subscribe(
    destination: string,
    onMessage: (body: string, message: IMessage) => void,
    options: SubscribeOptions = {},
  ): LiveSubscription {
    const entry: Entry = { key: this.nextKey++, destination, onMessage, options, active: null };
    this.entries.set(entry.key, entry);
    if (this.client.connected) this.attach(entry);
    return {
      resubscribe: () => {
        if (!this.entries.has(entry.key)) return;
        this.detach(entry);
        if (this.client.connected) this.attach(entry);
      },
      unsubscribe: () => {
        this.detach(entry);
        this.entries.delete(entry.key);
      },
    };
  }

  /**
   * Connected anonymously (no identity could be had, e.g. the guest endpoint was rate limited):
   * try again a little later and, with an identity in hand, reconnect with it so the
   * `/user/...` subscriptions can be made.
   */
  private retryCredentials(): void {
    window.clearTimeout(this.credentialsTimer);
    this.credentialsTimer = window.setTimeout(() => {
      if (!this.client.connected || this.passcode !== null) return;
      this.options.credentials().then(
        (passcode) => {
          if (passcode && this.client.connected && this.passcode === null) this.client.forceDisconnect();
          else if (!passcode) this.retryCredentials();
        },
        () => this.retryCredentials(),
      );
    }, 3000);
  }

  private attach(entry: Entry): void {
    if (entry.options.needsAuth && this.passcode === null) return;
    entry.options.onSubscribe?.();
    // A fresh id per SUBSCRIBE: MESSAGEs still in flight for the previous one are then dropped
    // by stompjs instead of being mistaken for the new subscription's first message.
    const id = `sub-${this.nextId++}`;
    const headers = { ...entry.options.headers?.(), id };
    entry.active = this.client.subscribe(entry.destination, (message) => entry.onMessage(message.body, message), headers);
  }

  private detach(entry: Entry): void {
    if (entry.active && this.client.connected) {
      try {
        entry.active.unsubscribe();
      } catch {
        // the connection went away in between: nothing to unsubscribe from
      }
    }
    entry.active = null;
  }

  private signal(signal: StatusSignal): void {
    const before = this._status;
    const after = nextStatus(before, signal);
    if (after !== before) {
      this._status = after;
      for (const listener of this.listeners) listener(after);
    }
    if (mustReconnect(before, signal)) {
      this.watch(0);
      this.client.forceDisconnect(); // discarded at once; stompjs schedules the next attempt
    }
  }

  /** The WebSocket of a connection attempt, noting when bytes arrive on it (frames and beats). */
  private openSocket(): IStompSocket {
    const socket = new WebSocket(this.url, this.client.stompVersions.protocolVersions());
    this.socket = socket;
    this.lastActivity = performance.now();
    socket.addEventListener('message', () => {
      if (this.socket === socket) this.lastActivity = performance.now();
    });
    return socket as IStompSocket;
  }

  /** Watch for silence on a connection whose server beats every `intervalMs` (0: stop). */
  private watch(intervalMs: number): void {
    window.clearInterval(this.watchdog);
    this.watchdog = 0;
    if (intervalMs <= 0) return;
    this.lastActivity = performance.now();
    const limit = silenceLimitMs(intervalMs);
    this.watchdog = window.setInterval(() => {
      if (performance.now() - this.lastActivity > limit) this.signal('silent');
    }, silenceCheckMs(intervalMs));
  }

  /** Connect again now rather than after the backoff (the browser says the network is back). */
  private reconnectNow(): void {
    if (this.stopped) return;
    this.watch(0);
    void this.client.deactivate({ force: true }).then(() => {
      if (!this.stopped) this.client.activate();
    });
  }
}
