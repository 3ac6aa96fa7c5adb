"""``/queue/`` messages of a single node, in its database (``queue_messages``).

Bodies are kept as base64 text (aiomysql cannot bind ``bytes`` with the PyMySQL it runs on).
The node is the only one reading its queues, so each queue's ready messages also live in memory,
in order (a deque), loaded from the table the first time the queue is used after a start; the
table is what survives a restart. Storing is one transaction per batch, and a COMMIT's SENDs
are stored all or none; an acknowledgement is one ``DELETE``. What was ready or out with a
consumer when the node stopped is ready again after the restart, and is marked ``redelivered``
(it may have been delivered before, as RabbitMQ's flag means).

Bounds (:class:`~server.queue_store.QueuePolicy`): a queue holds at most ``max_length`` messages,
counting those out with consumers; a message older than ``max_age_s`` is dropped when it reaches
the head. Over the length, ``reject`` refuses the new message and ``drop-head`` drops the oldest
ready one (or refuses, when every message is out with a consumer).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.clock import utcnow
from booking.schema import queue_messages
from server.queue_store import Outgoing, Queued, QueuePolicy, groups


@dataclass(slots=True)
class _Queue:
    ready: deque[tuple[Queued, float]] = field(default_factory=deque)
    taken: dict[str, tuple[Queued, float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ready) + len(self.taken)


class SqlQueueStore:
    def __init__(self, engine: AsyncEngine, policy: QueuePolicy) -> None:
        self._engine = engine
        self._policy = policy
        self._queues: dict[str, _Queue] = {}
        self._loading = asyncio.Lock()

    async def _queue(self, name: str) -> _Queue:
        found = self._queues.get(name)
        if found is not None:
            return found
        async with self._loading:
            found = self._queues.get(name)
            if found is None:
                found = self._queues[name] = await self._load(name)
        return found

    async def _load(self, name: str) -> _Queue:
        queue = _Queue()
        t = queue_messages.c
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(t.id, t.headers, t.body, t.created_at).where(t.queue == name).order_by(t.id)
            )
            for row in rows:
                headers = tuple((k, v) for k, v in json.loads(row.headers))
                # It may have been out with a consumer when the node stopped.
                body = base64.b64decode(row.body)
                message = Queued(str(row.id), headers, body, redelivered=True)
                queue.ready.append((message, row.created_at.timestamp()))
        return queue

    async def append(self, messages: Sequence[Outgoing]) -> list[bool]:
        queues = {m.queue: await self._queue(m.queue) for m in messages}
        policy = self._policy
        added: list[tuple[_Queue, Queued, float]] = []
        dropped: list[tuple[_Queue, tuple[Queued, float]]] = []
        stored: list[bool] = []
        now = utcnow()
        # A dropped head goes only once the transaction commits (a failed store drops nothing).
        room = {name: policy.max_length - len(q) for name, q in queues.items()}
        droppable = {name: len(q.ready) for name, q in queues.items()}
        async with self._engine.begin() as conn:
            for group in groups(messages):
                # The whole group's room first: it is stored all or none (a COMMIT's SENDs).
                group_room, group_droppable = dict(room), dict(droppable)
                heads: list[tuple[Queued, float] | None] = []
                for message in group:
                    name = message.queue
                    if group_room[name] > 0:
                        group_room[name] -= 1
                        heads.append(None)
                    elif policy.overflow == "drop-head" and group_droppable[name] > 0:
                        ready = queues[name].ready
                        heads.append(ready[len(ready) - group_droppable[name]])
                        group_droppable[name] -= 1
                    else:
                        break
                if len(heads) < len(group):
                    stored.extend(False for _ in group)
                    continue
                room, droppable = group_room, group_droppable
                for message, head in zip(group, heads, strict=True):
                    queue = queues[message.queue]
                    if head is not None:
                        dropped.append((queue, head))
                        await conn.execute(
                            delete(queue_messages).where(queue_messages.c.id == int(head[0].id))
                        )
                    added_now = await self._insert(conn, message, now)
                    stored.append(True)
                    if added_now is not None:
                        added.append((queue, added_now, time.time()))
        for queue, head in dropped:
            queue.ready.remove(head)
        for queue, queued, at in added:
            queue.ready.append((queued, at))
        return stored

    @staticmethod
    async def _insert(conn: AsyncConnection, message: Outgoing, now: datetime) -> Queued | None:
        """Insert ``message``'s row; the message as stored, or ``None`` when its dedupe key was
        stored before."""
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
        new_id = str(result.inserted_primary_key[0])  # type: ignore[index]
        return Queued(new_id, message.headers, message.body, False)

    async def take(self, queue_name: str, count: int) -> list[Queued]:
        queue = await self._queue(queue_name)
        oldest = time.time() - self._policy.max_age_s
        taken: list[Queued] = []
        expired: list[int] = []
        while queue.ready and len(taken) < count:
            message, at = queue.ready.popleft()
            if at < oldest:
                expired.append(int(message.id))
                continue
            queue.taken[message.id] = (message, at)
            taken.append(message)
        if expired:
            await self._delete(expired)
        return taken

    async def settle(self, queue_name: str, ids: Sequence[str]) -> None:
        queue = await self._queue(queue_name)
        for message_id in ids:
            queue.taken.pop(message_id, None)
        await self._delete([int(i) for i in ids])

    async def release(self, queue_name: str, ids: Sequence[str]) -> None:
        await self._back(queue_name, ids, seen=True)

    async def give_back(self, queue_name: str, messages: Sequence[Queued]) -> None:
        await self._back(queue_name, [m.id for m in messages], seen=False)

    async def _back(self, queue_name: str, ids: Sequence[str], *, seen: bool) -> None:
        """Taken messages back at the head, in id order; marked redelivered when a client may
        have seen them."""
        queue = await self._queue(queue_name)
        back = [queue.taken.pop(i) for i in ids if i in queue.taken]
        back.sort(key=lambda item: int(item[0].id))
        queue.ready.extendleft(
            (replace(message, redelivered=True) if seen else message, at)
            for message, at in reversed(back)
        )

    async def keep(self, queue_name: str, ids: Sequence[str]) -> None:
        pass  # one node: nobody else could take them

    async def _delete(self, ids: list[int]) -> None:
        if not ids:
            return
        async with self._engine.begin() as conn:
            await conn.execute(delete(queue_messages).where(queue_messages.c.id.in_(ids)))
