"""Both waiting-room implementations, each on fresh state (Redis: the session's own
redis-server, and unique event ids)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from booking.waiting_room import InProcessWaitingRoom, WaitingRoom
from server.backplane.redis.waiting_room import RedisWaitingRoom
from tests.redis_server import RedisServer

RoomFactory = Callable[[random.Random | None], WaitingRoom]


@pytest.fixture(params=["in-process", "redis"])
async def make_room(request: pytest.FixtureRequest) -> AsyncIterator[RoomFactory]:
    if request.param == "in-process":
        yield InProcessWaitingRoom
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    redis = Redis(connection_pool=BlockingConnectionPool(host="127.0.0.1", port=server.port))

    def redis_room(rng: random.Random | None = None) -> WaitingRoom:
        return RedisWaitingRoom(redis, rng=rng)

    yield redis_room
    await redis.aclose()


@pytest.fixture
def event_id() -> int:
    """A fresh event id, so Redis keys of earlier runs never interfere."""
    return random.SystemRandom().randrange(10**9, 10**10)
