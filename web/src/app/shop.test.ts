import { beforeEach, describe, expect, it, vi } from 'vitest';

import { ApiError } from '../shared/http';
import type { EventDetail, Hold, QueuePosition } from '../shared/types';

vi.mock('./api', () => ({
  api: {
    event: vi.fn(),
    hold: vi.fn(),
    holdBest: vi.fn(),
    queueMe: vi.fn(),
  },
}));

const { api } = await import('./api');
const { canShop, paymentRefusal, useShop } = await import('./shop');

const seats = (row: string, n: number) =>
  Array.from({ length: n }, (_, k) => ({ id: `S-${row}-${k + 1}`, number: k + 1, tier_id: 1 }));

const EVENT: EventDetail = {
  id: 5,
  name: 'Gala',
  venue: 'Hall',
  starts_at: '2030-05-01T19:30:00Z',
  sale_opens_at: '2030-04-01T00:00:00Z',
  sale_closes_at: '2030-05-01T18:00:00Z',
  timezone: 'UTC',
  status: 'on_sale',
  on_sale: true,
  waiting_room: true,
  seat_count: 4,
  hold_ttl_s: 300,
  max_seats_per_user: 2,
  tiers: [{ id: 1, name: 'Main', price_cents: 4200, currency: 'EUR' }],
  admission_rate: 1,
  max_active_shoppers: 10,
  layout: { sections: [{ name: 'STALLS', rows: [{ name: 'A', seats: seats('A', 4) }, { name: 'B', seats: seats('B', 4) }] }] },
};

const HOLD: Hold = {
  hold_id: 'h1',
  event_id: 5,
  seats: ['S-B-2', 'S-B-3'],
  status: 'active',
  created_at: '2030-05-01T18:00:00Z',
  expires_at: '2030-05-01T18:05:00Z',
  amount_cents: 8400,
  currency: 'EUR',
};

function position(state: QueuePosition['state'], extra: Partial<QueuePosition> = {}): QueuePosition {
  return { event_id: 5, state, position: null, ahead: null, waiting_total: 0, eta_seconds: null, ...extra };
}

beforeEach(() => {
  vi.mocked(api.hold).mockReset();
  vi.mocked(api.holdBest).mockReset();
  vi.mocked(api.queueMe).mockReset();
  vi.mocked(api.event).mockReset();
  useShop.setState({ ...useShop.getInitialState(), eventId: 5, event: EVENT });
});

describe('picking seats', () => {
  it('toggles available seats up to the per-user limit', () => {
    const shop = useShop.getState();
    shop.toggleSeat('S-A-1', 'available');
    shop.toggleSeat('S-A-2', 'available');
    useShop.getState().toggleSeat('S-A-3', 'available');
    expect(useShop.getState().selected).toEqual(['S-A-1', 'S-A-2']);
    expect(useShop.getState().error).toBe('You can pick up to 2 seats for this event.');
    useShop.getState().toggleSeat('S-A-1', 'held'); // deselecting needs no availability
    expect(useShop.getState().selected).toEqual(['S-A-2']);
  });

  it('refuses seats that are not available', () => {
    useShop.getState().toggleSeat('S-A-1', 'sold');
    expect(useShop.getState().selected).toEqual([]);
    expect(useShop.getState().error).toBe('Stalls row A seat 1 is sold.');
  });

  it('drops picked seats someone else took, saying which', () => {
    useShop.setState({ selected: ['S-A-1', 'S-A-2'] });
    useShop.getState().dropTaken(['S-A-2', 'S-B-9']);
    expect(useShop.getState().selected).toEqual(['S-A-1']);
    expect(useShop.getState().error).toBe('Stalls row A seat 2 was just taken — please pick another seat.');
  });

  it('does not mistake its own hold, still on its way, for someone else’s', () => {
    useShop.setState({ selected: ['S-A-1'], busy: 'hold' });
    useShop.getState().dropTaken(['S-A-1']);
    expect(useShop.getState().selected).toEqual(['S-A-1']);
    expect(useShop.getState().error).toBeNull();
  });
});

