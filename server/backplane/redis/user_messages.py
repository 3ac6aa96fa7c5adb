"""Messages to users kept in Redis for replay after a reconnect to any node (issue 17).

One list per user route, ``<prefix>replay:<route>``: each entry is the time it was kept (ms since
the epoch), a newline, and the message in the engine's wire format. Keeping and publishing go in
one pipeline, ``RPUSH``, ``LTRIM`` to the last ``count``, ``PEXPIRE`` to ``ttl_s``, then
``PUBLISH`` on the route's channel, so a message is kept before any node can deliver it. Entries
older than ``ttl_s`` are skipped when read; the list itself expires ``ttl_s`` after its latest
message. One flusher sends them in publish order, batched per event-loop turn.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.backplane.redis.batches import InOrderBatches
from server.backplane.redis.engine import decode, encode
from server.engine import Message

log = logging.getLogger(__name__)


class RedisUserMessages:
    def __init__(self, redis: Redis, prefix: str, count: int, ttl_s: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self.count = count
        self.ttl_ms = int(ttl_s * 1000)
        self._outbox = InOrderBatches[Message](self._keep_and_publish)

    def _key(self, route: str) -> str:
        return f"{self._prefix}replay:{route}"

    def publish(self, message: Message) -> None:
        self._outbox.add(message)

    async def close(self) -> None:
        await self._outbox.close()

    async def _keep_and_publish(self, batch: list[Message]) -> None:
        now = str(int(time.time() * 1000)).encode()
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for message in batch:
                    data = encode(message)
                    key = self._key(message.route)
                    pipe.rpush(key, now + b"\n" + data)
                    pipe.ltrim(key, -self.count, -1)
                    pipe.pexpire(key, self.ttl_ms)
                    pipe.publish(self._prefix + message.route, data)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable, %d user messages dropped: %s", len(batch), exc)

    async def after(self, route: str, message_id: str) -> list[Message]:
        entries = await self._redis.lrange(self._key(route), 0, -1)
        horizon = int(time.time() * 1000) - self.ttl_ms
        kept: list[Message] = []
        for entry in entries:
            raw = entry.encode() if isinstance(entry, str) else entry
            at, _, data = raw.partition(b"\n")
            if int(at) > horizon:
                kept.append(decode(route, data))
        ids = [m.message_id for m in kept]
        return kept[ids.index(message_id) + 1 :] if message_id in ids else kept
