"""``/queue/{name}``: point-to-point destinations with acknowledgements (SPEC §4).

The durable half is the backplane's :class:`~server.queue_store.QueueStore`; this module is the
node-local half, :class:`QueueBroker`: it stores what sessions SEND and hands stored messages to
this node's subscribers of each queue.

* Each message goes to one subscriber: round-robin over the subscribers that have room. A
  subscription's room is its ``prefetch-count`` (SUBSCRIBE header; default
  ``--queue-prefetch``, at most ``--max-unacked``) minus its unsettled messages.
* ``ack:auto`` settles a message when it is written to the subscriber; ``client`` and
  ``client-individual`` settle on ACK (``client`` cumulatively, as ``protocol/`` resolves it).
* NACK, UNSUBSCRIBE and a lost connection put unsettled messages back at the head of the queue;
  they come again with ``redelivered:true``.
* One pump task per queue with subscribers on this node takes messages from the store as room
  appears; it wakes on a SEND anywhere in the cluster (an arrival notice on the backplane-internal
  route :data:`ARRIVALS`), on an ACK or NACK, on a new subscriber, and every ``--queue-poll-s``
  (to pick up what a dead node held, and to drop messages past their age).
* Storing is batched: what arrives in one event-loop turn (a COMMIT's SENDs) is stored together,
  in order, by one writer task; a SEND's future resolves once its message is stored, which is
  when its RECEIPT goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from protocol.codec import encode_message
from protocol.connection import ack_id
from protocol.errors import MalformedFrame
from protocol.events import AckMode, Subscription
from protocol.frames import StompVersion
from server.broker import Broker, Subscriber
from server.engine import Message
from server.errors import QueueFullError
from server.metrics import BrokerMetrics
from server.queue_store import Outgoing, Queued, QueuePolicy, QueueStore
from server.task_set import TaskSet

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Backplane-internal route of arrival notices (header ``queue``: the queue that has new messages).
ARRIVALS = "/_internal/queues/arrivals"
PREFETCH_HEADER = "prefetch-count"
#: How long a stopping node lets store operations under way finish.
FINISH_S = 1.5
REDELIVERED = ("redelivered", "true")


class QueueSubscriber(Subscriber, Protocol):
    """What a queue's consumer needs besides a broker subscriber's."""

    @property
    def gone(self) -> bool:
        """True once a message written to it would be lost (see ``StompSession.gone``)."""
        ...


@dataclass(eq=False, slots=True)
class _Consumer:
    session: QueueSubscriber
    subscription: Subscription
    queue: str
    prefetch: int
    #: Message ids written and not yet settled, oldest first (client modes only).
    unsettled: dict[str, None] = field(default_factory=dict)
    #: How many NACKed messages are on their way back to the store. Their slots stay taken
    #: until they are back: a take in between would deliver the messages behind them first.
    returning: int = 0

    @property
    def tracked(self) -> bool:
        return self.subscription.ack is not AckMode.AUTO

    def settle(self, message_ids: list[str]) -> list[str]:
        """Forget these messages as unsettled; those that were."""
        settled = [i for i in message_ids if i in self.unsettled]
        for message_id in settled:
            del self.unsettled[message_id]
        return settled

    @property
    def room(self) -> int:
        # A session whose peer has gone gets nothing: an ``ack:auto`` message written to it
        # would be settled, and lost.
        if self.session.gone:
            return 0
        if not self.tracked:
            return self.prefetch
        # Prefetch counts are each within --max-unacked, but a session's subscriptions may add
        # up to more: the session's own budget is the bound too (one more would end it).
        conn = self.session.conn
        budget = conn.limits.max_unacked - conn.unacked
        return min(self.prefetch - len(self.unsettled) - self.returning, budget)


async def _then_give_back(work: Awaitable[None], consumer: _Consumer, slots: int) -> None:
    """``work`` (putting NACKed messages back), then ``consumer``'s ``slots`` free again."""
    try:
        await work
    finally:
        consumer.returning -= slots


@dataclass(eq=False, slots=True)
class _LocalQueue:
    name: str
    consumers: list[_Consumer] = field(default_factory=list)
    turn: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pump: asyncio.Task[None] | None = None


