"""``/queue/{name}``: point-to-point destinations with acknowledgements (SPEC §4).

The durable half is the backplane's :class:`~server.queue_store.QueueStore`; this module is the
node-local half, :class:`QueueBroker`: it stores what sessions SEND and hands stored messages to
this node's subscribers of each queue.

* Each message goes to one subscriber: round-robin over the subscribers that have room. A
  subscription's room is its ``prefetch-count`` (SUBSCRIBE header; default
  ``--queue-prefetch``, at most ``--max-unacked``) minus its unsettled messages, and none at all
  while its session has more than half its output budget (``--slow-consumer-bytes``) unread
  (flow control): the messages stay in the store until the client reads, so a consumer that
  reads is never cut as a slow consumer, and one that stops loses no more than what was
  already written to it (``ack:auto``).
* ``ack:auto`` settles a message when it is written to the subscriber; ``client`` and
  ``client-individual`` settle on ACK (``client`` cumulatively, as ``protocol/`` resolves it).
* NACK, UNSUBSCRIBE and a lost connection put unsettled messages back at the head of the queue;
  they come again with ``redelivered:true``.
* One pump task per queue with subscribers on this node takes messages from the store as room
  appears; it wakes on a SEND anywhere in the cluster (an arrival notice on the backplane-internal
  route :data:`ARRIVALS`), on an ACK or NACK, on a new subscriber, and every ``--queue-poll-s``
  (to pick up what a dead node held, and to drop messages past their age). While subscribers
  wait for their clients to read, it looks again after :data:`THROTTLED_POLL_S`, and backs off
  to ``--queue-poll-s`` while they read nothing.
* A queue counts against ``--max-queues`` while it holds messages or has subscribers: the store
  decides (a SEND it refuses, a SUBSCRIBE whose :meth:`QueueStore.open` says no, get ERROR
  ``too many queues``).
* Storing is batched: what arrives in one event-loop turn (a COMMIT's SENDs) is stored together,
  in order, by one writer task; a SEND's future resolves once its message is stored, which is
  when its RECEIPT goes. While more than ``--queue-max-backlog-bytes`` wait to be stored (the
  store lags behind its publishers), a SEND to a queue is refused with ERROR ``queue store
  busy``: what waits in memory is bounded, and publishers learn to slow down.
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
from protocol.errors import LimitExceeded, MalformedFrame
from protocol.events import AckMode, Subscription
from protocol.frames import StompVersion
from server.broker import Broker, Subscriber
from server.engine import Message
from server.errors import QueueFullError
from server.metrics import BrokerMetrics
from server.queue_store import Outgoing, Queued, QueuePolicy, QueueStore, Refused
from server.task_set import TaskSet

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Backplane-internal route of arrival notices (header ``queue``: the queue that has new messages).
ARRIVALS = "/_internal/queues/arrivals"
PREFETCH_HEADER = "prefetch-count"
#: How long a stopping node lets store operations under way finish.
FINISH_S = 1.5
REDELIVERED = ("redelivered", "true")
#: How soon a pump looks again while its subscribers' clients read what they were sent. A
#: poll, not a drain callback: over TCP the session's protocol would hear ``resume_writing``,
#: but a WebSocket's transport belongs to aiohttp's protocol, and a compressed one drains its
#: own queue; a look at each session's unread output works for all three. It backs off (doubling
#: up to ``--queue-poll-s``) while the clients read nothing, so a stalled consumer costs about a
#: wake-up per poll, and comes back to this as soon as they read.
THROTTLED_POLL_S = 0.01


class QueueSubscriber(Subscriber, Protocol):
    """What a queue's consumer needs besides a broker subscriber's."""

    @property
    def gone(self) -> bool:
        """True once a message written to it would be lost (see ``StompSession.gone``)."""
        ...

    @property
    def output_budget(self) -> int:
        """How much unread output makes it a slow consumer (``--slow-consumer-bytes``)."""
        ...

    def queued_bytes(self) -> int:
        """Output written for the client and not sent yet."""
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

    def output_room(self, size: int) -> int:
        """How many messages of about ``size`` bytes its session may be written now: as many as
        keep its unread output within half its budget (``--slow-consumer-bytes``), and one
        whenever nothing is unread (a message larger than that goes alone). None while its
        client has not read what it was sent: the messages wait in the store. (Whole prefetches
        used to go at once, 100 messages of 64 KiB past a budget of 1 MiB: a client that read
        was cut as a slow consumer.)"""
        half, queued = self.session.output_budget // 2, self.session.queued_bytes()
        fit = (half - queued) // max(size, 1)
        return max(1, fit) if queued == 0 else max(0, fit)

    @property
    def room(self) -> int:
        """How many more messages its prefetch count (and its session's unacked bound) allow."""
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

    def available(self, size: int) -> int:
        """How many messages of about ``size`` bytes it may be given now."""
        room = self.room
        return min(room, self.output_room(size)) if room > 0 else 0

    def throttled(self, size: int) -> bool:
        """It would take more, but its client has not read what it was sent."""
        return self.room > 0 and self.output_room(size) == 0


async def _then_give_back(work: Awaitable[None], consumer: _Consumer, slots: int) -> None:
    """``work`` (putting NACKed messages back), then ``consumer``'s ``slots`` free again."""
    try:
        await work
    finally:
        consumer.returning -= slots


@dataclass(eq=False, slots=True)
class _LocalQueue:
    name: str
    #: The store's answer to this node's first subscriber (:meth:`QueueStore.open`).
    opened: asyncio.Task[bool]
    consumers: list[_Consumer] = field(default_factory=list)
    turn: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pump: asyncio.Task[None] | None = None
    #: The mean size of the messages it took last, to take about what fits; before the first,
    #: the default largest frame (a first take is a few messages, not a whole prefetch).
    message_bytes: int = 65536
    #: While its consumers are throttled: how long the pump waits, and the output they had
    #: unread when it last looked (less now: they read, look again soon).
    throttled_wait: float = THROTTLED_POLL_S
    throttled_unread: int = 0


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
        #: Bytes (bodies and headers) of the messages that wait to be stored, or are being.
        self._backlog = 0
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
        :class:`~server.errors.QueueFullError` or ``too many queues`` when refused). Messages
        sent one after another with the same ``group`` (a COMMIT's) are stored all or none (they
        reach the store in one batch: nothing yields between them).

        Raises ERROR ``queue store busy`` at once while ``--queue-max-backlog-bytes`` wait to be
        stored: but never for the rest of a group whose first message was taken, nor for the
        server's own queues (their events wait in the outbox, not here)."""
        policy = self.policy
        if (
            self._backlog >= policy.max_backlog_bytes
            and not policy.always_admitted(queue)
            and not (group is not None and self._writes and self._writes[-1][0].group is group)
        ):
            raise LimitExceeded(
                "queue store busy",
                f"{self._backlog} bytes of queue messages wait to be stored "
                f"(--queue-max-backlog-bytes {policy.max_backlog_bytes}); send again later",
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        message = Outgoing(queue, headers, body, dedupe, group)
        self._backlog += _size(message)
        self._writes.append((message, future))
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
            finally:
                self._backlog -= sum(_size(message) for message, _ in batch)
            arrived: set[str] = set()
            for (message, future), refused in zip(batch, stored, strict=True):
                if refused is None:
                    arrived.add(message.queue)
                    self._outcomes.labels("stored").inc()
                    if not future.done():
                        future.set_result(None)
                else:
                    self._outcomes.labels("refused").inc()
                    if not future.done():
                        future.set_exception(self._refusal(message.queue, refused))
            for name in sorted(arrived):
                self.broker.publish(ARRIVALS, (("queue", name),), b"")

    def _refusal(self, queue: str, refused: Refused) -> Exception:
        policy = self.policy
        if refused is Refused.TOO_MANY_QUEUES:
            return LimitExceeded(
                refused.value,
                f"{queue!r} would be one queue more than --max-queues ({policy.max_queues}): "
                "queues that hold messages or have subscribers",
            )
        return QueueFullError(
            refused.value,
            f"{queue!r} holds --queue-max-length ({policy.max_length}) messages or "
            f"--queue-max-bytes ({policy.max_bytes}) bytes of bodies",
        )

    def _on_arrival(self, message: Message) -> None:
        for name, value in message.headers:
            if name == "queue":
                local = self._queues.get(value)
                if local is not None:
                    local.wake.set()

    # -- subscriptions ------------------------------------------------------------------------

    def subscribe(
        self, session: QueueSubscriber, subscription: Subscription, queue: str
    ) -> Awaitable[None]:
        """Add a consumer; the SUBSCRIBE takes effect once the awaitable is done: it raises
        ERROR ``too many queues`` when the queue is new and would be one too many."""
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
            local = self._queues[queue] = _LocalQueue(queue, self._tasks.start(self._open(queue)))
        local.consumers.append(consumer)
        if local.pump is None or local.pump.done():
            local.pump = asyncio.create_task(self._pump(local), name=f"queue-pump {queue}")
        local.wake.set()
        return asyncio.ensure_future(self._admitted(local.opened, queue))

    async def _open(self, queue: str) -> bool:
        try:
            return await self.store.open(queue)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Not refused for an outage: the lease renewal counts it once the store is back.
            log.exception("counting the subscribers of queue %s failed", queue)
            return True

    async def _admitted(self, opened: asyncio.Task[bool], queue: str) -> None:
        if not await asyncio.shield(opened):
            raise self._refusal(queue, Refused.TOO_MANY_QUEUES)

    def _forget(self, local: _LocalQueue) -> None:
        """``local`` has no subscribers left (and its pump ended): tell the store."""
        del self._queues[local.name]

        async def close() -> None:
            if await asyncio.shield(local.opened):
                await self.store.close(local.name)

        self._spawn(close())

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
                self._forget(local)
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
            # Nothing before the store counted the queue (its subscribers' RECEIPTs come
            # first); nothing at all when it refused it (they are on their way out).
            if await asyncio.shield(local.opened):
                await self._pump_while_subscribed(local)
        finally:
            if not local.consumers and self._queues.get(local.name) is local:
                self._forget(local)

    async def _pump_while_subscribed(self, local: _LocalQueue) -> None:
        while local.consumers and not self._stopping:
            local.wake.clear()
            # What the subscribers have room for, by count and (about) by their output budget:
            # what does not fit after all goes back unsent (_dispatch).
            room = sum(c.available(local.message_bytes) for c in local.consumers)
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
                async with asyncio.timeout(self._wait(local, room)):
                    await local.wake.wait()

    def _wait(self, local: _LocalQueue, room: int) -> float:
        """How long the pump waits unless woken: ``--queue-poll-s``; or, while no subscriber
        has room because their clients have not read what they were sent, a short look again
        (:data:`THROTTLED_POLL_S`), doubled each time they read nothing."""
        throttled = [c for c in local.consumers if c.throttled(local.message_bytes)]
        if room or not throttled:
            local.throttled_wait, local.throttled_unread = THROTTLED_POLL_S, 0
            return self.poll_s
        unread = sum(c.session.queued_bytes() for c in throttled)
        if local.throttled_unread and unread < local.throttled_unread:
            local.throttled_wait = THROTTLED_POLL_S  # they read: look again soon
        elif local.throttled_unread:
            local.throttled_wait = min(2 * local.throttled_wait, self.poll_s)
        local.throttled_unread = unread
        return local.throttled_wait

    def _dispatch(self, local: _LocalQueue, taken: list[Queued]) -> None:
        auto: list[str] = []
        back: list[Queued] = []
        sizes = [_frame_size(message) for message in taken]
        local.message_bytes = sum(sizes) // len(sizes)
        for message, size in zip(taken, sizes, strict=True):
            # None: its subscribers left while the store answered, or their clients have not
            # read enough of what was written before to take more.
            consumer = self._next_with_room(local, size)
            if consumer is None:
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

    def _next_with_room(self, local: _LocalQueue, size: int) -> _Consumer | None:
        consumers = local.consumers
        for _ in range(len(consumers)):
            consumer = consumers[local.turn % len(consumers)]
            local.turn = (local.turn + 1) % len(consumers)
            if consumer.available(size) > 0:
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
                opened = local.opened
                if not (local.consumers and opened.done() and not opened.cancelled()):
                    continue
                if not opened.result():
                    continue  # refused: its subscribers are on their way out
                # Its subscribers keep it counted (and kept while empty), and what they hold
                # stays this node's.
                ids = [i for c in local.consumers for i in c.unsettled]
                try:
                    await self.store.keep(local.name, ids)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("renewing the lease of queue %s failed", local.name)


def _size(message: Outgoing) -> int:
    """What a message waiting to be stored holds in memory, about: its body and headers."""
    return len(message.body) + sum(len(name) + len(value) for name, value in message.headers)


def _frame_size(message: Queued) -> int:
    """About the size of ``message``'s MESSAGE frame: its body and headers, and room for the
    headers the broker adds (destination, subscription, ids)."""
    return len(message.body) + sum(len(k) + len(v) + 2 for k, v in message.headers) + 256
