"""``/queue/`` messages of a single node, in its database (``queue_messages``).

Bodies are kept as base64 text (aiomysql cannot bind ``bytes`` with the PyMySQL it runs on).
The node is the only one reading its queues. Memory holds a few counters per queue (its messages,
the bytes of their bodies, how far its rows were read) and the messages that are not in the
table's unread run: those out with consumers and those put back at the head. A message's headers
and body stay in the table until a take reads them, so what the queues hold costs the database
disk, not the node's memory, however full they are; a restart reads the counters back with one
query. Storing is one transaction per batch, and a COMMIT's SENDs are stored all or none; an
acknowledgement is one ``DELETE``. What was ready or out with a consumer when the node stopped
is ready again after the restart, and is marked ``redelivered`` (it may have been delivered
before, as RabbitMQ's flag means).

A queue is ready messages in order: first those put back at the head (``back``), then the rows
past its ``cursor``, in id order. The writer is this node's one writer task, so a row with a
greater id is a newer one, and a take reads on from the cursor.

Bounds (:class:`~server.queue_store.QueuePolicy`): a queue holds at most ``max_length`` messages
and ``max_bytes`` of bodies, counting those out with consumers; a message older than
``max_age_s`` is dropped when it reaches the head. Over a bound, ``reject`` refuses the new
message and ``drop-head`` drops the oldest ready ones until it fits (or refuses, when too few
are ready). At most ``max_queues`` queues hold messages or have subscribers; one that has
neither is forgotten.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, case, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.clock import utcnow
from booking.schema import queue_messages
from server.queue_store import Outgoing, Queued, QueuePolicy, Refused, groups

#: Rows a drop-head reads at once while it looks for the oldest ready messages.
HEAD_ROWS = 100

_t = queue_messages.c


def _padding(body: ColumnElement[str]) -> ColumnElement[int]:
    """The ``=`` that pad a base64 body (its size is ``3 * length / 4`` less these)."""
    return case((func.substr(body, -2) == "==", 2), (func.substr(body, -1) == "=", 1), else_=0)


@dataclass(slots=True)
class _Held:
    """A message outside the unread run: out with a consumer, or put back at the head."""

    id: int
    at: float  # when it was stored (the age bound)
    size: int  # of its body
    redelivered: bool


@dataclass(slots=True)
class _Queue:
    #: Messages stored (ready and out with consumers), and the bytes of their bodies.
    count: int = 0
    size: int = 0
    #: Rows with a greater id are ready and not read yet.
    cursor: int = 0
    #: Ready messages put back at the head, in the order they go out again.
    back: deque[_Held] = field(default_factory=deque)
    #: Out with this node's consumers.
    taken: dict[int, _Held] = field(default_factory=dict)
    #: :meth:`SqlQueueStore.open` less :meth:`SqlQueueStore.close`.
    subscribers: int = 0
    #: Appends under way that count it as a new queue.
    admitting: int = 0
    #: Operations under way: it is not forgotten under them.
    users: int = 0
    #: Appends, takes and returns to the head, one at a time (each reads and moves the head).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def unread(self) -> int:
        return self.count - len(self.back) - len(self.taken)

    @property
    def counted(self) -> bool:
        """It counts against ``max_queues``: it holds messages or has subscribers."""
        return bool(self.count or self.subscribers or self.admitting)


@dataclass(slots=True)
class _Plan:
    """What an append will do to one queue: its counts once the messages planned so far are
    stored, the oldest ready messages it drops for them, and where it is in the head."""

    name: str
    queue: _Queue
    count: int = 0
    size: int = 0
    #: Whether the append counts it as a new queue.
    admitted: bool = False
    drops: list[_Held] = field(default_factory=list)
    #: Messages of this append planned for the queue (indexes), oldest first, and how many of
    #: them were dropped again (the oldest: drop-head reaches them last).
    new: list[int] = field(default_factory=list)
    new_dropped: int = 0
    next_back: int = 0
    #: Unread rows read for drop-head (a cache kept across groups) and how many are dropped.
    rows: list[_Held] = field(default_factory=list)
    next_row: int = 0

    def __post_init__(self) -> None:
        self.count, self.size = self.queue.count, self.queue.size

    def state(self) -> tuple[int, int, bool, int, int, int, int, int]:
        return (self.count, self.size, self.admitted, len(self.drops), len(self.new),
                self.new_dropped, self.next_back, self.next_row)  # fmt: skip

    def restore(self, saved: tuple[int, int, bool, int, int, int, int, int]) -> None:
        (self.count, self.size, self.admitted, drops, new, self.new_dropped, self.next_back,
         self.next_row) = saved  # fmt: skip
        del self.drops[drops:]
        del self.new[new:]


class SqlQueueStore:
    def __init__(self, engine: AsyncEngine, policy: QueuePolicy) -> None:
        self._engine = engine
        self._policy = policy
        self._queues: dict[str, _Queue] = {}
        self._loaded: asyncio.Task[None] | None = None
        #: Rows stored before this start (ids up to this) may have been delivered: redelivered.
        self._seen_upto = 0

    # -- the queues in memory ---------------------------------------------------------------

    async def _ready(self) -> None:
        """The counters of every queue with messages, read once (after a start)."""
        if self._loaded is None:
            self._loaded = asyncio.ensure_future(self._load())
        await asyncio.shield(self._loaded)

    async def _load(self) -> None:
        query = select(
            _t.queue, func.count(_t.id), func.sum(func.length(_t.body)),
            func.sum(_padding(_t.body)), func.max(_t.id),
        ).group_by(_t.queue)  # fmt: skip
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        for name, count, length, padding, last in rows:
            queue = self._queues.setdefault(name, _Queue())
            queue.count += int(count)
            queue.size += int(length) * 3 // 4 - int(padding)
            self._seen_upto = max(self._seen_upto, int(last))

    def _counted(self) -> int:
        return sum(queue.counted for queue in self._queues.values())

    @contextlib.asynccontextmanager
    async def _using(self, names: Sequence[str], *, locked: bool = True) -> AsyncIterator[None]:
        """Hold these queues (made if missing) for an operation: not forgotten meanwhile, and
        (``locked``) theirs alone, taken in name order; forgotten after it if they hold nothing
        and nobody subscribes."""
        queues = [self._queues.setdefault(name, _Queue()) for name in names]
        for queue in queues:
            queue.users += 1
        try:
            async with contextlib.AsyncExitStack() as stack:
                if locked:
                    for queue in queues:
                        await stack.enter_async_context(queue.lock)
                yield
        finally:
            for name, queue in zip(names, queues, strict=True):
                queue.users -= 1
                self._forget_if_idle(name, queue)

    def _forget_if_idle(self, name: str, queue: _Queue) -> None:
        if not (queue.users or queue.counted) and self._queues.get(name) is queue:
            del self._queues[name]

    # -- the store ----------------------------------------------------------------------------

    async def append(self, messages: Sequence[Outgoing]) -> list[Refused | None]:
        await self._ready()
        names = sorted({m.queue for m in messages})
        async with self._using(names):
            plans = {name: _Plan(name, self._queues[name]) for name in names}
            try:
                outcomes = await self._planned(messages, plans)
                added = await self._store(messages, plans, outcomes)
            finally:
                for plan in plans.values():
                    plan.queue.admitting -= plan.admitted
            for name, plan in plans.items():
                self._apply(plan, added.get(name, []))
        return outcomes

    async def _planned(
        self, messages: Sequence[Outgoing], plans: dict[str, _Plan]
    ) -> list[Refused | None]:
        """Decide, group by group (all or none), which messages fit and which heads they drop;
        nothing is written yet."""
        policy = self._policy
        outcomes: list[Refused | None] = []
        index = 0
        for group in groups(messages):
            touched = {m.queue for m in group}
            saved = {name: plans[name].state() for name in touched}
            refused: Refused | None = None
            for offset, message in enumerate(group):
                plan = plans[message.queue]
                if not plan.queue.counted and not plan.admitted:
                    if self._counted() >= policy.max_queues and not policy.always_admitted(
                        message.queue
                    ):
                        refused = Refused.TOO_MANY_QUEUES
                        break
                    plan.admitted = True
                    plan.queue.admitting += 1
                plan.count += 1
                plan.size += len(message.body)
                plan.new.append(index + offset)
                while plan.count > policy.max_length or plan.size > policy.max_bytes:
                    if policy.overflow != "drop-head" or not await self._drop_head(plan, messages):
                        refused = Refused.FULL
                        break
                if refused is not None:
                    break
            if refused is not None:
                for name in touched:
                    plan = plans[name]
                    if plan.admitted:
                        plan.queue.admitting -= 1
                    plan.restore(saved[name])
                    if plan.admitted:
                        plan.queue.admitting += 1
            outcomes.extend(refused for _ in group)
            index += len(group)
        return outcomes

    async def _drop_head(self, plan: _Plan, messages: Sequence[Outgoing]) -> bool:
        """Plan to drop the oldest ready message of ``plan``'s queue: one put back at the head,
        else the first unread row, else the oldest of this append's; ``False`` when none is
        left."""
        queue = plan.queue
        if plan.next_back < len(queue.back):
            held = queue.back[plan.next_back]
            plan.next_back += 1
        elif plan.next_row < queue.unread and (
            plan.next_row < len(plan.rows) or await self._more_rows(plan)
        ):
            held = plan.rows[plan.next_row]
            plan.next_row += 1
        elif plan.new_dropped < len(plan.new) - 1:  # never the message being planned
            plan.count -= 1
            plan.size -= len(messages[plan.new[plan.new_dropped]].body)
            plan.new_dropped += 1
            return True
        else:
            return False
        plan.drops.append(held)
        plan.count -= 1
        plan.size -= held.size
        return True

    async def _more_rows(self, plan: _Plan) -> bool:
        """Read the next unread rows of ``plan``'s queue, oldest first, as drop-head sees them
        (no headers, no body); whether there were any."""
        after = plan.rows[-1].id if plan.rows else plan.queue.cursor
        query = (
            select(_t.id, _t.created_at, func.length(_t.body), _padding(_t.body))
            .where(_t.queue == plan.name, _t.id > after)
            .order_by(_t.id)
            .limit(HEAD_ROWS)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        plan.rows += [
            _Held(
                int(i), at.timestamp(), int(length) * 3 // 4 - int(pad), int(i) <= self._seen_upto
            )
            for i, at, length, pad in rows
        ]
        return bool(rows)

    async def _store(
        self,
        messages: Sequence[Outgoing],
        plans: dict[str, _Plan],
        outcomes: list[Refused | None],
    ) -> dict[str, list[tuple[int, int]]]:
        """Write the plan in one transaction: the dropped heads go, the messages that fit and
        were not dropped again come; the rows added (id, body size), by queue."""
        dropped_new = {i for plan in plans.values() for i in plan.new[: plan.new_dropped]}
        added: dict[str, list[tuple[int, int]]] = {}
        now = utcnow()
        async with self._engine.begin() as conn:
            drops = [held.id for plan in plans.values() for held in plan.drops]
            if drops:
                await conn.execute(delete(queue_messages).where(_t.id.in_(drops)))
            for index, (message, refused) in enumerate(zip(messages, outcomes, strict=True)):
                if refused is None and index not in dropped_new:
                    new_id = await self._insert(conn, message, now)
                    if new_id is not None:
                        row = (new_id, len(message.body))
                        added.setdefault(message.queue, []).append(row)
        return added

    @staticmethod
    def _apply(plan: _Plan, added: list[tuple[int, int]]) -> None:
        """The stored plan, in memory: counts by difference (settles may have run meanwhile;
        a message whose dedupe key was stored before was not added)."""
        queue = plan.queue
        if plan.next_back:
            dropped = {id(held) for held in plan.drops}
            queue.back = deque(held for held in queue.back if id(held) not in dropped)
        if plan.next_row:
            queue.cursor = plan.rows[plan.next_row - 1].id
        queue.count += len(added) - len(plan.drops)
        queue.size += sum(size for _, size in added) - sum(held.size for held in plan.drops)

    @staticmethod
    async def _insert(conn: AsyncConnection, message: Outgoing, now: datetime) -> int | None:
        """Insert ``message``'s row; its id, or ``None`` when its dedupe key was stored
        before."""
        statement = insert(queue_messages).values(
            queue=message.queue,
            headers=json.dumps(message.headers),
            body=base64.b64encode(message.body).decode("ascii"),
            dedupe_key=message.dedupe,
            created_at=now,
        )
        if message.dedupe is not None:
            statement = statement.prefix_with("IGNORE", dialect="mysql").prefix_with(
                "OR IGNORE", dialect="sqlite"
            )
        result = await conn.execute(statement)
        if result.rowcount != 1:
            return None
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    async def take(self, queue_name: str, count: int) -> list[Queued]:
        await self._ready()
        queue = self._queues.get(queue_name)
        if queue is None or not (queue.back or queue.unread):
            return []  # nothing ready: no query
        async with self._using([queue_name]):
            oldest = time.time() - self._policy.max_age_s
            out: list[_Held] = []
            expired: list[_Held] = []
            while queue.back and len(out) < count:
                held = queue.back.popleft()
                (expired if held.at < oldest else out).append(held)
            contents = await self._contents([held.id for held in out]) if out else {}
            unread = queue.unread - len(out) - len(expired)
            while unread > 0 and len(out) < count:
                rows = await self._read_on(queue_name, queue, min(count - len(out), unread))
                if not rows:  # counted, but not there (a write that failed half): forget them
                    queue.count -= unread
                    break
                unread -= len(rows)
                for held, headers, body in rows:
                    (expired if held.at < oldest else out).append(held)
                    contents[held.id] = (headers, body)
            taken = []
            for held in out:
                if held.id not in contents:  # deleted under us: cannot happen (one node)
                    queue.count -= 1
                    queue.size -= held.size
                    continue
                queue.taken[held.id] = held
                headers, body = contents[held.id]
                taken.append(Queued(str(held.id), headers, body, held.redelivered))
            if expired:
                queue.count -= len(expired)
                queue.size -= sum(held.size for held in expired)
                await self._delete([held.id for held in expired])
        return taken

    async def _read_on(
        self, name: str, queue: _Queue, limit: int
    ) -> list[tuple[_Held, tuple[tuple[str, str], ...], bytes]]:
        """The next ``limit`` unread rows of ``queue``, read past its cursor."""
        query = (
            select(_t.id, _t.headers, _t.body, _t.created_at)
            .where(_t.queue == name, _t.id > queue.cursor)
            .order_by(_t.id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        read = []
        for row in rows:
            body = base64.b64decode(row.body)
            # Stored before this start: it may have been out with a consumer then.
            redelivered = row.id <= self._seen_upto
            held = _Held(row.id, row.created_at.timestamp(), len(body), redelivered)
            read.append((held, _headers(row.headers), body))
        if rows:
            queue.cursor = rows[-1].id
        return read

    async def _contents(
        self, ids: list[int]
    ) -> dict[int, tuple[tuple[tuple[str, str], ...], bytes]]:
        """The headers and body of these rows."""
        query = select(_t.id, _t.headers, _t.body).where(_t.id.in_(ids))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {row.id: (_headers(row.headers), base64.b64decode(row.body)) for row in rows}

    async def settle(self, queue_name: str, ids: Sequence[str]) -> None:
        queue = self._queues.get(queue_name)
        if queue is None:
            return
        # Not locked (a settle moves no head), but held until the rows are gone: a queue made
        # again meanwhile would read them again.
        async with self._using([queue_name], locked=False):
            settled = [queue.taken.pop(int(i)) for i in ids if int(i) in queue.taken]
            queue.count -= len(settled)
            queue.size -= sum(held.size for held in settled)
            await self._delete([held.id for held in settled])

    async def release(self, queue_name: str, ids: Sequence[str]) -> None:
        await self._back(queue_name, ids, seen=True)

    async def give_back(self, queue_name: str, messages: Sequence[Queued]) -> None:
        await self._back(queue_name, [m.id for m in messages], seen=False)

    async def _back(self, queue_name: str, ids: Sequence[str], *, seen: bool) -> None:
        """Taken messages back at the head, in id order; marked redelivered when a client may
        have seen them."""
        queue = self._queues.get(queue_name)
        if queue is None:
            return
        async with self._using([queue_name]):
            back = [queue.taken.pop(int(i)) for i in ids if int(i) in queue.taken]
            back.sort(key=lambda held: held.id)
            for held in back:
                held.redelivered = held.redelivered or seen
            queue.back.extendleft(reversed(back))

    async def keep(self, queue_name: str, ids: Sequence[str]) -> None:
        pass  # one node: nobody else could take them

    async def open(self, queue_name: str) -> bool:
        await self._ready()
        queue = self._queues.get(queue_name)
        if queue is None or not queue.counted:
            policy = self._policy
            if self._counted() >= policy.max_queues and not policy.always_admitted(queue_name):
                return False
            queue = self._queues.setdefault(queue_name, _Queue())
        queue.subscribers += 1
        return True

    async def close(self, queue_name: str) -> None:
        queue = self._queues.get(queue_name)
        if queue is not None and queue.subscribers:
            queue.subscribers -= 1
            self._forget_if_idle(queue_name, queue)

    async def _delete(self, ids: list[int]) -> None:
        if not ids:
            return
        async with self._engine.begin() as conn:
            await conn.execute(delete(queue_messages).where(_t.id.in_(ids)))


def _headers(stored: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in json.loads(stored))
