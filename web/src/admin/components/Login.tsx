import { useState } from 'react';

import { useSession } from '../session';

/** Paste a token from `concert-hub token --user NAME --role admin`. */
export function Login() {
  const { login, checking, error } = useSession();
  const [token, setToken] = useState('');
  return (
    <section className="card login" aria-labelledby="login-title">
      <h1 id="login-title" className="card__title">
        Admin sign-in
      </h1>
      <p className="muted">
        Paste an admin token. Make one on the server with <code>concert-hub token --user admin --role admin</code>.
      </p>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          void login(token);
        }}
      >
        <label className="field">
          <span className="field__label">Admin token</span>
          <input type="password" autoComplete="off" spellCheck={false} value={token} onChange={(e) => setToken(e.target.value)} placeholder="eyJhbGciOi…" data-testid="admin-token" />
        </label>
        <button type="submit" className="button button--primary" disabled={checking} data-testid="admin-login">
          {checking ? 'Checking…' : 'Sign in'}
        </button>
        {error && (
          <p className="message message--error" role="alert" data-testid="error-message">
            {error}
          </p>
        )}
      </form>
    </section>
  );
}
