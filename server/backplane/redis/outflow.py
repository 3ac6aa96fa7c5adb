"""One adaptive admission rate per event for the whole cluster (issue 15, :mod:`booking.outflow`).

Every node measures its own health (hold p99, pool wait, loop lag), but the waiting room in Redis
is one queue with one token bucket: the rate that fills it must be one too, or each node's
admission tick refills the shared bucket at its own rate and the cluster admits at whichever
node spoke last. So, once a second per adaptive event, each node:

1. reports its signals in ``{wr:E}:health`` (node → ``time hold_p99 pool_wait lag``);
2. tries to take the step for this second (``SET {wr:E}:outflow:step NX PX 900``);
3. the node that took it reads every node's report of the last :data:`FRESH_S` seconds, steps
   the shared rate (AIMD of :class:`~booking.outflow.Outflow`) on the *worst* of them — the
   cluster slows down as soon as any node is over budget — and writes it to ``{wr:E}:outflow``
   (``per_s``, ``reason``);
4. every node adopts the shared rate (so its admission ticks, the admin stats and the public
   queue stats all say the same number).

A node that stops reporting drops out of the decision after :data:`FRESH_S`; if the step's node
dies, another takes the next second's step. Redis unreachable: the node keeps its last rate.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from booking.catalog import EventInfo
from booking.outflow import Outflow, Rate, Signals, worst

log = logging.getLogger(__name__)

#: A node's report counts for this long (a few steps): a stopped node drops out of the decision.
FRESH_S = 3.0
#: One step per second for the cluster: the step's lock lives a little less than a second.
STEP_LOCK_MS = 900

_EXCHANGE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], 3600)
local leader = redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[3])
return {leader and 1 or 0, redis.call('HGETALL', KEYS[1]),
        redis.call('HMGET', KEYS[2], 'per_s', 'reason')}
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisOutflow:
    """The cluster's shared adaptive rates (one per event), decided once a second."""

    def __init__(self, redis: Redis, prefix: str, node_id: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._node = node_id
        self._exchange = redis.register_script(_EXCHANGE)

    def _keys(self, event_id: int) -> list[str]:
        tag = f"{self._prefix}{{wr:{event_id}}}"
        return [f"{tag}:health", f"{tag}:outflow", f"{tag}:outflow:step"]

    async def step(self, info: EventInfo, signals: Signals, outflow: Outflow) -> Rate:
        """Report this node's ``signals``, take the cluster's step if it is this node's turn,
        and adopt the shared rate into ``outflow``; returns it."""
        keys = self._keys(info.id)
        shared = keys[1]
        now = time.time()
        report = f"{now:.3f} {signals.hold_p99_s} {signals.pool_wait_s} {signals.loop_lag_s}"
        try:
            leader, reports, (per_s, reason) = await self._exchange(
                keys=keys, args=[self._node, report, STEP_LOCK_MS]
            )
            if per_s is not None:
                outflow.rates[info.id] = Rate(float(per_s), _text(reason))
            if not int(leader):
                return outflow.describe(info)
            fresh = []
            for i in range(0, len(reports), 2):
                at, *values = _text(reports[i + 1]).split()
                if now - float(at) <= FRESH_S:
                    fresh.append(Signals(*(float(v) for v in values)))
            rate = outflow.step(info, worst(fresh or [signals]))
            await self._redis.hset(shared, mapping={"per_s": rate.per_s, "reason": rate.reason})
            await self._redis.expire(shared, 3600)
            return rate
        except (RedisError, OSError) as exc:
            log.warning("adaptive outflow of event %d: Redis unreachable (%s); keeping %.1f/s",
                        info.id, exc, outflow.rate(info))  # fmt: skip
            return outflow.describe(info)
