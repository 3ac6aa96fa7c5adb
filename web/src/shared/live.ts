// The live connection: one @stomp/stompjs Client over /ws for the whole page.
//
// stompjs reconnects by itself (here with exponential backoff) but forgets subscriptions when a
// connection drops, so this module keeps the set of wanted subscriptions and subscribes all of
// them again on every (re)connect. Each subscription may ask to hear about that moment
// (`onSubscribe`), which is how the seat map knows to wait for a fresh snapshot, and may
// `resubscribe()` itself, which is how it recovers from a gap in the deltas.

import { Client, ReconnectionTimeMode, type IMessage, type StompSubscription } from '@stomp/stompjs';

export type ConnectionState = 'connecting' | 'connected' | 'disconnected';

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
  private readonly listeners = new Set<(state: ConnectionState) => void>();
  private _state: ConnectionState = 'disconnected';
  private passcode: string | null = null;
  private nextKey = 1;
  private nextId = 1;
  private credentialsTimer = 0;

  constructor(private readonly options: LiveOptions) {
    this.client = new Client({
      brokerURL: options.url ?? defaultUrl(),
      // Backoff: 0.5 s, 1 s, 2 s … capped at 15 s; reset by a successful CONNECTED.
      reconnectDelay: 500,
      maxReconnectDelay: 15_000,
      reconnectTimeMode: ReconnectionTimeMode.EXPONENTIAL,
      connectionTimeout: 10_000,
      heartbeatIncoming: 10_000,
      heartbeatOutgoing: 10_000,
      beforeConnect: async (client) => {
        this.setState('connecting');
        try {
          this.passcode = await this.options.credentials();
        } catch {
          this.passcode = null; // no identity yet (server unreachable?): public topics only
        }
        client.connectHeaders = this.passcode ? { login: 'concert-hub-web', passcode: this.passcode } : {};
      },
      onConnect: () => {
        this.setState('connected');
        for (const entry of this.entries.values()) this.attach(entry);
        if (this.passcode === null) this.retryCredentials();
      },
      onWebSocketClose: () => {
        for (const entry of this.entries.values()) entry.active = null;
        this.setState('disconnected');
      },
      onStompError: (frame) => {
        if (frame.headers.message === 'authentication failed' && this.passcode) {
          this.options.onAuthFailed?.(this.passcode);
        }
      },
    });
  }

  get state(): ConnectionState {
    return this._state;
  }

  /** Whether the current session carries credentials (so `/user/...` may be subscribed). */
  get authenticated(): boolean {
    return this._state === 'connected' && this.passcode !== null;
  }

  start(): void {
    if (this.client.active) return;
    this.setState('connecting'); // at once: the first CONNECT is under way, not "disconnected"
    this.client.activate();
  }

  async stop(): Promise<void> {
    await this.client.deactivate();
    this.setState('disconnected');
  }

  onState(listener: (state: ConnectionState) => void): () => void {
    this.listeners.add(listener);
    listener(this._state);
    return () => this.listeners.delete(listener);
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
    entry.active = this.client.subscribe(entry.destination, (message) => entry.onMessage(message.body, message), { id });
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

  private setState(state: ConnectionState): void {
    if (state === this._state) return;
    this._state = state;
    for (const listener of this.listeners) listener(state);
  }
}
