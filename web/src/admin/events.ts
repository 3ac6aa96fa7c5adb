// The console's list of events with their pacing settings (from each event's detail, without
// its layout, which the console never needs).

import { create } from 'zustand';

import { describeError } from '../shared/http';
import type { EventDetail, EventPatch, EventSummary } from '../shared/types';
import type { AdminApi } from './api';
import { describeRefusal, eventLabels } from './fieldLabels';

export type AdminEvent = EventSummary &
  Pick<EventDetail, 'admission_rate' | 'max_active_shoppers' | 'admission_mode' | 'admission_rate_min' | 'admission_rate_max' | 'pow_difficulty'>;

function strip(detail: EventDetail): AdminEvent {
  const { layout: _layout, ...rest } = detail;
  return rest;
}

interface EventsState {
  events: AdminEvent[];
  loading: boolean;
  error: string | null;
  /** Per event: the last change's outcome ("saved" or the problem). */
  outcome: Record<number, { ok: boolean; text: string }>;
  busy: Record<number, boolean>;
  /** Counts the console's own changes to events (created, patched): each is audited on the
   *  server, so the audit log reads itself again when this moves. */
  changes: number;
  refresh(api: AdminApi): Promise<void>;
  /** Send `patch`; whether it was saved. A refusal is the event's outcome, in the console's
   *  words, followed by `afterRefusal`; the event is then read again, so that what the row
   *  shows is the setting in force (a request that got no answer may have been applied). */
  patch(api: AdminApi, id: number, patch: EventPatch, afterRefusal?: string): Promise<boolean>;
  added(detail: EventDetail): void;
  /** A change refused before it was sent (a field left empty): shown like the server's refusal. */
  refused(id: number, text: string): void;
}

export const useEvents = create<EventsState>()((set, get) => ({
  events: [],
  loading: false,
  error: null,
  outcome: {},
  busy: {},
  changes: 0,

  async refresh(api) {
    set({ loading: true });
    try {
      const list = await api.events();
      const details = await Promise.all(list.map((e) => api.event(e.id).then(strip, () => ({ ...e, admission_rate: 0, max_active_shoppers: 0 }))));
      set({ events: details, error: null });
    } catch (error) {
      set({ error: describeError(error) });
    } finally {
      set({ loading: false });
    }
  },

  async patch(api, id, patch, afterRefusal) {
    set({ busy: { ...get().busy, [id]: true } });
    try {
      const detail = strip(await api.patchEvent(id, patch));
      set({
        events: get().events.map((e) => (e.id === id ? detail : e)),
        outcome: { ...get().outcome, [id]: { ok: true, text: 'Saved.' } },
        changes: get().changes + 1,
      });
      return true;
    } catch (error) {
      const text = [describeRefusal(error, eventLabels(patch)), afterRefusal].filter(Boolean).join(' ');
      set({ outcome: { ...get().outcome, [id]: { ok: false, text } } });
      try {
        const detail = strip(await api.event(id));
        set({ events: get().events.map((e) => (e.id === id ? detail : e)) });
      } catch {
        // still unreachable: the last settings read stand
      }
      return false;
    } finally {
      set({ busy: { ...get().busy, [id]: false } });
    }
  },

  added(detail) {
    set({ events: [...get().events.filter((e) => e.id !== detail.id), strip(detail)], changes: get().changes + 1 });
  },

  refused(id, text) {
    set({ outcome: { ...get().outcome, [id]: { ok: false, text } } });
  },
}));
