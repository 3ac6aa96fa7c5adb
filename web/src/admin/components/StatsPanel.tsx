import { useStats, waitHistogram } from '../stats';
import { QueueCharts } from './QueueCharts';
import { Sparkline } from './Sparkline';
import { TableWrap } from './TableWrap';

function Figure({ label, value, testId }: { label: string; value: number | string; testId?: string }) {
  return (
    <div className="figure">
      <div className="figure__value" data-testid={testId}>
        {value}
      </div>
      <div className="figure__label">{label}</div>
    </div>
  );
}

/** Connections, queues, holds and sales, refreshed every 2 s. */
export function StatsPanel() {
  const { latest, history, error, updatedAt } = useStats();
  const waiting = latest?.events.reduce((sum, e) => sum + (e.queue?.waiting ?? 0), 0) ?? 0;
  return (
    <section className="card" id="stats" aria-labelledby="stats-title">
      <div className="card__head">
        <h2 id="stats-title" className="card__title">
          Live statistics
        </h2>
        <span className="muted small">{updatedAt ? `updated ${new Date(updatedAt).toLocaleTimeString('en-GB')}` : 'loading…'}</span>
      </div>
      {error && (
        <p className="message message--error" role="alert">
          Stats unavailable: {error}
        </p>
      )}
      <div className="figures">
        <Figure label="Connections" value={latest?.connections ?? '–'} testId="stats-connections" />
        <Figure label="Subscriptions" value={latest?.subscriptions ?? '–'} />
        <Figure label="In queues" value={latest ? waiting : '–'} testId="stats-queue" />
        <Figure label="Active holds" value={latest?.holds_active ?? '–'} testId="stats-holds" />
        <Figure label="Sales / min" value={latest?.sales_per_min ?? '–'} testId="stats-sales" />
      </div>
      <div className="chart">
        <div className="chart__title small muted">Sales per minute, last 2 minutes</div>
        <Sparkline values={history.map((s) => s.salesPerMin)} label="Sales per minute" />
      </div>
      <QueueCharts history={history} histogram={waitHistogram(latest)} />
      {latest && latest.events.length > 0 && (
        <TableWrap label="Per event" stickyFirst>
          <table className="table">
            <caption className="visually-hidden">Per event</caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col">Available</th>
                <th scope="col">Held</th>
                <th scope="col">Sold</th>
                <th scope="col">Holds</th>
                <th scope="col">Waiting</th>
                <th scope="col">Shopping</th>
                <th scope="col">Admitting</th>
              </tr>
            </thead>
            <tbody>
              {latest.events.map((e) => (
                <tr key={e.event_id}>
                  <td className="table__text">
                    #{e.event_id} {e.name}
                  </td>
                  <td>
                    <span className={`badge badge--status-${e.status}`}>{e.status.replace('_', ' ')}</span>
                  </td>
                  <td>{e.seats.available ?? 0}</td>
                  <td>{e.seats.held ?? 0}</td>
                  <td>{e.seats.sold ?? 0}</td>
                  <td>{e.holds_active}</td>
                  <td>{e.queue ? e.queue.waiting : '—'}</td>
                  <td>{e.queue ? e.queue.active : '—'}</td>
                  <td data-testid={`stats-rate-${e.event_id}`}>
                    {e.queue?.admission_rate != null ? `${e.queue.admission_rate.toLocaleString('en', { maximumFractionDigits: 2 })}/s` : '—'}
                    {e.queue?.rate_reason && <div className="muted small table__note">{e.queue.rate_reason}</div>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
    </section>
  );
}
