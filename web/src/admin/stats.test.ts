import { describe, expect, it } from 'vitest';

import type { Stats } from '../shared/types';
import { waitHistogram } from './stats';

function stats(histograms: ({ edges_s: number[]; counts: number[] } | null)[]): Stats {
  return {
    nodes: [],
    connections: 0,
    subscriptions: 0,
    holds_active: 0,
    sales_per_min: 0,
    events: histograms.map((h, i) => ({
      event_id: i + 1,
      name: `E${i}`,
      status: 'on_sale',
      waiting_room: h !== null,
      seats: { available: 0, held: 0, sold: 0, blocked: 0 },
      holds_active: 0,
      queue: h === null ? null : { waiting: 0, serving: 0, active: 0, admitted_per_min: 0, abandoned: 0, time_to_admission: h },
    })),
  } as unknown as Stats;
}

describe('waitHistogram', () => {
  it('sums every waiting room’s buckets and labels them, the last one open-ended', () => {
    const edges = [10, 60, 3600];
    const hist = waitHistogram(stats([{ edges_s: edges, counts: [1, 2, 3, 4] }, null, { edges_s: edges, counts: [5, 0, 0, 1] }]));
    expect(hist.counts).toEqual([6, 2, 3, 5]);
    expect(hist.labels).toEqual(['10s', '1m', '1h', '>1h']);
  });

  it('is empty before any stats arrive', () => {
    expect(waitHistogram(null)).toEqual({ labels: [], counts: [] });
  });
});
