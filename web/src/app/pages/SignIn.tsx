import { useEffect, useRef, useState } from 'react';

import { describeError } from '../../shared/http';
import { currentCustomer, signedIn } from '../../shared/identity';
import { api } from '../api';
import { Feedback } from '../components/Feedback';
import { looksLikeEmail, rememberedEmail } from '../orders';
import { href, replaceRoute } from '../router';

/** Sign in by e-mail: ask for a link and a code, type the code here (another device), or arrive
 *  from the e-mailed link (`#/signin/<secret>`), which signs in at once. */
export function SignIn({ link }: { link: string | null }) {
  const [email, setEmail] = useState(() => currentCustomer()?.email ?? rememberedEmail());
  const [sent, setSent] = useState<string | null>(null);
  const [code, setCode] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const tried = useRef<string | null>(null);

  useEffect(() => {
    if (!link || tried.current === link) return;
    tried.current = link;
    setBusy(true);
    api.signInWithLink(link).then(
      (customer) => {
        signedIn(customer);
        replaceRoute(href.tickets());
      },
      (e: unknown) => {
        setBusy(false);
        setError(`${describeError(e)}.`);
      },
    );
  }, [link]);

  const ask = async () => {
    setBusy(true);
    setError(null);
    try {
      const answer = await api.requestSignIn(email.trim());
      setSent(answer.detail);
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  const redeem = async () => {
    setBusy(true);
    setError(null);
    try {
      signedIn(await api.signInWithCode(email.trim(), code.trim()));
      replaceRoute(href.tickets());
    } catch (e) {
      setError(describeError(e));
      setBusy(false);
    }
  };

  if (link) {
    return (
      <>
        <h1 className="page-title">Signing in…</h1>
        <Feedback error={error} />
        {error && (
          <p>
            <a href={href.signin()}>Ask for a new sign-in e-mail</a>
          </p>
        )}
      </>
    );
  }

  return (
    <>
      <h1 className="page-title">Sign in</h1>
      <div className="card">
        <p>Sign in with the e-mail address you bought tickets with: every order bought for it shows up under My tickets, on any device.</p>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void ask();
          }}
        >
          <label className="field">
            <span className="field__label">E-mail</span>
            <input type="email" data-testid="signin-email" autoComplete="email" required maxLength={254} value={email} onChange={(e) => setEmail(e.target.value)} disabled={busy} />
          </label>
          <button type="submit" className="button button--primary" data-testid="signin-send" disabled={busy || !looksLikeEmail(email)}>
            {sent ? 'Send another e-mail' : 'E-mail me a sign-in link'}
          </button>
        </form>
      </div>
      {sent && (
        <div className="card">
          <p data-testid="signin-sent">{sent} Open the link in it, or type its 6-digit code here.</p>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void redeem();
            }}
          >
            <label className="field">
              <span className="field__label">Code</span>
              <input data-testid="signin-code" inputMode="numeric" autoComplete="one-time-code" pattern="[0-9]{6}" maxLength={6} value={code} onChange={(e) => setCode(e.target.value)} disabled={busy} />
            </label>
            <button type="submit" className="button button--primary" data-testid="signin-redeem" disabled={busy || !/^\d{6}$/.test(code.trim())}>
              Sign in
            </button>
          </form>
        </div>
      )}
      <Feedback error={error} />
    </>
  );
}
