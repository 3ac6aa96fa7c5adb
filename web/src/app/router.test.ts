import { describe, expect, it } from 'vitest';

import { href, parseRoute } from './router';

describe('parseRoute', () => {
  it('reads the deep links', () => {
    expect(parseRoute('')).toEqual({ name: 'events' });
    expect(parseRoute('#/')).toEqual({ name: 'events' });
    expect(parseRoute('#/events/12')).toEqual({ name: 'event', id: 12 });
    expect(parseRoute('#/events/12/')).toEqual({ name: 'event', id: 12 });
    expect(parseRoute('#/orders/ord_ab%2Fc')).toEqual({ name: 'order', id: 'ord_ab/c', key: null });
    expect(parseRoute('#/orders/ord_1?key=Ab-_9')).toEqual({ name: 'order', id: 'ord_1', key: 'Ab-_9' });
    expect(parseRoute('#/signin')).toEqual({ name: 'signin', link: null });
    expect(parseRoute('#/signin/AbC_-123')).toEqual({ name: 'signin', link: 'AbC_-123' });
    expect(parseRoute('#/signin/a b')).toEqual({ name: 'not-found', path: '/signin/a b' });
    expect(parseRoute('#/tickets')).toEqual({ name: 'tickets' });
    expect(parseRoute('#/events/x')).toEqual({ name: 'not-found', path: '/events/x' });
  });

  it('round-trips the links it makes', () => {
    expect(parseRoute(href.event(7))).toEqual({ name: 'event', id: 7 });
    expect(parseRoute(href.order('ord 1'))).toEqual({ name: 'order', id: 'ord 1', key: null });
  });
});
