// Live statistics for the console: GET /api/admin/stats every 2 s, with a short history for
// the sales chart (two minutes of samples).

import { create } from 'zustand';

import { describeError } from '../shared/http';
import type { Stats } from '../shared/types';
import type { AdminApi } from './api';

export const POLL_MS = 2000;
const HISTORY = 60;

export interface Sample {
  at: number;
  salesPerMin: number;
  connections: number;
  /** Users in every waiting room, admissions per minute, and the admission rate (per second)
   *  summed over the events whose waiting room is on. */
  waiting: number;
  admittedPerMin: number;
  admissionRate: number;
  /** Users who left or timed out (admissions lapsed unused), cumulative, every event. */
  abandoned: number;
}

export interface WaitHistogram {
  /** One label per bucket, its upper edge ("10s", "1m" … ">1h"). */
  labels: string[];
  counts: number[];
}

function duration(seconds: number): string {
  return seconds < 60 ? `${seconds}s` : seconds < 3600 ? `${seconds / 60}m` : `${seconds / 3600}h`;
}

/** Time to admission over every event's waiting room (the server's buckets, summed). */
export function waitHistogram(stats: Stats | null): WaitHistogram {
  let edges: number[] = [];
  let counts: number[] = [];
  for (const event of stats?.events ?? []) {
    const hist = event.queue?.time_to_admission;
    if (!hist) continue;
    if (edges.length === 0) {
      edges = hist.edges_s;
      counts = hist.counts.map(() => 0);
    }
    hist.counts.forEach((n, i) => {
      if (i < counts.length) counts[i] = (counts[i] ?? 0) + n;
    });
  }
  const last = edges[edges.length - 1];
  const labels = [...edges.map(duration), ...(last === undefined ? [] : [`>${duration(last)}`])];
  return { labels, counts };
}

interface StatsState {
  latest: Stats | null;
  history: Sample[];
  error: string | null;
  updatedAt: number | null;
}

export const useStats = create<StatsState>()(() => ({ latest: null, history: [], error: null, updatedAt: null }));

/** Poll until the returned function is called; one request at a time, never overlapping. */
export function pollStats(api: AdminApi): () => void {
  let stopped = false;
  let timer = 0;
  const controller = new AbortController();
  const tick = async () => {
    try {
      const stats = await api.stats(controller.signal);
      if (stopped) return;
      const at = Date.now();
      useStats.setState((s) => ({
        latest: stats,
        error: null,
        updatedAt: at,
        history: [
          ...s.history,
          {
            at,
            salesPerMin: stats.sales_per_min,
            connections: stats.connections,
            waiting: stats.events.reduce((sum, e) => sum + (e.queue?.waiting ?? 0), 0),
            admittedPerMin: stats.events.reduce((sum, e) => sum + (e.queue?.admitted_per_min ?? 0), 0),
            admissionRate: stats.events.reduce((sum, e) => sum + (e.queue?.admission_rate ?? 0), 0),
            abandoned: stats.events.reduce((sum, e) => sum + (e.queue?.abandoned ?? 0), 0),
          },
        ].slice(-HISTORY),
      }));
    } catch (error) {
      if (stopped) return;
      useStats.setState({ error: describeError(error) });
    }
    if (!stopped) timer = window.setTimeout(() => void tick(), POLL_MS);
  };
  void tick();
  return () => {
    stopped = true;
    controller.abort();
    window.clearTimeout(timer);
  };
}
