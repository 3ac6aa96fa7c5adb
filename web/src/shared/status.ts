// What the page tells the user about its live connection, as one small state machine. Pure:
// the connection (live.ts) feeds it what it observes and shows what comes out.
//
// Theory of operation. "Live" must mean "updates are reaching this page now", so every sign of
// trouble moves the badge off "connected" at once, and only a fresh CONNECTED frame moves it
// back:
//
//   signal            from                     to
//   start             any but connected        connecting (never connected yet) | reconnecting
//   connected         any                      connected            (the network is back too)
//   closed            connecting               connecting           (still trying the first time)
//   closed            any other but stopped    reconnecting | offline (when the browser says so)
//   silent            connected                reconnecting | offline (no byte for too long:
//                                                                    the socket is dropped)
//   request-failed    connected                reconnecting | offline (a REST call got no answer:
//                                                                    the connection is checked)
//   browser-offline   any but stopped          offline
//   browser-online    offline                  reconnecting | connecting
//   stopped           any                      disconnected
//
// So a failed request and the badge never contradict each other: a request that got no answer
// takes "connected" away until the server has answered a new CONNECT.

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'disconnected';

export type StatusSignal =
  | 'start'
  | 'connected'
  | 'closed'
  | 'silent'
  | 'request-failed'
  | 'browser-offline'
  | 'browser-online'
  | 'stopped';

export interface LiveStatus {
  state: ConnectionState;
  /** Whether this page was ever connected (after that, trouble is "reconnecting"). */
  everConnected: boolean;
  /** The browser reports no network (navigator.onLine is false). */
  browserOffline: boolean;
}

export const INITIAL_STATUS: LiveStatus = { state: 'disconnected', everConnected: false, browserOffline: false };

/** The state to show while trying to (re)connect. */
function trying(status: LiveStatus): ConnectionState {
  if (status.browserOffline) return 'offline';
  return status.everConnected ? 'reconnecting' : 'connecting';
}

export function nextStatus(status: LiveStatus, signal: StatusSignal): LiveStatus {
  switch (signal) {
    case 'start':
      return status.state === 'connected' ? status : { ...status, state: trying(status) };
    case 'connected':
      return { state: 'connected', everConnected: true, browserOffline: false };
    case 'closed':
      return status.state === 'disconnected' ? status : { ...status, state: trying(status) };
    case 'silent':
    case 'request-failed':
      return status.state === 'connected' ? { ...status, state: trying(status) } : status;
    case 'browser-offline':
      return status.state === 'disconnected'
        ? { ...status, browserOffline: true }
        : { ...status, browserOffline: true, state: 'offline' };
    case 'browser-online': {
      const online = { ...status, browserOffline: false };
      return status.state === 'offline' ? { ...online, state: trying(online) } : online;
    }
    case 'stopped':
      return { ...status, state: 'disconnected' };
  }
}

/** Whether the connection should be dropped and made again after this signal: silence or an
 *  unanswered request while the page believed it was connected. */
export function mustReconnect(before: LiveStatus, signal: StatusSignal): boolean {
  return before.state === 'connected' && (signal === 'silent' || signal === 'request-failed');
}

/**
 * How long inbound silence may last before the connection counts as lost, for a negotiated
 * server-to-client heart-beat interval of `intervalMs`: 1.5 intervals. The server sends a beat
 * whenever it has sent nothing for half an interval (so a healthy connection is never silent for
 * much more than one); checking every tenth of an interval, the loss shows within 1.6 intervals,
 * inside the promised 2.
 */
export function silenceLimitMs(intervalMs: number): number {
  return intervalMs * 1.5;
}

export function silenceCheckMs(intervalMs: number): number {
  return Math.max(50, intervalMs / 10);
}

/**
 * The negotiated interval (ms) at which the server beats to us, from the CONNECTED frame's
 * `heart-beat: sx,sy` and the `cy` we asked for (STOMP 1.2 §Heart-beating: max(sx, cy), and 0 —
 * no beats — if either is 0).
 */
export function incomingInterval(header: string | undefined, wanted: number): number {
  if (!header) return 0;
  const sx = Number.parseInt(header.split(',')[0] ?? '', 10);
  if (!Number.isFinite(sx) || sx <= 0 || wanted <= 0) return 0;
  return Math.max(sx, wanted);
}
