// "Sign out" on the door scanner, which asks first: the token is shown to the admin once, so a
// stray tap that dropped it would put the door phone out of action. The question offers the two
// reasons to sign out (another token, or none), with "Keep scanning" focused; a token the server
// refuses is worth nothing, and goes at once.

import { useEffect, useRef, useState } from 'react';

interface Props {
  /** The opener's words ("Sign out", or "Use another token" before an event is chosen). */
  label: string;
  /** The server refused the current token (401): nothing to lose, no question. */
  refused: boolean;
  /** Scans made offline not yet uploaded (kept for the next token). */
  queued: number;
  onSignOut(): void;
  /** A new token typed in the question: it replaces the current one. */
  onToken(token: string): void;
}

export function SignOut({ label, refused, queued, onSignOut, onToken }: Props) {
  const [asking, setAsking] = useState(false);
  const opener = useRef<HTMLButtonElement>(null);
  const question = useRef<HTMLDivElement>(null);
  const wasAsking = useRef(false);

  // The whole question in view (it opens at the foot of the page); back from it, the focus goes
  // back to the button that asked it.
  useEffect(() => {
    if (asking) question.current?.scrollIntoView({ block: 'nearest' });
    else if (wasAsking.current) opener.current?.focus();
    wasAsking.current = asking;
  }, [asking]);

  if (!asking) {
    return (
      <button
        ref={opener}
        type="button"
        className="scan-button scan-button--quiet"
        onClick={() => (refused ? onSignOut() : setAsking(true))}
        data-testid="scan-sign-out"
      >
        {label}
      </button>
    );
  }

  return (
    <div
      ref={question}
      className="scan-confirm"
      role="alertdialog"
      aria-labelledby="scan-sign-out-title"
      aria-describedby="scan-sign-out-text"
      data-testid="scan-sign-out-confirm"
      onKeyDown={(e) => {
        if (e.key === 'Escape') setAsking(false);
      }}
    >
      <h2 id="scan-sign-out-title" className="scan-confirm__title">
        Sign this scanner out?
      </h2>
      <p id="scan-sign-out-text">
        It forgets its token: to scan on this device again you will need a scanner token from an admin, who sees each one only
        once.
        {queued > 0 && ` The ${queued === 1 ? 'scan' : `${queued} scans`} made offline ${queued === 1 ? 'is' : 'are'} kept and upload${queued === 1 ? 's' : ''} with the next token.`}
      </p>
      <div className="scan-confirm__buttons">
        <button type="button" className="scan-button scan-button--primary" onClick={() => setAsking(false)} autoFocus data-testid="scan-sign-out-no">
          Keep scanning
        </button>
        <button type="button" className="scan-button scan-button--danger" onClick={onSignOut} data-testid="scan-sign-out-yes">
          Sign out
        </button>
      </div>
      <form
        className="scan-field-row"
        onSubmit={(e) => {
          e.preventDefault();
          const value = (new FormData(e.currentTarget).get('token') as string).trim();
          if (!value) return;
          setAsking(false);
          onToken(value);
        }}
      >
        <label className="scan-field">
          <span className="scan-field__label">Or switch to another scanner token</span>
          <TokenInput />
        </label>
        <button type="submit" className="scan-button">
          Start with this token
        </button>
      </form>
    </div>
  );
}

/** A scanner token as typed or pasted on a phone: nothing capitalised, corrected or suggested. */
export function TokenInput() {
  return (
    <input
      name="token"
      className="scan-input"
      autoComplete="off"
      autoCapitalize="off"
      autoCorrect="off"
      spellCheck={false}
      enterKeyHint="go"
      data-testid="scan-token"
    />
  );
}
