"""The cluster backplane: every node of the cluster shares one Redis (SPEC §8).

This package is all the Redis code there is: the message engine (pub/sub), the seat sequencer
(a pending list, a status hash and a lease per event), the waiting room (Lua scripts) and the
``/queue/`` store (a stream and a consumer group per queue). They
share one client, built here from the settings: ``--redis-url``, ``--redis-pool-size``
connections (callers wait for a free one rather than fail: 10,000 users joining at once queue
for the pool), and ``--redis-key-prefix`` in front of every key and channel, so several
deployments can share one Redis.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from booking.inventory import Inventory
from server.backplane.redis.engine import RedisEngine
from server.backplane.redis.outflow import RedisOutflow
from server.backplane.redis.queues import RedisQueueStore
from server.backplane.redis.sequencer import RedisSequencer
from server.backplane.redis.user_messages import RedisUserMessages
from server.backplane.redis.waiting_room import RedisWaitingRoom
from server.metrics import InfraMetrics
from server.settings import Settings


def connect(settings: Settings) -> Redis:
    """A client over a bounded pool that makes callers wait for a free connection (redis-py's
    default pool raises instead)."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_pool_size, timeout=10
    )
    # After Redis restarts, each pooled connection fails once on first use ("Connection closed
    # by server"); one quick retry on a fresh connection hides that from callers.
    return Redis(
        connection_pool=pool,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=15,
    )


class RedisBackplane:
    def __init__(self, settings: Settings, metrics: InfraMetrics | None = None) -> None:
        self._settings = settings
        self._redis = connect(settings)
        prefix = settings.redis_key_prefix
        self.engine = RedisEngine(self._redis, prefix, metrics)
        self.waiting_room = RedisWaitingRoom(self._redis, prefix)
        self.outflow = RedisOutflow(self._redis, prefix, settings.node_id)
        self.queue_store = RedisQueueStore(
            self._redis, prefix, settings.node_id, settings.queue_policy
        )
        self._sequencers: list[RedisSequencer] = []
        self._user_messages: list[RedisUserMessages] = []

    def seat_sequencer(self, inventory: Inventory) -> RedisSequencer:
        s = self._settings
        sequencer = RedisSequencer(
            self._redis, s.redis_key_prefix, inventory, s.node_id, s.seat_lease_ms
        )
        self._sequencers.append(sequencer)
        return sequencer

    def user_messages(self, count: int, ttl_s: float, max_bytes: int) -> RedisUserMessages:
        del max_bytes  # the in-process store's; Redis is bounded by its maxmemory
        store = RedisUserMessages(self._redis, self._settings.redis_key_prefix, count, ttl_s)
        self._user_messages.append(store)
        return store

    async def check_ready(self) -> str | None:
        try:
            async with asyncio.timeout(1.0):
                await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return f"redis: {type(exc).__name__}: {exc}"[:200]
        return None if self.engine.connected else "redis: subscriber reconnecting"

    async def close(self) -> None:
        for sequencer in self._sequencers:
            await sequencer.close()
        for store in self._user_messages:
            await store.close()
        await self.engine.close()
        await self._redis.aclose()
