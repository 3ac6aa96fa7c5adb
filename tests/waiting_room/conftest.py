"""Both waiting-room implementations, each on fresh state (Redis: unique event ids)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from booking.waiting_room import InProcessWaitingRoom, WaitingRoom
from server.backplane.redis.waiting_room import RedisWaitingRoom

RoomFactory = Callable[[random.Random | None], WaitingRoom]


@pytest.fixture(params=["in-process", "redis"])
async def make_room(request: pytest.FixtureRequest) -> AsyncIterator[RoomFactory]:
    if request.param == "in-process":
        yield lambda rng=None: InProcessWaitingRoom(rng)
        return
    redis = Redis(connection_pool=BlockingConnectionPool(host="127.0.0.1", port=6379))
    yield lambda rng=None: RedisWaitingRoom(redis, rng)
    await redis.aclose()


@pytest.fixture
def event_id() -> int:
    """A fresh event id, so Redis keys of earlier runs never interfere."""
    return random.SystemRandom().randrange(10**9, 10**10)
