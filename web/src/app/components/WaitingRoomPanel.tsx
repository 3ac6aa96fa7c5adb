import { useEffect, useState } from 'react';

import { waitEstimate } from '../../shared/format';
import { inLine, type QueueStatsMessage } from '../../shared/types';
import { live } from '../live';
import { seatWords } from '../seats';
import { useShop } from '../shop';
import { timeOfDay } from '../waitingRoom';

/** The event's waiting room: join, watch your place, get admitted. */
export function WaitingRoomPanel({ eventId }: { eventId: number }) {
  const queue = useShop((s) => s.queue);
  const queueKnown = useShop((s) => s.queueKnown);
  const admission = useShop((s) => s.admission);
  const busy = useShop((s) => s.busy);
  const join = useShop((s) => s.join);
  const proofProgress = useShop((s) => s.proofProgress);
  const event = useShop((s) => s.event);
  const [stats, setStats] = useState<QueueStatsMessage | null>(null);

  useEffect(() => {
    const subscription = live.subscribe(`/topic/events/${eventId}/queue`, (body) => {
      try {
        setStats(JSON.parse(body) as QueueStatsMessage);
      } catch {
        // not for us
      }
    });
    return () => subscription.unsubscribe();
  }, [eventId]);

  const state = queue?.state ?? null;
  const admitted = state === 'admitted' && admission !== null;
  const waiting = inLine(state);
  const preQueue = waiting && queue?.position === null;
  const canJoin = queueKnown && !admitted && !waiting;

  return (
    <section className={`card queue queue--${state ?? 'none'}`} aria-labelledby="queue-title">
      <h2 id="queue-title" className="card__title">
        Waiting room
      </h2>
      {/* One live region for the whole life of the panel: screen readers announce changes only in
          a region that was already there, so the position, the status and the admission are all
          rendered inside it rather than each in a region of its own that comes and goes. */}
      <div className="queue__live" aria-live="polite" data-testid="queue-live">
        {queue && (
          <p className="queue__state">
            Status:{' '}
            <span className={`badge badge--state-${queue.state}`} data-testid="queue-state">
              {queue.state}
            </span>
          </p>
        )}
        {state === null && !queueKnown && <p className="muted">Checking your place…</p>}
        {state === null && queueKnown && <p>This sale uses a waiting room so everyone gets a fair chance. Join the queue; you can hold seats once it is your turn.</p>}
        {state === 'paused' && (
          <p className="queue__sale" data-testid="queue-sale">
            Every seat is held right now. Some may come back: stay in line and they are offered in queue order.
          </p>
        )}
        {state === 'sold_out' && (
          <p className="queue__sale" data-testid="queue-sale">
            Sold out. You keep your place on the waiting list and are told if seats come back.
          </p>
        )}
        {waiting && (
          <div className="queue__position">
            <div className="queue__number" data-testid="queue-position">
              {queue?.position ?? ''}
            </div>
            {preQueue ? (
              <p>You are in the pre-queue. When the sale opens, everyone in it gets a random place in line.</p>
            ) : (
              <p>
                Your place in line
                {queue && queue.ahead !== null && (
                  <>
                    {' '}
                    — {queue.ahead === 0 ? 'you are next' : `${queue.ahead.toLocaleString('en')} ahead of you`}
                  </>
                )}
                {state === 'waiting' && (
                  <>
                    . Estimated wait: <span data-testid="queue-eta">{waitEstimate(queue?.eta_seconds)}</span>
                  </>
                )}
                .
              </p>
            )}
            <div className="spinner-line" aria-hidden="true" />
          </div>
        )}
        {admitted && (
          <p className="queue__admitted">
            It’s your turn! Pick your seats and hold them before your admission ends at <strong>{timeOfDay(admission.expiresAt)}</strong>.
          </p>
        )}
        {admitted && queue?.offer && (
          <p className="queue__offer" data-testid="queue-offer">
            Seats came back for you: {queue.offer.seats.map((id) => seatWords(event, id)).join(', ')}, on hold until <strong>{timeOfDay(queue.offer.expires_at)}</strong>.
          </p>
        )}
        {state === 'expired' && <p>Your admission expired before you bought tickets. You can join the queue again.</p>}
        {state === 'closed' && <p>You used your admission for a purchase. To buy more, join the queue again.</p>}
      </div>
      {proofProgress !== null && (
        <div className="queue__proof" aria-live="polite">
          <p className="small">Proving you are not a bot army: your device does a little work before you join (it keeps bots from taking many places).</p>
          <progress max={1} value={proofProgress} data-testid="pow-progress" aria-label="Proof of work" />
        </div>
      )}
      {canJoin && (
        <button type="button" className="button button--primary button--wide" data-testid="join-queue" onClick={() => void join()} disabled={busy === 'join'}>
          {busy === 'join' ? 'Joining…' : state === null ? 'Join the queue' : 'Join the queue again'}
        </button>
      )}
      {stats && (
        <p className="queue__stats muted">
          {stats.waiting.toLocaleString('en')} waiting · about {Math.round(stats.admitted_per_min).toLocaleString('en')} admitted per minute
        </p>
      )}
    </section>
  );
}
