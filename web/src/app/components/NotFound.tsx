import type { ReactNode } from 'react';

import { href } from '../router';

/** A friendly dead end: what was not found, and the way back. */
export function NotFound({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <section className="card not-found" data-testid="not-found" aria-labelledby="not-found-title">
      <div className="not-found__mark" aria-hidden="true">
        ♪?
      </div>
      <h1 id="not-found-title" className="page-title">
        {title}
      </h1>
      {children}
      <p>
        <a className="button button--primary" href={href.events()}>
          See all events
        </a>{' '}
        <a className="button" href={href.tickets()}>
          My tickets
        </a>
      </p>
    </section>
  );
}