class QueueBroker:
    def __init__(
        self,
        store: QueueStore,
        broker: Broker,
        metrics: BrokerMetrics,
        policy: QueuePolicy,
        *,
        default_prefetch: int,
        max_unacked: int,
        poll_s: float,
    ) -> None:
        self.store = store
        self.broker = broker
        self._outcomes = metrics.queue_messages
        self._messages_out = metrics.frames_out.labels("MESSAGE")
        self._deliveries = metrics.deliveries
        self.policy = policy
        self.default_prefetch = default_prefetch
        self.max_unacked = max_unacked
        self.poll_s = poll_s
        self._queues: dict[str, _LocalQueue] = {}
        self._consumers: dict[Subscription, _Consumer] = {}
        self._writes: list[tuple[Outgoing, asyncio.Future[None]]] = []
        self._write_wake = asyncio.Event()
        #: Store operations under way (a stop waits for them).
        self._tasks = TaskSet()
        self._stopping = False
        broker.listen(ARRIVALS, self._on_arrival)

    async def run(self) -> None:
        """The writer and the lease renewal, until cancelled. Then the pumps stop taking, and
        store operations under way are let finish (a database call cut in the middle can leave
        its driver's thread behind), for up to :data:`FINISH_S`."""
        renew = asyncio.create_task(self._renew_leases(), name="queue-leases")
        try:
            await self._write_loop()
        finally:
            renew.cancel()
            self._stopping = True
            pumps = [q.pump for q in self._queues.values() if q.pump is not None]
            for queue in self._queues.values():
                queue.wake.set()
            loop = asyncio.get_running_loop()
            until = loop.time() + FINISH_S
            if pumps:
                await asyncio.wait(pumps, timeout=FINISH_S)
            await self._tasks.finish(until - loop.time())

    # -- sending ------------------------------------------------------------------------------

    def send(
        self,
        queue: str,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
        dedupe: str | None = None,
        group: object | None = None,
    ) -> asyncio.Future[None]:
        """Store a message; the future resolves once it is stored (raises
        :class:`~server.errors.QueueFullError` when refused). Messages sent one after another
        with the same ``group`` (a COMMIT's) are stored all or none (they reach the store in
        one batch: nothing yields between them)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writes.append((Outgoing(queue, headers, body, dedupe, group), future))
        self._write_wake.set()
        return future

    async def _write_loop(self) -> None:
        while True:
            await self._write_wake.wait()
            self._write_wake.clear()
            batch, self._writes = self._writes, []
            if not batch:
                continue
            appending = self._tasks.start(self.store.append([m for m, _ in batch]))
            try:
                # Shielded: a stop lets the batch finish storing (see run()).
                stored = await asyncio.shield(appending)
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:
                log.exception("storing %d queue messages failed", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            arrived: set[str] = set()
            for (message, future), ok in zip(batch, stored, strict=True):
                if ok:
                    arrived.add(message.queue)
                    self._outcomes.labels("stored").inc()
                    if not future.done():
                        future.set_result(None)
                else:
                    self._outcomes.labels("refused").inc()
                    if not future.done():
                        future.set_exception(
                            QueueFullError(
                                "queue full",
                                f"{message.queue!r} holds {self.policy.max_length} messages",
                            )
                        )
            for name in sorted(arrived):
                self.broker.publish(ARRIVALS, (("queue", name),), b"")

    def _on_arrival(self, message: Message) -> None:
        for name, value in message.headers:
            if name == "queue":
                local = self._queues.get(value)
                if local is not None:
                    local.wake.set()

    # -- subscriptions ------------------------------------------------------------------------

    def subscribe(self, session: QueueSubscriber, subscription: Subscription, queue: str) -> None:
        prefetch = self.default_prefetch
        for name, value in subscription.headers:
            if name == PREFETCH_HEADER:
                if not (value.isascii() and value.isdigit() and 0 < len(value) <= 9):
                    raise MalformedFrame(
                        "invalid prefetch-count",
                        f"prefetch-count {value[:32]!r} is not a number",
                    )
                # 0 is RabbitMQ's "unlimited": here, as many as a session may leave unacked.
                prefetch = int(value) or self.max_unacked
        consumer = _Consumer(session, subscription, queue, min(prefetch, self.max_unacked))
        self._consumers[subscription] = consumer
        local = self._queues.get(queue)
        if local is None:
            local = self._queues[queue] = _LocalQueue(queue)
        local.consumers.append(consumer)
        if local.pump is None or local.pump.done():
            local.pump = asyncio.create_task(self._pump(local), name=f"queue-pump {queue}")
        local.wake.set()

    def unsubscribe(self, subscription: Subscription) -> None:
        """The subscription ended (UNSUBSCRIBE, DISCONNECT, lost connection): its unsettled
        messages go back to the head of the queue."""
        consumer = self._consumers.pop(subscription, None)
        if consumer is None:
            return
        local = self._queues[consumer.queue]
        local.consumers.remove(consumer)
        if not local.consumers:
            # Its pump ends and forgets the queue (not cancelled: it may be inside a store
            # call). Until then a new subscriber joins this queue and its pump: a second pump
            # would take newer messages while this one's take, answered once its subscribers
            # left, puts older ones back behind them.
            local.wake.set()
            if local.pump is None or local.pump.done():
                del self._queues[consumer.queue]
        if consumer.unsettled:
            self._requeue(consumer.queue, list(consumer.unsettled), local)
            consumer.unsettled.clear()

    # -- settlement ---------------------------------------------------------------------------

    def ack(self, subscription: Subscription, message_ids: list[str]) -> Awaitable[None] | None:
        """ACK of ``message_ids``; an awaitable that is done once the store forgot them."""
        consumer = self._consumers.get(subscription)
        if consumer is None:
            return None
        ids = consumer.settle(message_ids)
        self._outcomes.labels("acked").inc(len(ids))
        self._queues[consumer.queue].wake.set()
        return self._spawn(self.store.settle(consumer.queue, ids)) if ids else None

    def nack(self, subscription: Subscription, message_ids: list[str]) -> Awaitable[None] | None:
        """NACK of ``message_ids``: back at the head of the queue, redelivered."""
        consumer = self._consumers.get(subscription)
        if consumer is None:
            return None
        ids = consumer.settle(message_ids)
        if not ids:
            return None
        consumer.returning += len(ids)
        return self._requeue(consumer.queue, ids, self._queues[consumer.queue], consumer)

    def _requeue(
        self, queue: str, ids: list[str], local: _LocalQueue | None, by: _Consumer | None = None
    ) -> asyncio.Task[None]:
        """Delivered messages back to the queue (NACK, a subscription's end), redelivered; a
        NACK ``by`` a consumer has taken their slots in its ``returning``, given back here."""
        self._outcomes.labels("requeued").inc(len(ids))
        release = self.store.release(queue, ids)
        if by is not None:
            release = _then_give_back(release, by, len(ids))
        return self._return(queue, release, local)

    def _return(
        self, queue: str, putting_back: Awaitable[None], local: _LocalQueue | None
    ) -> asyncio.Task[None]:
        """Once ``putting_back`` put messages back, wake whoever may take them."""

        async def returned() -> None:
            await putting_back
            if local is not None and local.consumers:
                local.wake.set()
            # Other nodes' subscribers may take them too.
            self.broker.publish(ARRIVALS, (("queue", queue),), b"")

        return self._spawn(returned())

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        async def logged() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("queue store operation failed")
                raise

        return self._tasks.start(logged())

    # -- delivery -----------------------------------------------------------------------------

    async def _pump(self, local: _LocalQueue) -> None:
        try:
            await self._pump_while_subscribed(local)
        finally:
            if not local.consumers and self._queues.get(local.name) is local:
                del self._queues[local.name]

    async def _pump_while_subscribed(self, local: _LocalQueue) -> None:
        while local.consumers and not self._stopping:
            local.wake.clear()
            room = sum(c.room for c in local.consumers)
            taken: list[Queued] = []
            if room:
                try:
                    taken = await self.store.take(local.name, room)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("taking from queue %s failed", local.name)
            if taken:
                self._dispatch(local, taken)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await local.wake.wait()

    def _dispatch(self, local: _LocalQueue, taken: list[Queued]) -> None:
        auto: list[str] = []
        back: list[Queued] = []
        for message in taken:
            consumer = self._next_with_room(local)
            if consumer is None:  # its subscribers left while the store answered
                back.append(message)
                continue
            self._deliver(consumer, message)
            if not consumer.tracked:
                auto.append(message.id)
        if auto:
            self._outcomes.labels("acked").inc(len(auto))
            self._spawn(self.store.settle(local.name, auto))
        if back:
            self._return(local.name, self.store.give_back(local.name, back), local)

    def _next_with_room(self, local: _LocalQueue) -> _Consumer | None:
        consumers = local.consumers
        for _ in range(len(consumers)):
            consumer = consumers[local.turn % len(consumers)]
            local.turn = (local.turn + 1) % len(consumers)
            if consumer.room > 0:
                return consumer
        return None

    def _deliver(self, consumer: _Consumer, message: Queued) -> None:
        session = consumer.session
        subscription = consumer.subscription
        version = session.conn.version or StompVersion.V1_0
        tracked = consumer.tracked
        headers = (*message.headers, REDELIVERED) if message.redelivered else message.headers
        payload = session.framing(
            encode_message(
                version,
                destination=subscription.destination,
                subscription=subscription.id,
                message_id=message.id,
                ack=ack_id(subscription.id, message.id)
                if tracked and version is StompVersion.V1_2
                else None,
                headers=headers,
                body=message.body,
            )
        )
        if tracked:
            consumer.unsettled[message.id] = None
            session.push_tracked(payload, subscription, message.id)
        else:
            session.push(payload)
        self._outcomes.labels("redelivered" if message.redelivered else "delivered").inc()
        self._deliveries.inc()
        self._messages_out.inc()

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.policy.lease_s / 3)
            for local in tuple(self._queues.values()):
                ids = [i for c in local.consumers for i in c.unsettled]
                if ids:
                    try:
                        await self.store.keep(local.name, ids)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("renewing the lease of queue %s failed", local.name)
