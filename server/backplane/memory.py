"""The single-node backplane: messages, waiting room and seat sequence all in this process;
``/queue/`` messages in the node's database."""

from __future__ import annotations

import time
from collections import OrderedDict, deque

from sqlalchemy.ext.asyncio import AsyncEngine

from booking.inventory import Inventory
from booking.seatmap import SeatChange
from booking.waiting_room import InProcessWaitingRoom
from server.backplane.sql_queue import SqlQueueStore
from server.engine import Connected, Deliver, Message
from server.queue_store import QueuePolicy
from server.seat_sequencer import SeatDelta, SeatSnapshot


class InProcessEngine:
    """A publish is a local delivery, synchronously and in order."""

    def __init__(self) -> None:
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def close(self) -> None:
        self._deliver = None

    def publish(self, message: Message) -> None:
        if self._deliver is not None:
            self._deliver(message)

    def watch(self, route: str) -> None:
        pass

    def unwatch(self, route: str) -> None:
        pass

    async def watching(self, route: str) -> None:
        pass  # every publish is delivered here

    def when_connected(self, callback: Connected) -> None:
        pass  # nothing to reconnect to


class InProcessSequencer:
    """Sequences this node's own changes: it is the only node.

    A snapshot is the node's live seat map tagged with the latest ``seq``: it may already show
    changes that the next delta repeats (harmless, deltas carry absolute statuses), and a client
    that just held a seat sees it held at once. The same snapshot value is returned until the map
    or the ``seq`` changes, so it is encoded once however many subscribers ask.
    """

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._pending: dict[int, dict[str, str]] = {}
        self._seq: dict[int, int] = {}
        self._snapshots: dict[int, SeatSnapshot] = {}

    def _latest(self, event_id: int) -> int:
        """The event's latest seq. The first is the milliseconds since the epoch when the event
        is first sequenced here, past every seq a node that ran before this one can have given
        it (at most one a tick), so a restarted node never repeats a seq a client resumes from."""
        seq = self._seq.get(event_id)
        if seq is None:
            seq = self._seq[event_id] = int(time.time() * 1000)
        return seq

    def record(self, change: SeatChange) -> None:
        self._pending.setdefault(change.event_id, {}).update(change.seats)
        self._snapshots.pop(change.event_id, None)

    async def tick(self, event_id: int) -> SeatDelta | None:
        pending = self._pending.pop(event_id, None)
        if not pending:
            return None
        seq = self._seq[event_id] = self._latest(event_id) + 1
        self._snapshots.pop(event_id, None)
        return SeatDelta(event_id, seq, tuple(pending.items()))

    async def snapshot(self, event_id: int) -> SeatSnapshot:
        found = self._snapshots.get(event_id)
        if found is None:
            statuses = (await self.inventory.seat_map(event_id)).statuses
            seq = self._latest(event_id)
            found = SeatSnapshot(event_id, seq, tuple(statuses.items()))
            self._snapshots[event_id] = found
        return found


#: What Python spends around a kept message besides its text (the Message, its id, the
#: timestamped tuple in the deque) and around each header (a tuple of two strings), and what a
#: route costs (its deque and its entry in the map), measured with tracemalloc on CPython 3.11:
#: counting the text alone made a 64 MiB budget hold about 700 MiB of small replies.
MESSAGE_OVERHEAD = 300
HEADER_OVERHEAD = 100
ROUTE_OVERHEAD = 1000


def _size(message: Message) -> int:
    """What keeping ``message`` costs: its body, its header text, the objects around them."""
    headers = message.headers
    text = sum(len(k) + len(v) for k, v in headers)
    return MESSAGE_OVERHEAD + len(message.body) + text + HEADER_OVERHEAD * len(headers)


class InProcessUserMessages:
    """Messages to users, the last ``count`` per route for ``ttl_s``, in memory, at most
    ``max_bytes`` of them in all.

    Routes are kept in the order of their latest message, so the expired ones are dropped from
    the front as new messages come. The per-route bounds alone would let memory grow with the
    number of users (a guest identity costs nothing to make), so the store also has a total
    budget: over it, the oldest messages of the least recently written routes go first (a
    reconnecting client then gets what is left, as after an expiry).
    """

    def __init__(self, engine: InProcessEngine, count: int, ttl_s: float, max_bytes: int) -> None:
        self.engine = engine
        self.count = count
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        #: The bytes kept now (:func:`_size` of every kept message).
        self.kept_bytes = 0
        self._kept: OrderedDict[str, deque[tuple[float, Message]]] = OrderedDict()

    def publish(self, message: Message) -> None:
        now = time.monotonic()
        kept = self._kept.pop(message.route, None)
        if kept is None:
            kept = deque()
            self.kept_bytes += ROUTE_OVERHEAD
        elif len(kept) == self.count:
            self.kept_bytes -= _size(kept.popleft()[1])
        kept.append((now, message))
        self.kept_bytes += _size(message)
        self._kept[message.route] = kept
        self._expire(now)
        self.engine.publish(message)

    def _expire(self, now: float) -> None:
        while self._kept:
            route, kept = next(iter(self._kept.items()))
            if kept[-1][0] <= now - self.ttl_s:  # the least recently written route expired
                self.kept_bytes -= sum(_size(m) for _, m in kept) + ROUTE_OVERHEAD
                del self._kept[route]
            elif self.kept_bytes > self.max_bytes:  # over the budget: its oldest message goes
                self.kept_bytes -= _size(kept.popleft()[1])
                if not kept:
                    self.kept_bytes -= ROUTE_OVERHEAD
                    del self._kept[route]
            else:
                return

    async def after(self, route: str, message_id: str) -> list[Message]:
        self._expire(time.monotonic())
        horizon = time.monotonic() - self.ttl_s
        kept = [m for at, m in self._kept.get(route, ()) if at > horizon]
        ids = [m.message_id for m in kept]
        return kept[ids.index(message_id) + 1 :] if message_id in ids else kept


class InProcessBackplane:
    def __init__(self, database: AsyncEngine, queue_policy: QueuePolicy) -> None:
        self.engine = InProcessEngine()
        self.waiting_room = InProcessWaitingRoom()
        self.queue_store = SqlQueueStore(database, queue_policy)
        self.outflow = None  # one node: its adaptive rates are its own

    def seat_sequencer(self, inventory: Inventory) -> InProcessSequencer:
        return InProcessSequencer(inventory)

    def user_messages(self, count: int, ttl_s: float, max_bytes: int) -> InProcessUserMessages:
        return InProcessUserMessages(self.engine, count, ttl_s, max_bytes)

    async def check_ready(self) -> str | None:
        return None

    async def close(self) -> None:
        await self.engine.close()
