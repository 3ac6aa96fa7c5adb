/** The problem to show (data-testid="error-message") and neutral notices, each dismissible. */
export function Feedback({ error, notice, onDismiss }: { error: string | null; notice?: string | null; onDismiss?: () => void }) {
  return (
    <>
      {error && (
        <div className="message message--error" role="alert">
          <span data-testid="error-message">{error}</span>
          {onDismiss && (
            <button type="button" className="link-button" onClick={onDismiss} aria-label="Dismiss message">
              ×
            </button>
          )}
        </div>
      )}
      {notice && !error && (
        <div className="message message--notice" role="status">
          <span>{notice}</span>
          {onDismiss && (
            <button type="button" className="link-button" onClick={onDismiss} aria-label="Dismiss message">
              ×
            </button>
          )}
        </div>
      )}
    </>
  );
}