describe('holding', () => {
  it('a 409 names the seats that were just taken and unpicks them', async () => {
    useShop.setState({ selected: ['S-A-1', 'S-A-2'], admission: { token: 'adm', expiresAt: '2030-05-01T19:00:00Z' } });
    vi.mocked(api.hold).mockRejectedValue(
      new ApiError({ status: 409, kind: 'conflict', detail: 'some seats are not available', conflicts: ['S-A-2'] }),
    );
    await useShop.getState().placeHold();
    expect(api.hold).toHaveBeenCalledWith(5, ['S-A-1', 'S-A-2'], 'adm');
    const state = useShop.getState();
    expect(state.error).toBe('Stalls row A seat 2 was just taken — please pick another seat.');
    expect(state.error).not.toContain('S-A-2');
    expect(state.selected).toEqual(['S-A-1']);
    expect(state.busy).toBeNull();
  });

  it('a granted hold replaces the selection and gets a local deadline', async () => {
    useShop.setState({ selected: ['S-A-1'] });
    const hold: Hold = {
      hold_id: 'h1',
      event_id: 5,
      seats: ['S-A-1'],
      status: 'active',
      created_at: '2030-05-01T19:00:00Z',
      expires_at: '2030-05-01T19:05:00Z',
      amount_cents: 4200,
      currency: 'EUR',
    };
    vi.mocked(api.hold).mockResolvedValue(hold);
    const before = Date.now();
    await useShop.getState().placeHold();
    const state = useShop.getState();
    expect(state.selected).toEqual([]);
    expect(state.hold?.hold_id).toBe('h1');
    expect(state.hold!.deadline.total).toBe(300);
    expect(state.hold!.deadline.at).toBeGreaterThanOrEqual(before + 300_000);
  });
});

describe('the waiting room', () => {
  it('an admission carries the token that holds need; expiry takes it away', () => {
    expect(canShop(useShop.getState())).toBe(false);
    useShop.getState().applyPosition(position('admitted', { admission_token: 'tok', expires_at: '2030-05-01T19:10:00Z' }));
    expect(useShop.getState().admission).toEqual({ token: 'tok', expiresAt: '2030-05-01T19:10:00Z' });
    expect(canShop(useShop.getState())).toBe(true);
    useShop.getState().applyPosition(position('expired'));
    expect(useShop.getState().admission).toBeNull();
    expect(useShop.getState().queue?.state).toBe('expired');
  });

  it('a late "waiting" answer does not send an admitted user back to the queue', () => {
    // The REST join reply can arrive after the STOMP push that admitted the user.
    useShop.getState().applyPosition(position('admitted', { admission_token: 'tok', expires_at: '2030-05-01T19:10:00Z' }));
    useShop.getState().applyPosition(position('waiting'));
    expect(useShop.getState().queue?.state).toBe('admitted');
    expect(canShop(useShop.getState())).toBe(true);
  });

  it('ignores positions of other events', () => {
    useShop.getState().applyPosition({ ...position('waiting'), event_id: 6 });
    expect(useShop.getState().queue).toBeNull();
  });
});

describe('best available', () => {
  const admitted = { admission: { token: 'adm', expiresAt: '2030-05-01T19:00:00Z' } };

  it('holds the seats the server picked and asks the map to show them', async () => {
    useShop.setState({ ...admitted, selected: ['S-A-1'] });
    vi.mocked(api.holdBest).mockResolvedValue(HOLD);
    await useShop.getState().holdBest({ count: 2, section: 'STALLS' });
    expect(api.holdBest).toHaveBeenCalledWith(5, { count: 2, section: 'STALLS' }, 'adm');
    const state = useShop.getState();
    expect(state.hold?.seats).toEqual(['S-B-2', 'S-B-3']);
    expect(state.selected).toEqual([]);
    expect(state.reveal).toEqual(['S-B-2', 'S-B-3']);
    expect(state.busy).toBeNull();
  });

  it('says when no block of that size is left, in words', async () => {
    useShop.setState(admitted);
    vi.mocked(api.holdBest).mockRejectedValue(new ApiError({ status: 409, kind: 'no_block', detail: 'no 3 adjacent seats left in section STALLS', count: 3 }));
    await useShop.getState().holdBest({ count: 3, section: 'STALLS' });
    expect(useShop.getState().error).toBe('No 3 seats side by side are left in Stalls. Try fewer seats, another section or price, or pick seats on the map.');
    expect(useShop.getState().hold).toBeNull();
  });

  it('explains a server that does not know best available yet', async () => {
    useShop.setState(admitted);
    vi.mocked(api.holdBest).mockRejectedValue(
      new ApiError({
        status: 422,
        kind: 'validation',
        detail: 'invalid body',
        errors: [{ loc: ['best_available'], msg: 'Extra inputs are not permitted', type: 'extra_forbidden' }],
      }),
    );
    await useShop.getState().holdBest({ count: 2 });
    expect(useShop.getState().error).toBe('This server does not offer best available yet: please pick your seats on the map.');
  });
});

