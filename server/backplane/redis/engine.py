"""The cluster engine: messages between nodes over Redis pub/sub (SPEC §8).

* One channel per route (``chub:<route>``). A node subscribes to a route's channel only while it
  has local subscribers for it, so it decodes only traffic someone on it wants.
* Publishing is batched: messages published during one event-loop iteration go out in one
  pipeline, by one flusher task, in publish order — so order per destination holds from each
  node, and a burst costs one round trip, not one per message.
* Every delivery comes back through Redis, including to subscribers on the publishing node:
  each node delivers a message exactly once, whichever node published it.
* If Redis goes away, ``check_ready`` reports it (``/readyz`` 503), publishes are dropped and
  counted (messages are ephemeral; bookings live in the database), the subscriber connection is
  retried with exponential backoff, and every watched channel is subscribed again on recovery.

Wire format of a message: ``[message_id, headers]`` as JSON, a newline, then the body bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import deque

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from server.engine import Deliver, Message

log = logging.getLogger(__name__)

PREFIX = "chub:"
MAX_BACKOFF_S = 5.0


def encode(message: Message) -> bytes:
    head = json.dumps([message.message_id, message.headers], separators=(",", ":"))
    return head.encode() + b"\n" + message.body


def decode(channel: bytes, data: bytes) -> Message:
    head, _, body = data.partition(b"\n")
    message_id, headers = json.loads(head)
    route = channel.decode()[len(PREFIX) :]
    return Message(route, message_id, tuple((k, v) for k, v in headers), body)


class RedisEngine:
    def __init__(self, url: str) -> None:
        self._url = url
        # A bounded pool that makes callers wait for a free connection (redis-py's default pool
        # raises instead): 10,000 users joining at once queue for 64 connections, not fail.
        pool = BlockingConnectionPool.from_url(url, max_connections=64, timeout=10)
        # After Redis restarts, each pooled connection fails once on first use ("Connection
        # closed by server"); one quick retry on a fresh connection hides that from callers.
        self._redis: Redis = Redis(
            connection_pool=pool,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            health_check_interval=15,
        )
        self._deliver: Deliver | None = None
        self._watched: set[str] = set()
        self._outbox: deque[Message] = deque()
        self._wakeup = asyncio.Event()
        self._changes = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = False
        self.dropped = 0

    @property
    def redis(self) -> Redis:
        return self._redis

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="redis-publish"),
            asyncio.create_task(self._subscribe_loop(), name="redis-subscribe"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, message: Message) -> None:
        self._outbox.append(message)
        self._wakeup.set()

    async def _flush_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), 512))]
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for message in batch:
                            pipe.publish(PREFIX + message.route, encode(message))
                        await pipe.execute()
                except (RedisError, OSError) as exc:
                    self.dropped += len(batch)
                    log.warning("redis publish failed, %d messages dropped: %s", len(batch), exc)

    # -- subscriptions -------------------------------------------------------------------------

    def watch(self, route: str) -> None:
        self._watched.add(route)
        self._changes.set()

    def unwatch(self, route: str) -> None:
        self._watched.discard(route)
        self._changes.set()

    async def _subscribe_loop(self) -> None:
        """Keep a pub/sub connection subscribed to exactly the watched routes; reconnect."""
        backoff = 0.1
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.ping()
                self._connected = True
                backoff = 0.1
                subscribed: set[str] = set()
                self._changes.set()
                reader = asyncio.create_task(self._read(pubsub))
                try:
                    while True:
                        await self._changes.wait()
                        self._changes.clear()
                        wanted = set(self._watched)
                        add, drop = wanted - subscribed, subscribed - wanted
                        if add:
                            await pubsub.subscribe(*(PREFIX + r for r in add))
                        if drop:
                            await pubsub.unsubscribe(*(PREFIX + r for r in drop))
                        subscribed = wanted
                        if reader.done():
                            reader.result()  # re-raise the reader's connection error
                finally:
                    reader.cancel()
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except (RedisError, OSError) as exc:
                self._connected = False
                log.warning("redis unavailable (%s); retrying in %.1fs", exc, backoff)
                await pubsub.aclose()
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _read(self, pubsub: object) -> None:
        try:
            while True:
                item = await pubsub.get_message(timeout=1.0)  # type: ignore[attr-defined]
                if item is None or item.get("type") != "message":
                    continue
                if self._deliver is not None:
                    self._deliver(decode(item["channel"], item["data"]))
        except (RedisError, OSError):
            self._connected = False
            self._changes.set()  # wake the subscribe loop so it notices and reconnects
            raise

    async def check_ready(self) -> str | None:
        try:
            async with asyncio.timeout(1.0):
                await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as exc:
            return f"redis: {type(exc).__name__}: {exc}"[:200]
        return None if self._connected else "redis: subscriber reconnecting"
