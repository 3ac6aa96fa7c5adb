"""Live seat maps (SPEC §6, §8): the one path of a seat change, from commit to socket.

::

    booking commit ─► SeatChange ─► SeatStream.record ─► sequencer (in process | Redis)
    every tick: sequencer.tick ─► SeatDelta ─► encode once ─► broker.publish (seq header)
                      ─► every node: SeatStream._on_delta ─► replay ring, seat map ─► fan-out

This module owns the stream: the hand-off of committed changes to the sequencer, the tick that
turns them into conflated deltas (at most one per event per tick: ``--seat-tick-ms``, widened for
a large audience, see :func:`tick_for`), the encoding of
snapshots and deltas (one function each, once per value), the hand-over to new subscribers and a
short replay ring of recent deltas per event. The sequencer (from the backplane) owns ``seq``.

A delta goes through the broker once: published on the event's seats topic, it reaches every node
(through Redis in a cluster), where this stream, registered as the route's handler, keeps it in the
ring, teaches the node's seat map the cluster's statuses (other nodes' changes among them), and
fans it out. A node decodes only deltas another node encoded; its own it still has as values.

A SUBSCRIBE is answered with a snapshot for that subscription alone, without a database query,
encoded once per ``seq``. The hand-over is gap-free and duplicate-free: the subscription is held
back from the route while the snapshot is fetched and sent. If this node has already received
the delta of the snapshot's ``seq``, then at once (no await between) any later delta is replayed
from the ring and the subscription joins the route. If not (in a cluster the snapshot is read
from Redis while deltas come by pub/sub), every delta this node will still receive is either that
one, already in the snapshot, or a later one: the subscription waits off the route, skips what
its snapshot holds, and joins with the first later delta. A client that sees a gap in ``seq`` anyway
(after a Redis outage, say) resubscribes and gets a fresh snapshot. Every seat-map MESSAGE carries
its ``seq`` in a header.

A SUBSCRIBE may carry ``resume-seq: N``, the last ``seq`` its client applied (after a lost
connection, on any node): when this node's ring holds every delta after ``N`` in an unbroken run,
the client gets them conflated into one delta (``"since": N``) instead of the snapshot, then joins
as above; otherwise the snapshot. Every node receives the same deltas, so each answers alike once
it has followed the event for as long as the ring reaches back (``--seat-replay-deltas``).

Deltas are conflated per subscriber too (SPEC §7: a slow consumer's seat-map deltas are conflated
before it is cut). The seats topic is a conflated route of the broker (:meth:`Broker.conflate`): a
subscriber whose client is behind after a delta is written to it (more than half its output budget,
``--slow-consumer-bytes``, unread) leaves the route, and is written no more deltas. Each tick
looks at those clients again; once one has read its backlog down to a quarter of the budget
(:data:`CATCH_UP_SHARE`), it gets a fresh snapshot, the deltas the ring holds past it, and joins
the route: the hand-over of a SUBSCRIBE, and a message every client already takes at any time
(a snapshot replaces its map). So a phone on a slow link gets fewer, larger updates instead of
being cut; only output that keeps growing past the whole budget (other topics, RECEIPTs, a
client that reads nothing while its other output grows) ends the session as a slow consumer.

Measured here: deltas published, the size of snapshots served, and the lag of each change this
node committed, from its commit (``SeatChange.committed_at``) to the fan-out of the first delta
that carries it. Which delta that is, the stream learns from the delta itself: the latest of
this node's unsent changes whose (first) seat the delta shows with that change's status, and
every change of this node before it (deltas keep commit order). In process every change is in
the next tick's delta; in a cluster, another node may produce it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from booking.clock import utcnow
from booking.errors import BookingError, NotFound
from booking.inventory import Inventory
from booking.seatmap import SeatChange, SeatStatuses
from protocol.errors import ProtocolError
from protocol.events import Subscription
from server.auth import Role
from server.broker import Broker, Subscriber
from server.destinations import classify, event_of
from server.engine import Message
from server.errors import UnknownEvent, stomp_error
from server.metrics import LiveMetrics
from server.seat_sequencer import SeatDelta, SeatSequencer, SeatSnapshot
from server.session import StompSession
from server.task_set import TaskSet

log = logging.getLogger(__name__)

CONTENT_TYPE = ("content-type", "application/json")
#: Deltas this node published and may not have received back yet, at most.
RING = 64
#: The SUBSCRIBE header naming the last ``seq`` a resuming client applied.
RESUME_HEADER = "resume-seq"
#: This node's changes per event waiting for their delta, at most (for the lag; a change no
#: delta ever carries, lost in a Redis outage, is dropped unmeasured past it).
UNSENT = 1024


#: A subscriber that fell behind is caught up once its unread output is at most this share of its
#: output budget: a quarter, so that with the catch-up snapshot (up to a quarter of the budget
#: more: some 10,000 seats at the default 1 MiB) it is still under the half that counts as
#: behind, and is not taken off again by the next delta.
CATCH_UP_SHARE = 4

#: The widest tick an audience makes (a ``--seat-tick-ms`` above it is kept as it is).
MAX_TICK_S = 1.0


def tick_for(tick_s: float, followers: int, budget: int) -> float:
    """The seat-map tick, in seconds, for a node with ``followers`` seat-map subscriptions.

    Each delta costs one socket write per follower, and on a small machine those writes are most
    of a node's CPU in an on-sale: at 10,000 followers, deltas every 100 ms take half of it and
    every request waits behind them. So the tick widens until the node writes at most ``budget``
    MESSAGEs a second (``--seat-delivery-budget``; 0: never widens), up to :data:`MAX_TICK_S`.
    Measured with the journey benchmark (docs/journey-runs.md): 10,000 followers at 100 ms put
    hold p99 at 282 to 373 ms; at 200 ms (the default budget's tick), under 100 ms.
    """
    if budget <= 0:
        return tick_s
    return max(tick_s, min(MAX_TICK_S, followers / budget))


def seats_route(event_id: int) -> str:
    return f"/topic/events/{event_id}/seats"


def encode_snapshot(snapshot: SeatSnapshot) -> bytes:
    return json.dumps(
        {"type": "snapshot", "event_id": snapshot.event_id, "seq": snapshot.seq,
         "seats": snapshot.seats},
        separators=(",", ":"),
    ).encode()  # fmt: skip


def encode_delta(delta: SeatDelta, tick_ms: int | None = None) -> bytes:
    """The delta's body; ``tick_ms``, when given, says how long this delta conflated (the tick
    widens while the previous delta is still being written: see :meth:`SeatStream.run`)."""
    body: dict[str, object] = {
        "type": "delta", "event_id": delta.event_id, "seq": delta.seq, "changes": delta.seats,
    }  # fmt: skip
    if tick_ms is not None:
        body["tick_ms"] = tick_ms
    return json.dumps(body, separators=(",", ":")).encode()


def encode_resume(event_id: int, since: int, seq: int, seats: SeatStatuses) -> bytes:
    """The answer to a resume: every seat changed after ``since``, as of ``seq``."""
    return json.dumps(
        {"type": "delta", "event_id": event_id, "seq": seq, "since": since, "changes": seats},
        separators=(",", ":"),
    ).encode()


def decode_delta(body: bytes) -> SeatDelta:
    """A delta another node encoded (:func:`encode_delta`'s inverse)."""
    data = json.loads(body)
    seats = tuple((str(seat), str(status)) for seat, status in data["changes"])
    return SeatDelta(int(data["event_id"]), int(data["seq"]), seats)


def headers_for(seq: int) -> tuple[tuple[str, str], ...]:
    return (CONTENT_TYPE, ("seq", str(seq)))


class SeatStream:
    def __init__(
        self,
        inventory: Inventory,
        broker: Broker,
        sequencer: SeatSequencer,
        tick_ms: int,
        metrics: LiveMetrics,
        *,
        replay_deltas: int = 600,
        delivery_budget: int = 0,
        audience: Callable[[], int] | None = None,
    ) -> None:
        """``audience``: the most seat-map followers on any one node of the cluster (default:
        this node's). Every node ticks at the pace it sets, so whichever node produces the deltas,
        the busiest node writes at most ``delivery_budget`` a second (see :func:`tick_for`)."""
        self.inventory = inventory
        self.broker = broker
        self.sequencer = sequencer
        self.tick_s = tick_ms / 1000
        self.metrics = metrics
        self.replay_deltas = replay_deltas
        self.delivery_budget = delivery_budget
        self.audience = audience or self.followers
        #: Changes this node committed that no delta carried yet, per event, in commit order:
        #: (committed at, first seat, its status).
        self._unsent: dict[int, deque[tuple[datetime, str, str]]] = {}
        #: Recent deltas per followed event (``--seat-replay-deltas``): (seq, encoded body,
        #: seats), for subscribers whose snapshot was in flight and for resumes.
        self._recent: dict[int, deque[tuple[int, bytes, SeatStatuses]]] = {}
        #: Deltas this node published and has not yet received back, as values.
        self._published: dict[tuple[int, int], SeatDelta] = {}
        #: The latest snapshot value per event, encoded.
        self._encoded: dict[int, tuple[SeatSnapshot, bytes]] = {}
        #: Resume answers per event since its latest delta, by the seq resumed from: a node's
        #: clients reconnecting together mostly resume from one seq (encoded once, then).
        self._resumes: dict[int, dict[int, tuple[int, bytes]]] = {}
        #: The seq of the latest delta this node received, per event.
        self._latest: dict[int, int] = {}
        #: Subscriptions whose snapshot is ahead of the deltas this node has received.
        self._waiting: dict[int, list[_Joiner]] = {}
        #: Subscriptions taken off their route because their client fell behind (the broker's
        #: conflation), waiting for it to read its backlog; ``seq``: unused (0).
        self._behind: dict[Subscription, _Joiner] = {}
        self._hand_overs = TaskSet()
        inventory.listen(self.record)

    # -- changes in, deltas out --------------------------------------------------------------

    def record(self, change: SeatChange) -> None:
        """The booking core's listener: a change this node committed."""
        self.sequencer.record(change)
        unsent = self._unsent.get(change.event_id)
        if unsent is None:
            unsent = self._unsent[change.event_id] = deque(maxlen=UNSENT)
        seat, status = change.seats[0]
        unsent.append((change.committed_at, seat, status))

    async def run(self) -> None:
        """Every tick, ask each loaded event for its delta; publish what comes, once.

        The conflation tick widens with the audience, twice over: it is longer for more
        followers (:func:`tick_for`), and the next tick waits until the broker has written the
        previous deltas to every local subscriber (:meth:`Broker.drained`), so a delta is never
        queued behind the one still going out, and more changes ride in each delta instead.
        Each delta says how long it conflated (``tick_ms``); clients need not care.
        """
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(tick_for(self.tick_s, self.audience(), self.delivery_budget))
            await self.broker.drained()
            now = loop.time()
            tick_ms = round((now - last) * 1000)
            last = now
            for info in self.inventory.loaded():
                self._follow(info.id)
                try:
                    delta = await self.sequencer.tick(info.id)
                except Exception:
                    log.exception("seat tick of event %d failed", info.id)
                    continue
                if delta is not None:
                    self._publish(delta, tick_ms)
            if self._behind:
                self._catch_up()

    def followers(self) -> int:
        """This node's subscriptions to the seat maps of the events it follows."""
        count = self.broker.subscriber_count
        return sum(count(seats_route(event_id)) for event_id in self._recent)

    def _follow(self, event_id: int) -> None:
        """Receive this event's deltas on this node, subscribers or not (the seat map and the
        ring need them)."""
        if event_id not in self._recent:
            self._recent[event_id] = deque(maxlen=self.replay_deltas)
            route = seats_route(event_id)
            self.broker.listen(route, functools.partial(self._on_delta, event_id))
            self.broker.conflate(route, functools.partial(self._fell_behind, event_id))

    def _publish(self, delta: SeatDelta, tick_ms: int) -> None:
        if len(self._published) > RING:  # deltas lost on the way (Redis outage) never return
            self._published.clear()
        self._published[(delta.event_id, delta.seq)] = delta
        self.broker.publish(
            seats_route(delta.event_id), headers_for(delta.seq), encode_delta(delta, tick_ms)
        )
        self.metrics.deltas.inc()

    def _on_delta(self, event_id: int, message: Message) -> None:
        seq = int(dict(message.headers)["seq"])
        delta = self._published.pop((event_id, seq), None) or decode_delta(message.body)
        self.inventory.learn(event_id, delta.seats, utcnow())
        self._recent[event_id].append((seq, message.body, delta.seats))
        self._resumes.pop(event_id, None)
        self.broker.fan_out(message, sliced=True)  # every buyer follows it: yield to booking
        self._latest[event_id] = seq
        waiting = self._waiting.get(event_id)
        if waiting:
            ready = [j for j in waiting if j.seq < seq]
            waiting[:] = [j for j in waiting if j.seq >= seq]
            for joiner in ready:
                self._join(joiner)
        unsent = self._unsent.get(event_id)
        if unsent:
            self._sent(unsent, delta.seats)

    def _sent(self, unsent: deque[tuple[datetime, str, str]], seats: SeatStatuses) -> None:
        """Observe the lag of this node's changes that the delta of ``seats`` carried."""
        statuses = dict(seats)
        carried = 0
        for index in range(len(unsent) - 1, -1, -1):
            _, seat, status = unsent[index]
            if statuses.get(seat) == status:
                carried = index + 1
                break
        if not carried:
            return
        now = utcnow()
        observe = self.metrics.delta_lag.observe
        for _ in range(carried):
            observe((now - unsent.popleft()[0]).total_seconds())

    # -- snapshots and subscribers -----------------------------------------------------------

    async def snapshot(self, event_id: int) -> tuple[int, bytes]:
        """``(seq, encoded snapshot)``, encoded once per snapshot value however many ask (each
        one served, to a subscriber or ``GET .../seats``, counts in the size histogram)."""
        snapshot = await self.sequencer.snapshot(event_id)
        cached = self._encoded.get(event_id)
        if cached is None or cached[0] is not snapshot:
            cached = self._encoded[event_id] = (snapshot, encode_snapshot(snapshot))
        self.metrics.snapshot_size.observe(len(cached[1]))
        return snapshot.seq, cached[1]

    def on_subscribe(
        self, session: StompSession, subscription: Subscription, route: str
    ) -> asyncio.Task[None]:
        """Start the hand-over; the SUBSCRIBE's RECEIPT waits for it (the snapshot is out, or
        the event does not exist: the ERROR, which names the receipt, comes instead)."""
        dest = classify(subscription.destination)
        event = event_of(dest)
        if event is None:
            key = dest.key if dest else None
            raise UnknownEvent("unknown event", f"no event {key!r}")
        # Held back from the route until its snapshot is out (see the module docstring).
        self.broker.unsubscribe(session, subscription)
        return self._hand_overs.start(self._hand_over(session, subscription, event, route))

    async def _hand_over(
        self, session: StompSession, subscription: Subscription, event_id: int, route: str
    ) -> None:
        try:
            info = await self.inventory.event(event_id)
            if info.status == "draft" and session.principal.role is not Role.ADMIN:
                raise NotFound(f"no event {event_id}")  # drafts are for admins only
            self._follow(event_id)  # listen before reading: later deltas will reach this node
            seq, snapshot = await self.snapshot(event_id)
        except BookingError as error:
            raise stomp_error(error) from None
        except Exception:
            log.exception("snapshot of event %d failed", event_id)
            raise ProtocolError("internal error", "the seat map is unavailable") from None
        if not _subscribed(session, subscription):
            return  # gone or unsubscribed meanwhile
        resumed = self._resume(session, subscription, event_id, seq)
        if resumed is None:
            if subscription_header(subscription, RESUME_HEADER) is not None:
                self.metrics.resumes.labels("snapshot").inc()
            self.broker.send_to(session, subscription, headers_for(seq), snapshot)
        start = seq if resumed is None else resumed
        self._admit(_Joiner(session, subscription, route, event_id, start), seq)

    def _admit(self, joiner: _Joiner, seq: int) -> None:
        """The joiner's first message is out (as of ``seq``, the snapshot's): join the route now,
        or once this node has received the deltas up to it."""
        if joiner.seq == 0 or self._latest.get(joiner.event_id, -1) >= max(seq, joiner.seq):
            self._join(joiner)  # nothing is on its way
        else:  # those gone meanwhile leave the queue as another arrives (it stays bounded)
            waiting = self._waiting.setdefault(joiner.event_id, [])
            waiting[:] = [j for j in waiting if _subscribed(j.session, j.subscription)]
            waiting.append(joiner)

    # -- subscribers that fall behind --------------------------------------------------------

    def _fell_behind(self, event_id: int, session: Subscriber, subscription: Subscription) -> None:
        """The broker took this subscription off the event's route: its client is behind."""
        if isinstance(session, StompSession):
            self._behind[subscription] = _Joiner(
                session, subscription, seats_route(event_id), event_id, 0
            )

    def _catch_up(self) -> None:
        """Bring back every subscriber whose client has read its backlog (see the module
        docstring), one subscription of a session a tick (each brings a snapshot); forget
        those gone or unsubscribed meanwhile."""
        caught_up: set[StompSession] = set()
        for subscription, joiner in tuple(self._behind.items()):
            session = joiner.session
            if not _subscribed(session, subscription):
                del self._behind[subscription]
            elif session not in caught_up and (
                session.queued_bytes() <= session.output_budget // CATCH_UP_SHARE
            ):
                caught_up.add(session)
                del self._behind[subscription]
                self._hand_overs.start(self._rejoin(joiner))

    async def _rejoin(self, joiner: _Joiner) -> None:
        """A fresh snapshot for a subscriber that was behind, then the route, as on SUBSCRIBE."""
        try:
            seq, snapshot = await self.snapshot(joiner.event_id)
        except Exception:
            # The backplane's outage, logged where it is seen: try again next tick.
            log.debug("seat map %d: no snapshot to catch up with", joiner.event_id, exc_info=True)
            self._behind[joiner.subscription] = joiner
            return
        if not _subscribed(joiner.session, joiner.subscription):
            return
        self.broker.send_to(joiner.session, joiner.subscription, headers_for(seq), snapshot)
        self.metrics.catch_ups.inc()
        joiner.seq = seq
        self._admit(joiner, seq)

    def _resume(
        self, session: StompSession, subscription: Subscription, event_id: int, current: int
    ) -> int | None:
        """Answer a SUBSCRIBE carrying ``resume-seq: N`` with one delta of every seat changed
        after ``N`` (``"since": N``), from this node's ring; returns the ``seq`` that delta
        brings the client to. ``None`` (the caller sends a snapshot) when there is no such
        header, or ``N`` is not one this stream can continue from: newer than the cluster's
        ``current`` seq, or older than the ring (or this node's deltas start after it)."""
        wanted = subscription_header(subscription, RESUME_HEADER)
        if wanted is None or not wanted.isdigit() or len(wanted) > 18:
            return None
        since = int(wanted)
        if since > current:
            return None
        latest = self._latest.get(event_id)
        if since < current and latest is None:
            return None  # this node has not received a delta of this event: it cannot vouch
        answers = self._resumes.setdefault(event_id, {})
        answer = answers.get(since)  # valid until the next delta (which clears them)
        if answer is None:
            later = [(s, seats) for s, _, seats in self._recent.get(event_id, ()) if s > since]
            reached = latest if latest is not None and latest > since else since
            # The ring must hold every delta after it (not too old, no jump). The length is
            # compared first: seqs start from the clock, so a client's ``resume-seq: 1`` is a
            # trillion deltas ago, a range that must never be built.
            seqs = [s for s, _ in later]
            if len(seqs) != reached - since or seqs != list(range(since + 1, reached + 1)):
                return None
            changes: dict[str, str] = {}
            for _, seats in later:
                changes.update(seats)
            body = encode_resume(event_id, since, reached, tuple(changes.items()))
            if len(answers) < self.replay_deltas:
                answers[since] = (reached, body)
        else:
            reached, body = answer
        self.broker.send_to(session, subscription, headers_for(reached), body)
        self.metrics.resumes.labels("delta").inc()
        return reached

    def _join(self, joiner: _Joiner) -> None:
        """Replay what the ring holds past the joiner's snapshot, then join the route."""
        session, subscription = joiner.session, joiner.subscription
        if not _subscribed(session, subscription):
            return
        for delta_seq, delta, _ in self._recent[joiner.event_id]:
            if delta_seq > joiner.seq:
                self.broker.send_to(session, subscription, headers_for(delta_seq), delta)
        self.broker.subscribe(session, subscription, joiner.route)


@dataclass(eq=False)
class _Joiner:
    """A subscription whose snapshot was sent, waiting to join its event's route."""

    session: StompSession
    subscription: Subscription
    route: str
    event_id: int
    #: The snapshot's seq: deltas up to it are in the snapshot.
    seq: int


def subscription_header(subscription: Subscription, name: str) -> str | None:
    return next((v for k, v in subscription.headers if k == name), None)


def _subscribed(session: StompSession, subscription: Subscription) -> bool:
    return not session.closed and session.conn.subscriptions.get(subscription.id) is subscription
