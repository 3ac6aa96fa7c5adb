"""The cluster's message engine: broker messages between nodes over Redis pub/sub (SPEC §8).

* One channel per route (``<prefix><route>``, prefix ``--redis-key-prefix``). A node subscribes
  to a route's channel only while it has local subscribers (or a handler) for it, so it decodes
  only traffic someone on it wants.
* Publishing is batched: messages published during one event-loop iteration go out in one
  pipeline, by one flusher task, in publish order — so order per destination holds from each
  node, and a burst costs one round trip, not one per message.
* Every delivery comes back through Redis, including to subscribers on the publishing node:
  each node delivers a message exactly once, whichever node published it.
* If Redis goes away, the backplane's readiness says so (``/readyz`` 503), publishes are dropped and
  counted (messages are ephemeral; bookings live in the database), the subscriber connection is
  retried with exponential backoff, and every watched channel is subscribed again on recovery.
  ``concert_hub_redis_connected`` follows the subscriber connection, and every recovery counts
  in ``concert_hub_redis_reconnects_total``.

Wire format of a message: ``[message_id, headers]`` as JSON, a newline, then the body bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.backplane.redis.batches import InOrderBatches
from server.engine import Connected, Deliver, Message
from server.metrics import InfraMetrics

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0
#: Most messages in one pipeline.
PIPELINE = 512


def encode(message: Message) -> bytes:
    head = json.dumps([message.message_id, message.headers], separators=(",", ":"))
    return head.encode() + b"\n" + message.body


def decode(route: str, data: bytes) -> Message:
    head, _, body = data.partition(b"\n")
    message_id, headers = json.loads(head)
    return Message(route, message_id, tuple((k, v) for k, v in headers), body)


class RedisEngine:
    def __init__(self, redis: Redis, prefix: str, metrics: InfraMetrics | None = None) -> None:
        self._redis = redis
        self._metrics = metrics
        self._prefix = prefix
        self._deliver: Deliver | None = None
        self._watched: set[str] = set()
        self._outbox = InOrderBatches[Message](self._publish)
        self._changes = asyncio.Event()
        self._subscriber: asyncio.Task[None] | None = None
        #: Set by :meth:`close`: the subscriber loop stops when it sees it (see there).
        self._closing = False
        self._connected = False
        self._ever_connected = False
        self._on_reconnect: list[Connected] = []
        #: Routes whose channels the subscriber connection is subscribed to right now, and an
        #: event set (and replaced) whenever that changes.
        self._live: set[str] = set()
        self._live_changed = asyncio.Event()
        self.dropped = 0

    @property
    def connected(self) -> bool:
        """Whether the subscriber connection is up (it reconnects by itself)."""
        return self._connected

    def _set_connected(self, up: bool) -> None:
        if up == self._connected:
            return
        self._connected = up
        if self._metrics is not None:
            self._metrics.redis_connected.set(1 if up else 0)
            if up and self._ever_connected:
                self._metrics.redis_reconnects.inc()

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._subscriber = asyncio.create_task(self._subscribe_loop(), name="redis-subscribe")

    async def close(self) -> None:
        """Publish what is still pending (the batches' close: for up to ``FLUSH_S``), then
        stop the subscriber loop.

        Cancelling is not enough: redis-py turns the cancellation of a command in flight into
        a connection error, which a loop takes for an outage and carries on from, waiting for
        work that never comes (a node that failed to start, stopping while it published, hung
        here). So the subscriber loop also stops once it sees ``_closing``, and is woken.
        """
        self._closing = True
        self._changes.set()
        await self._outbox.close()
        if self._subscriber is not None:
            self._subscriber.cancel()
            await asyncio.gather(self._subscriber, return_exceptions=True)

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, message: Message) -> None:
        self._outbox.add(message)

    async def _publish(self, messages: list[Message]) -> None:
        """Publish what gathered since the last round trip, :data:`PIPELINE` to a pipeline."""
        for start in range(0, len(messages), PIPELINE):
            batch = messages[start : start + PIPELINE]
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for message in batch:
                        pipe.publish(self._prefix + message.route, encode(message))
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

    def when_connected(self, callback: Connected) -> None:
        self._on_reconnect.append(callback)

    async def watching(self, route: str) -> None:
        while route not in self._live:
            await self._live_changed.wait()

    def _set_live(self, routes: set[str]) -> None:
        self._live = routes
        self._live_changed.set()
        self._live_changed = asyncio.Event()

    async def _subscribe_loop(self) -> None:
        """Keep a pub/sub connection subscribed to exactly the watched routes; reconnect."""
        backoff = 0.1
        while not self._closing:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.ping()
                self._set_connected(True)
                catch_up, self._ever_connected = self._ever_connected, True
                backoff = 0.1
                subscribed: set[str] = set()
                self._changes.set()
                reader = asyncio.create_task(self._read(pubsub))
                try:
                    while not self._closing:
                        await self._changes.wait()
                        self._changes.clear()
                        wanted = set(self._watched)
                        add, drop = wanted - subscribed, subscribed - wanted
                        if add:
                            await pubsub.subscribe(*(self._prefix + r for r in add))
                        if drop:
                            await pubsub.unsubscribe(*(self._prefix + r for r in drop))
                        subscribed = wanted
                        self._set_live(set(wanted))
                        if catch_up:  # subscribed again: now read what was missed
                            catch_up = False
                            log.warning("redis is back; catching up with the other nodes")
                            for callback in self._on_reconnect:
                                callback()
                        if reader.done():
                            reader.result()  # re-raise the reader's connection error
                finally:
                    reader.cancel()
                await pubsub.aclose()  # closing
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except (RedisError, OSError) as exc:
                self._set_connected(False)
                self._set_live(set())
                await pubsub.aclose()
                if self._closing:
                    return
                log.warning("redis unavailable (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _read(self, pubsub: object) -> None:
        try:
            while True:
                item = await pubsub.get_message(timeout=1.0)  # type: ignore[attr-defined]
                if item is None or item.get("type") != "message":
                    continue
                if self._deliver is not None:
                    route = item["channel"].decode()[len(self._prefix) :]
                    self._deliver(decode(route, item["data"]))
        except (RedisError, OSError):
            self._set_connected(False)
            self._changes.set()  # wake the subscribe loop so it notices and reconnects
            raise
