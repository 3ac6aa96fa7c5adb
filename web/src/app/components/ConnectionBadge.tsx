import { useConnection } from '../live';

const LABELS = {
  connecting: 'Connecting…',
  connected: 'Live',
  reconnecting: 'Connection lost — reconnecting',
  offline: 'Offline — waiting for the network',
  disconnected: 'Disconnected',
} as const;

/** The live connection's state; the test id carries the bare state word. */
export function ConnectionBadge() {
  const state = useConnection((s) => s.state);
  return (
    <div className={`connection connection--${state}`} title={LABELS[state]} role="status" aria-live="polite">
      <span className="connection__dot" aria-hidden="true" />
      <span className="visually-hidden">Live updates: {LABELS[state]} — </span>
      <span data-testid="connection-state" className="connection__state" aria-hidden="true">
        {state}
      </span>
    </div>
  );
}
