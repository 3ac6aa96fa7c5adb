// Hash routing (#/events/3): deep links work without the server knowing any page but "/".

import { useSyncExternalStore } from 'react';

export type Route =
  | { name: 'events' }
  | { name: 'event'; id: number }
  | { name: 'order'; id: string; key: string | null }
  | { name: 'tickets' }
  | { name: 'signin'; link: string | null }
  | { name: 'not-found'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').replace(/\/+$/, '') || '/';
  if (path === '/' || path === '/events') return { name: 'events' };
  if (path === '/tickets') return { name: 'tickets' };
  if (path === '/signin') return { name: 'signin', link: null };
  const signin = /^\/signin\/([A-Za-z0-9_-]+)$/.exec(path);
  if (signin?.[1]) return { name: 'signin', link: signin[1] };
  const event = /^\/events\/(\d+)$/.exec(path);
  if (event?.[1]) return { name: 'event', id: Number(event[1]) };
  const order = /^\/orders\/([^/?]+)(?:\?key=([^&]+))?$/.exec(path);
  if (order?.[1]) return { name: 'order', id: decodeURIComponent(order[1]), key: order[2] ? decodeURIComponent(order[2]) : null };
  return { name: 'not-found', path };
}

export const href = {
  events: (): string => '#/',
  event: (id: number): string => `#/events/${id}`,
  order: (id: string): string => `#/orders/${encodeURIComponent(id)}`,
  tickets: (): string => '#/tickets',
  signin: (): string => '#/signin',
};

function subscribe(onChange: () => void): () => void {
  window.addEventListener('hashchange', onChange);
  return () => window.removeEventListener('hashchange', onChange);
}

export function useRoute(): Route {
  const hash = useSyncExternalStore(subscribe, () => window.location.hash);
  return parseRoute(hash);
}

export function navigate(to: string): void {
  window.location.hash = to;
}

/** Go to `to` in place of the current entry: Back does not return to a page that is done (a
 *  sign-in form whose code was used, an e-mailed sign-in link that would be tried again). */
export function replaceRoute(to: string): void {
  window.location.replace(to);
}
