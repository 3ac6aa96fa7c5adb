"""What a stopping cluster node still had to write reaches Redis before it closes.

The node's last writes are those of work that finished while it drained: a hold that committed
(its seat change, its reply to the user). They wait in the backplane's batches for the next
round trip; closing the backplane sends them rather than dropping them. Real redis-server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.backplane.redis.engine import RedisEngine
from server.backplane.redis.user_messages import RedisUserMessages
from server.engine import Message
from tests.redis_server import RedisServer


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis(host="127.0.0.1", port=redis_server.port)
    yield client
    await client.aclose()


def message(route: str, n: int) -> Message:
    return Message(route, f"m-{n}", (("content-type", "text/plain"),), f"body {n}".encode())


async def test_user_messages_published_just_before_close_are_kept(redis: Redis) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    route = "/user/alice/queue/replies"
    store = RedisUserMessages(redis, prefix, count=100, ttl_s=60)
    for n in range(3):
        store.publish(message(route, n))
    await store.close()  # in the same turn: nothing was sent yet

    reader = RedisUserMessages(redis, prefix, count=100, ttl_s=60)
    kept = await reader.after(route, "none")
    assert [m.message_id for m in kept] == ["m-0", "m-1", "m-2"]
    assert kept[2].body == b"body 2"


async def test_messages_published_just_before_the_engine_closes_go_out(redis: Redis) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    route = "/topic/last-words"
    listener = redis.pubsub()
    await listener.subscribe(prefix + route)
    await listener.get_message(timeout=1)  # the subscribe confirmation

    node_redis = Redis(host="127.0.0.1", port=redis.connection_pool.connection_kwargs["port"])
    engine = RedisEngine(node_redis, prefix)
    await engine.start(lambda _: None)
    for n in range(3):
        engine.publish(message(route, n))
    await engine.close()
    await node_redis.aclose()

    heard: list[bytes] = []
    for _ in range(3):
        got = await listener.get_message(ignore_subscribe_messages=True, timeout=2)
        assert got is not None, f"only {len(heard)} of 3 messages were published"
        heard.append(got["data"].partition(b"\n")[2])
    assert heard == [b"body 0", b"body 1", b"body 2"]
    await listener.aclose()