describe('errors that end by themselves', () => {
  it('a request that got no answer is forgotten once the connection is back', async () => {
    useShop.setState({ selected: ['S-A-1'], admission: { token: 'adm', expiresAt: '2030-05-01T19:00:00Z' } });
    vi.mocked(api.hold).mockRejectedValue(new ApiError({ status: 0, kind: 'network', detail: 'You are offline.' }));
    await useShop.getState().placeHold();
    expect(useShop.getState()).toMatchObject({ error: 'You are offline.', errorCause: 'network', selected: ['S-A-1'] });
    useShop.getState().toggleSeat('S-A-2', 'available'); // picking on does not hide it
    expect(useShop.getState().error).toBe('You are offline.');
    useShop.getState().connectionBack();
    expect(useShop.getState()).toMatchObject({ error: null, errorCause: null, notice: 'The connection is back. Please try again.' });
  });

  it('other errors stay when the connection comes back', () => {
    useShop.setState({ error: 'Payment declined: no', errorCause: null });
    useShop.getState().connectionBack();
    expect(useShop.getState().error).toBe('Payment declined: no');
  });

  it('a missing admission error goes once the waiting room admits the user', async () => {
    vi.mocked(api.hold).mockRejectedValue(new ApiError({ status: 403, kind: 'admission_required', detail: 'an admission is required' }));
    vi.mocked(api.queueMe).mockResolvedValue(null);
    useShop.setState({ selected: ['S-A-1'], admission: { token: 'old', expiresAt: '2030-05-01T19:00:00Z' } });
    await useShop.getState().placeHold();
    expect(useShop.getState()).toMatchObject({ error: 'an admission is required', errorCause: 'admission' });
    useShop.getState().applyPosition(position('admitted', { admission_token: 'tok', expires_at: '2030-05-01T19:10:00Z' }));
    expect(useShop.getState().error).toBeNull();
  });
});

describe('a sale paused after the page loaded', () => {
  it('is learnt when a hold is refused for it, keeping the seat map', async () => {
    const paused: EventDetail = { ...structuredClone(EVENT), status: 'paused', on_sale: false };
    vi.mocked(api.event).mockResolvedValue(paused);
    vi.mocked(api.hold).mockRejectedValue(new ApiError({ status: 409, kind: 'sale_closed', detail: 'The event is not on sale now.' }));
    useShop.setState({ selected: ['S-A-1'], admission: { token: 'adm', expiresAt: '2030-05-01T19:00:00Z' } });
    await useShop.getState().placeHold();
    await vi.waitFor(() => expect(useShop.getState().event?.status).toBe('paused'));
    const event = useShop.getState().event;
    expect(event?.on_sale).toBe(false);
    expect(event?.layout).toBe(EVENT.layout); // the same layout: the map is not rebuilt
    expect(useShop.getState().error).toBe('The event is not on sale now.');
  });

  it('is learnt when the connection comes back', async () => {
    vi.mocked(api.event).mockResolvedValue({ ...EVENT, status: 'paused', on_sale: false });
    useShop.getState().connectionBack();
    await vi.waitFor(() => expect(useShop.getState().event?.status).toBe('paused'));
  });

  it('is taken from the status topic at once, keeping the seat map', () => {
    const push = { type: 'status', event_id: EVENT.id, status: 'paused', on_sale: false, waiting_room: true,
                   sale_opens_at: EVENT.sale_opens_at, sale_closes_at: EVENT.sale_closes_at } as const;
    useShop.getState().applyStatus({ ...push, event_id: EVENT.id + 1 }); // another event's: ignored
    expect(useShop.getState().event?.status).toBe('on_sale');
    useShop.getState().applyStatus(push);
    const event = useShop.getState().event;
    expect([event?.status, event?.on_sale, event?.waiting_room]).toEqual(['paused', false, true]);
    expect(event?.layout).toBe(EVENT.layout);
    expect(api.event).not.toHaveBeenCalled(); // no re-read needed
  });

  it('other refusals do not read the event again', async () => {
    vi.mocked(api.hold).mockRejectedValue(new ApiError({ status: 409, kind: 'conflict', conflicts: ['S-A-1'] }));
    useShop.setState({ selected: ['S-A-1'], admission: { token: 'adm', expiresAt: '2030-05-01T19:00:00Z' } });
    await useShop.getState().placeHold();
    expect(api.event).not.toHaveBeenCalled();
  });
});

describe('a refused payment in words', () => {
  it('says it was declined once, and what to do', () => {
    expect(paymentRefusal(402, 'the payment was declined')).toBe('Payment declined. Nothing was charged; try another card.');
    expect(paymentRefusal(402, 'insufficient funds.')).toBe('Payment declined: insufficient funds. Nothing was charged; try another card.');
    expect(paymentRefusal(502, 'the payment gateway failed; anything it charged is refunded')).toBe(
      'The payment did not go through: the payment gateway failed; anything it charged is refunded. Please try again.',
    );
    expect(paymentRefusal(409, 'the hold is not active')).toBeNull(); // said in the server's words
  });
});
