import { useConnection } from '../live';

const LABELS = {
  connected: 'Live',
  connecting: 'Connecting…',
  disconnected: 'Offline — reconnecting',
} as const;

/** The live connection's state; the test id carries the bare state word. */
export function ConnectionBadge() {
  const state = useConnection((s) => s.state);
  return (
    <div className={`connection connection--${state}`} title={LABELS[state]} aria-live="polite">
      <span className="connection__dot" aria-hidden="true" />
      <span className="visually-hidden">Live updates: </span>
      <span data-testid="connection-state" className="connection__state">
        {state}
      </span>
    </div>
  );
}
