import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

import type { Sample } from '../stats';

interface Series {
  label: string;
  value: (s: Sample) => number;
  stroke: string;
}

/** One time-series chart (uPlot) over the console's stats history. */
function Chart({ title, series, history, testId }: { title: string; series: Series[]; history: Sample[]; testId: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  const data = (): uPlot.AlignedData => [history.map((s) => s.at / 1000), ...series.map((line) => history.map(line.value))];

  useEffect(() => {
    if (!box.current) return;
    const width = box.current.clientWidth || 480;
    plot.current = new uPlot(
      {
        title,
        width,
        height: 180,
        series: [{}, ...series.map((line) => ({ label: line.label, stroke: line.stroke, width: 2 }))],
        axes: [{}, { size: 50 }],
      },
      data(),
      box.current,
    );
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
    // The chart is made once; new samples go through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    plot.current?.setData(data());
  });

  return <div className="queue-chart" ref={box} data-testid={testId} />;
}

/** Waiting-room analytics: people waiting, and admissions per minute beside the admission rate
 *  (adaptive mode moves it), over the last two minutes. */
export function QueueCharts({ history }: { history: Sample[] }) {
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
    </div>
  );
}
