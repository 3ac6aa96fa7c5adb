"""The queue stores' ``redelivered`` flag, store by store (a node's database, a cluster's Redis).

A message a node took but sent to no client (its subscribers left while the take was under way)
goes back as it was: its next delivery is a first delivery, not flagged ``redelivered``. One a
client may have seen (released after a NACK, or held by a node that died) is flagged from then
on. The stores are driven directly, on a migrated SQLite database and a real redis-server: the
moment this guards, a take answered just after the last subscriber left, is one a client cannot
bring about on demand (the queue fuzz test, ``test_queue_fuzz.py``, meets it now and then).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine

from server.backplane.redis.queues import RedisQueueStore
from server.backplane.sql_queue import SqlQueueStore
from server.queue_store import Outgoing, QueuePolicy, QueueStore
from tests.conftest import migrate
from tests.redis_server import RedisServer

QUEUE = "jobs"


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis(host="127.0.0.1", port=redis_server.port)
    yield client
    await client.aclose()


#: A store of the kind under test, with the queue bounds given.
StoreFactory = Callable[[QueuePolicy], QueueStore]


@pytest.fixture(params=["sqlite", "redis"])
async def make_store(
    request: pytest.FixtureRequest, redis: Redis, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    if request.param == "redis":
        prefix = f"t{uuid.uuid4().hex[:8]}:"
        yield lambda policy: RedisQueueStore(redis, prefix, "node-a", policy)
        return
    url = f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}"
    migrate(url)
    engine = create_async_engine(url)
    yield lambda policy: SqlQueueStore(engine, policy)
    await engine.dispose()


@pytest.fixture
def store(make_store: StoreFactory) -> QueueStore:
    return make_store(QueuePolicy())


async def test_a_message_given_back_unsent_is_still_a_first_delivery(store: QueueStore) -> None:
    await store.append([Outgoing(QUEUE, (("kind", "job"),), b"one")])
    (taken,) = await store.take(QUEUE, 1)
    assert not taken.redelivered
    await store.give_back(QUEUE, [taken])
    (again,) = await store.take(QUEUE, 1)
    assert (again.id, again.body, again.redelivered) == (taken.id, b"one", False)
    # Sent and NACKed: redelivered from now on, even if a later take gives it back unsent.
    await store.release(QUEUE, [again.id])
    (third,) = await store.take(QUEUE, 1)
    assert (third.id, third.redelivered) == (taken.id, True)
    await store.give_back(QUEUE, [third])
    (fourth,) = await store.take(QUEUE, 1)
    assert (fourth.id, fourth.redelivered) == (taken.id, True)


async def test_given_back_messages_keep_their_place_at_the_head(store: QueueStore) -> None:
    await store.append([Outgoing(QUEUE, (), body) for body in (b"1", b"2", b"3")])
    taken = await store.take(QUEUE, 2)
    await store.give_back(QUEUE, taken)
    assert [(m.body, m.redelivered) for m in await store.take(QUEUE, 3)] == [
        (b"1", False),
        (b"2", False),
        (b"3", False),
    ]


async def test_a_dead_nodes_messages_come_to_another_node_redelivered(redis: Redis) -> None:
    """Node A took two messages and sent one to a client (and nothing of it gave back) before it
    died; after the lease, node B takes both, flagged: B cannot know which A had sent."""
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    policy = QueuePolicy(lease_s=0.05)
    node_a = RedisQueueStore(redis, prefix, "node-a", policy)
    node_b = RedisQueueStore(redis, prefix, "node-b", policy)
    await node_a.append([Outgoing(QUEUE, (), body) for body in (b"1", b"2")])
    assert [m.redelivered for m in await node_a.take(QUEUE, 2)] == [False, False]
    await asyncio.sleep(0.2)
    assert [(m.body, m.redelivered) for m in await node_b.take(QUEUE, 2)] == [
        (b"1", True),
        (b"2", True),
    ]


async def test_a_released_message_behind_many_unacked_ones_is_taken_next(redis: Redis) -> None:
    """5,000 messages out with a consumer, unacked, and the newest one NACKed: the next take
    finds it behind them all (one take, however long the pending list)."""
    store = RedisQueueStore(redis, f"t{uuid.uuid4().hex[:8]}:", "node-a", QueuePolicy())
    await store.append([Outgoing(QUEUE, (), str(n).encode()) for n in range(5001)])
    out = await store.take(QUEUE, 5001)
    await store.release(QUEUE, [out[-1].id])
    (again,) = await store.take(QUEUE, 1)
    assert (again.id, again.body, again.redelivered) == (out[-1].id, b"5000", True)
    assert await store.take(QUEUE, 1) == []


async def test_drop_head_drops_the_oldest_ready_message_not_one_out_with_a_consumer(
    make_store: StoreFactory,
) -> None:
    """``--queue-overflow drop-head``, ``--queue-max-length 3``: messages 1, 2, 3, and a consumer
    has 1 out, unacked. 4 arrives: the oldest *ready* message, 2, goes (README: "the oldest
    ready message goes"), while 1 stays the consumer's and comes back when it NACKs. With all
    three out and nothing ready to drop, the next SEND is refused."""
    store = make_store(QueuePolicy(max_length=3, overflow="drop-head"))
    assert await store.append([Outgoing(QUEUE, (), b) for b in (b"1", b"2", b"3")]) == [True] * 3
    (one,) = await store.take(QUEUE, 1)
    assert await store.append([Outgoing(QUEUE, (), b"4")]) == [True]
    await store.release(QUEUE, [one.id])
    assert [(m.body, m.redelivered) for m in await store.take(QUEUE, 3)] == [
        (b"1", True),
        (b"3", False),
        (b"4", False),
    ]
    assert await store.append([Outgoing(QUEUE, (), b"5")]) == [False]
