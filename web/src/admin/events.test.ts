import { beforeEach, describe, expect, it } from 'vitest';

import { ApiError } from '../shared/http';
import type { EventDetail, EventPatch } from '../shared/types';
import type { AdminApi } from './api';
import { useEvents } from './events';

const detail = (over: Partial<EventDetail> = {}): EventDetail =>
  ({
    id: 7,
    name: 'Gala',
    venue: 'Hall',
    starts_at: '2030-05-01T18:00:00Z',
    sale_opens_at: '2030-04-01T08:00:00Z',
    sale_closes_at: '2030-05-01T17:00:00Z',
    status: 'on_sale',
    waiting_room: true,
    seat_count: 10,
    admission_rate: 20,
    max_active_shoppers: 100,
    admission_mode: 'fixed',
    admission_rate_min: 1,
    admission_rate_max: 100,
    pow_difficulty: 0,
    layout: { tiers: [], sections: [] },
    ...over,
  }) as EventDetail;

/** The two calls `patch` makes: the PATCH (answered by `answer`) and a read of the event. */
function fakeApi(answer: (patch: EventPatch) => Promise<EventDetail>, inForce: EventDetail): { api: AdminApi; reads: number[] } {
  const reads: number[] = [];
  const api = {
    patchEvent: (_id: number, patch: EventPatch) => answer(patch),
    event: (id: number) => {
      reads.push(id);
      return Promise.resolve(inForce);
    },
  } as unknown as AdminApi;
  return { api, reads };
}

const refusal = new ApiError({
  status: 422,
  kind: 'validation',
  detail: 'the request body does not match the schema',
  errors: [{ loc: ['admission_rate'], msg: 'Input should be less than or equal to 10000', type: 'less_than_equal' }],
});

describe('a change the server refuses', () => {
  beforeEach(() => {
    const { layout: _layout, ...event } = detail();
    useEvents.setState({ events: [event], outcome: {}, busy: {}, changes: 0 });
  });

  it('says why in the form’s words, and that it was not saved', async () => {
    const { api } = fakeApi(() => Promise.reject(refusal), detail());
    const saved = await useEvents.getState().patch(api, 7, { admission_rate: 20000 }, 'Not saved: the boxes show the pacing in force.');
    expect(saved).toBe(false);
    expect(useEvents.getState().outcome[7]).toEqual({
      ok: false,
      text: 'Admissions / s must be at most 10,000. Not saved: the boxes show the pacing in force.',
    });
    expect(useEvents.getState().changes).toBe(0);
  });

  it('reads the event again: the row shows the setting in force, not the refused one', async () => {
    // Another admin set 30/s meanwhile: that is what is in force, and what the row shows.
    const { api, reads } = fakeApi(() => Promise.reject(refusal), detail({ admission_rate: 30 }));
    await useEvents.getState().patch(api, 7, { admission_rate: 20000 });
    expect(reads).toEqual([7]);
    expect(useEvents.getState().events[0]?.admission_rate).toBe(30);
    expect(useEvents.getState().busy[7]).toBe(false);
  });

  it('a saved change is the server’s answer', async () => {
    const { api, reads } = fakeApi((patch) => Promise.resolve(detail({ admission_rate: patch.admission_rate ?? 0 })), detail());
    expect(await useEvents.getState().patch(api, 7, { admission_rate: 50 })).toBe(true);
    expect(useEvents.getState().events[0]?.admission_rate).toBe(50);
    expect(useEvents.getState().outcome[7]).toEqual({ ok: true, text: 'Saved.' });
    expect(reads).toEqual([]);
  });
});
