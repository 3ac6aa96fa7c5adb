import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

import type { Sample, WaitHistogram } from '../stats';

interface Series {
  label: string;
  value: (s: Sample) => number;
  stroke: string;
}

/** A uPlot chart in a box: made once (with the box's width) from ``options``, given new
 *  ``data`` on every render, destroyed with the component. Returns the box's ref. */
function usePlot(options: (width: number) => uPlot.Options, data: () => uPlot.AlignedData) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const made = new uPlot(options(element.clientWidth || 480), data(), element);
    plot.current = made;
    // The box follows the window (the panel's grid of charts): the chart follows the box, never
    // wider than its cell.
    const resized = new ResizeObserver(() => {
      const width = element.clientWidth;
      if (width > 0 && width !== made.width) made.setSize({ width, height: made.height });
    });
    resized.observe(element);
    return () => {
      resized.disconnect();
      made.destroy();
      plot.current = null;
    };
    // The chart is made once; new samples go through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    plot.current?.setData(data());
  });

  return box;
}

/** One time-series chart (uPlot) over the console's stats history. */
function Chart({ title, series, history, testId }: { title: string; series: Series[]; history: Sample[]; testId: string }) {
  const box = usePlot(
    (width) => ({
      title,
      width,
      height: 180,
      series: [{}, ...series.map((line) => ({ label: line.label, stroke: line.stroke, width: 2 }))],
      axes: [{}, { size: 50 }],
    }),
    () => [history.map((s) => s.at / 1000), ...series.map((line) => history.map(line.value))],
  );
  return <div className="queue-chart" ref={box} data-testid={testId} />;
}

/** The time-to-admission histogram (uPlot bars): admissions per waiting-time bucket. */
function WaitChart({ histogram }: { histogram: WaitHistogram }) {
  const labels = useRef<string[]>(histogram.labels);
  labels.current = histogram.labels;
  const box = usePlot(
    (width) => ({
      title: 'Time to admission',
      width,
      height: 180,
      scales: { x: { time: false, range: (_u, lo, hi) => [lo - 0.5, hi + 0.5] } },
      series: [{ label: 'waited', value: (_u, v) => (v == null ? '--' : (labels.current[v] ?? '')) }, { label: 'admitted', stroke: '#7c3aed', fill: 'rgba(124, 58, 237, 0.35)', width: 1, paths: uPlot.paths.bars?.({ size: [0.7, 60] }), points: { show: false } }],
      axes: [{ splits: () => labels.current.map((_, i) => i), values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? (labels.current[t] ?? '') : '')) }, { size: 50 }],
    }),
    () => [histogram.counts.map((_, i) => i), histogram.counts],
  );
  return <div className="queue-chart" ref={box} data-testid="chart-time-to-admission" />;
}

/** Waiting-room analytics: people waiting, admissions per minute beside the admission rate
 *  (adaptive mode moves it), abandonment (users who left or timed out) over the last two
 *  minutes, and how long admitted users waited (a histogram since the queues began). */
export function QueueCharts({ history, histogram }: { history: Sample[]; histogram: WaitHistogram }) {
  return (
    <div className="queue-charts">
      <Chart title="Waiting" testId="chart-waiting" history={history} series={[{ label: 'waiting', value: (s) => s.waiting, stroke: '#2563eb' }]} />
      <Chart
        title="Admissions"
        testId="chart-admissions"
        history={history}
        series={[
          { label: 'admitted / min', value: (s) => s.admittedPerMin, stroke: '#16a34a' },
          { label: 'rate / s', value: (s) => s.admissionRate, stroke: '#d97706' },
        ]}
      />
      <Chart title="Abandonment" testId="chart-abandonment" history={history} series={[{ label: 'left or timed out', value: (s) => s.abandoned, stroke: '#dc2626' }]} />
      <WaitChart histogram={histogram} />
    </div>
  );
}
