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
from server.queue_store import Outgoing, QueuePolicy, QueueStore, Refused
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
    assert await store.append([Outgoing(QUEUE, (), b) for b in (b"1", b"2", b"3")]) == [None] * 3
    (one,) = await store.take(QUEUE, 1)
    assert await store.append([Outgoing(QUEUE, (), b"4")]) == [None]
    await store.release(QUEUE, [one.id])
    assert [(m.body, m.redelivered) for m in await store.take(QUEUE, 3)] == [
        (b"1", True),
        (b"3", False),
        (b"4", False),
    ]
    assert await store.append([Outgoing(QUEUE, (), b"5")]) == [Refused.FULL]


async def test_drop_head_by_bytes_drops_as_many_ready_messages_as_make_room(
    make_store: StoreFactory,
) -> None:
    """``--queue-max-bytes 1000``, ``drop-head``: 1, 2, 3 of 400 bytes each; 3 makes 1,200,
    so 1 goes. A consumer takes 2; 4 arrives and the oldest *ready* one, 3, goes (never one out
    with a consumer). A body larger than the bound is refused outright, dropping nothing. Once
    all are settled the whole bound is free again: the byte count follows every add, drop and
    settle exactly."""
    store = make_store(QueuePolicy(max_bytes=1000, overflow="drop-head"))
    sized = {name: name * 400 for name in (b"1", b"2", b"3", b"4")}
    assert (
        await store.append([Outgoing(QUEUE, (), sized[n]) for n in (b"1", b"2", b"3")])
        == [None] * 3
    )
    (two,) = await store.take(QUEUE, 1)
    assert two.body == sized[b"2"]
    assert await store.append([Outgoing(QUEUE, (), sized[b"4"])]) == [None]
    assert await store.append([Outgoing(QUEUE, (), b"x" * 1001)]) == [Refused.FULL]
    await store.release(QUEUE, [two.id])
    taken = await store.take(QUEUE, 5)
    assert [(m.body[:1], m.redelivered) for m in taken] == [(b"2", True), (b"4", False)]
    await store.settle(QUEUE, [m.id for m in taken])
    assert await store.append([Outgoing(QUEUE, (), b"y" * 1000)]) == [None]


async def test_the_number_of_queues_is_bounded_and_empty_ones_are_forgotten(
    make_store: StoreFactory,
) -> None:
    """``--max-queues 1``: a queue holding a message counts (not one whose first SEND was
    refused), so a SEND to another and a subscriber of a third are refused, while the server's
    own ``integration.orders`` is stored all the same. Once the first is drained it is
    forgotten: a subscriber may open another, which then counts until it closes (in a cluster,
    until its lease runs out)."""
    store = make_store(QueuePolicy(max_queues=1, max_bytes=1024, lease_s=0.05))
    # Refused for its size: it made no queue.
    assert await store.append([Outgoing("x", (), b"m" * 1025)]) == [Refused.FULL]
    assert await store.append([Outgoing("a", (), b"m")]) == [None]
    assert await store.append([Outgoing("b", (), b"m")]) == [Refused.TOO_MANY_QUEUES]
    assert not await store.open("c")
    assert await store.append([Outgoing("integration.orders", (), b"e")]) == [None]
    assert await store.open("integration.holds")
    for name in ("a", "integration.orders"):
        (taken,) = await store.take(name, 1)
        await store.settle(name, [taken.id])
    await store.close("integration.holds")
    await asyncio.sleep(0.1)  # past the cluster's lease
    assert await store.open("c")
    assert await store.append([Outgoing("b", (), b"m")]) == [Refused.TOO_MANY_QUEUES]
    await store.close("c")
    await asyncio.sleep(0.1)
    assert await store.append([Outgoing("b", (), b"m")]) == [None]


async def test_a_restarted_node_knows_what_its_queues_hold(tmp_path: Path) -> None:
    """A node's queues after a restart (a new store on the same database): the bytes and the
    queues counted before still count, and a message comes out flagged ``redelivered``. (The
    store reads them back with one query; no message is held in memory.)"""
    url = f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}"
    migrate(url)
    engine = create_async_engine(url)
    try:
        policy = QueuePolicy(max_bytes=1000, max_queues=1)
        before = SqlQueueStore(engine, policy)
        assert await before.append([Outgoing(QUEUE, (), b"1" * 600)]) == [None]
        after = SqlQueueStore(engine, policy)
        assert await after.append([Outgoing(QUEUE, (), b"2" * 600)]) == [Refused.FULL]
        assert not await after.open("other")
        (taken,) = await after.take(QUEUE, 2)
        assert (taken.body, taken.redelivered) == (b"1" * 600, True)
        await after.settle(QUEUE, [taken.id])
        assert await after.open("other")
    finally:
        await engine.dispose()
