"""The cluster's waiting room in Redis: one queue per event shared by every node.

Same semantics as :class:`~booking.waiting_room.InProcessWaitingRoom`; state lives in a handful
of keys per event (under the backplane's key prefix), all under one hash tag so a Redis Cluster
keeps them on one shard:

``{wr:E}:seq``      hash user → sequence number
``{wr:E}:at``       hash sequence number → user
``{wr:E}:pre``      set of users waiting in the pre-queue
``{wr:E}:meta``     hash: last_seq, serving, opened, tokens, tokens_at
``{wr:E}:active``   sorted set user → admission expiry (admitted, still shopping)
``{wr:E}:finished`` hash user → expired | closed
``{wr:E}:admits``   sorted set of admission times (for admitted-per-minute)
``{wr:E}:log``      list of admission times, the admission of sequence number n at index n-1
                    (the fairness audit's admission log, :mod:`booking.fairness`)
``{wr:E}:joined``   hash user → when they joined (for time to admission)
``{wr:E}:waits``    hash bucket → admissions whose time to admission fell in it
                    (:data:`~booking.waiting_room.WAIT_BUCKETS_S`)

``meta`` also counts ``abandoned`` (admissions that lapsed unused).

Joining (batched: all joins of one event-loop turn in one call), opening, admitting and offering
returned seats (admitting the next users at once, whatever the rate) are Lua scripts, each
atomic, so any node may run them at any time:
two nodes admitting at once admit each user once and respect the shared rate and cap. Opening
shuffles the pre-queue in Python (a cryptographic RNG) and hands the order to the script, which
numbers exactly the users still in the pre-queue and appends any who arrived meanwhile.

**Redis losing its data** (a restart without persistence, a failover to an empty replica) takes
the queue with it. Joining and admitting tell whether Redis still has the event marked open; a
node that had seen it open and finds the mark gone knows the data was lost (as the seat
sequencer does with its status hash) and opens the queue again from the database's view (the
event's settings say the sale is open): whoever joined since is numbered, and every waiting user
who re-joins is numbered in the order they come back. Lost for good: the positions held before
(nothing in the database records them), the admitted shoppers' count against the cap (their
admission tokens stay valid until they expire) and who had finished. With the append-only file
of ``docker-compose.yml`` a restart loses at most the last second instead.

**Redis unreachable**: every call raises :class:`~booking.errors.Unavailable` (a 503 with
``Retry-After`` at the edges). The outage is logged once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from booking.errors import Unavailable
from booking.fairness import Placement, place
from booking.waiting_room import (
    ADMITTED,
    CLOSED,
    QUEUED,
    WAIT_BUCKETS_S,
    Policy,
    Position,
    Stats,
    eta,
    queued,
)
from server.task_set import TaskSet

log = logging.getLogger(__name__)
T = TypeVar("T")

#: What a client is told to wait (``Retry-After``) while Redis is unreachable.
RETRY_AFTER_S = 5

# Join many users at once (one call per event-loop turn, however many join): numbers each new
# user (or puts them in the pre-queue before opening) and returns, per user, the sequence number
# (-1 in the pre-queue), the finished state ('' if none) and the admission expiry ('' if none),
# then last_seq, serving, the pre-queue size, the number of active shoppers and whether the queue
# is open (1/0): everything the replies need, in one round trip.
_JOIN_MANY = """
local opened = redis.call('HGET', KEYS[3], 'opened') == '1'
local out = {}
for i = 2, #ARGV do
  local user = ARGV[i]
  local seq = redis.call('HGET', KEYS[1], user)
  if not seq then
    redis.call('HSETNX', KEYS[9], user, ARGV[1])
    if opened then
      seq = redis.call('HINCRBY', KEYS[3], 'last_seq', 1)
      redis.call('HSET', KEYS[1], user, seq)
      redis.call('HSET', KEYS[2], seq, user)
    else
      redis.call('SADD', KEYS[4], user)
      seq = -1
    end
  end
  out[#out + 1] = tonumber(seq)
  out[#out + 1] = redis.call('HGET', KEYS[6], user) or ''
  out[#out + 1] = redis.call('ZSCORE', KEYS[5], user) or ''
end
local meta = redis.call('HMGET', KEYS[3], 'last_seq', 'serving')
out[#out + 1] = meta[1] or '0'
out[#out + 1] = meta[2] or '0'
out[#out + 1] = redis.call('SCARD', KEYS[4])
out[#out + 1] = redis.call('ZCARD', KEYS[5])
out[#out + 1] = opened and 1 or 0
return out
"""

_OPEN = """
if redis.call('HGET', KEYS[3], 'opened') == '1' then return 0 end
local n = tonumber(redis.call('HGET', KEYS[3], 'last_seq') or '0')
local function number(user)
  if redis.call('SREM', KEYS[4], user) == 1 and not redis.call('HGET', KEYS[1], user) then
    n = n + 1
    redis.call('HSET', KEYS[1], user, n)
    redis.call('HSET', KEYS[2], n, user)
  end
end
for _, user in ipairs(ARGV) do number(user) end
for _, user in ipairs(redis.call('SMEMBERS', KEYS[4])) do number(user) end
redis.call('HSET', KEYS[3], 'last_seq', n, 'opened', '1')
return n
"""

# Shared by the admission scripts: admit the next ``count`` users after ``serving`` into
# ``admitted`` (their admission expires at now + ttl; the admissions log KEYS[7] gets their
# numbers). Script locals are declared after it, so it takes them as arguments.
_ADMIT_NEXT = """
local edges = {EDGES}
local function admit_next(serving, count, now, ttl, admitted)
  local since = tonumber(redis.call('HGET', KEYS[3], 'opened_at') or '0')
  local stamp = string.format('%.3f', now)
  for seq = serving + 1, serving + count do
    local user = redis.call('HGET', KEYS[2], seq)
    redis.call('ZADD', KEYS[5], now + ttl, user)
    redis.call('ZADD', KEYS[7], now, seq)
    redis.call('RPUSH', KEYS[8], stamp)
    local waited = now - math.max(tonumber(redis.call('HGET', KEYS[9], user) or now), since)
    local bucket = #edges
    for i, edge in ipairs(edges) do
      if waited <= edge then bucket = i - 1 break end
    end
    redis.call('HINCRBY', KEYS[10], bucket, 1)
    admitted[#admitted + 1] = user
  end
end
""".replace("EDGES", ", ".join(str(edge) for edge in WAIT_BUCKETS_S))

_ADMIT = (
    _ADMIT_NEXT
    + """
local now, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local cap, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local go = ARGV[5] == '1'
local seats = tonumber(ARGV[6] or '-1')  -- seats left (-1: not known)
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now)
for _, user in ipairs(lapsed) do
  redis.call('HSET', KEYS[6], user, 'expired')
end
if #lapsed > 0 then redis.call('HINCRBY', KEYS[3], 'abandoned', #lapsed) end
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
local meta = redis.call('HMGET', KEYS[3], 'last_seq', 'serving', 'tokens', 'tokens_at', 'opened')
local last_seq, serving = tonumber(meta[1] or '0'), tonumber(meta[2] or '0')
local burst = math.max(rate, 1)
local tokens = burst  -- a new bucket starts full
if meta[4] then
  tokens = math.min(burst, tonumber(meta[3]) + (now - tonumber(meta[4])) * rate)
end
local admitted = {}
if go and meta[5] == '1' then
  local room = cap - redis.call('ZCARD', KEYS[5])
  local count = math.min(math.floor(tokens), room, last_seq - serving)
  if seats >= 0 then  -- no more shoppers than seats left for them (booking.waiting_room)
    count = math.min(count, math.max(0, seats - redis.call('ZCARD', KEYS[5])))
  end
  if count > 0 then
    admit_next(serving, count, now, ttl, admitted)
    serving = serving + count
    tokens = tokens - count
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - 60)
redis.call('HSET', KEYS[3], 'serving', serving, 'tokens', tokens, 'tokens_at', now)
table.insert(admitted, 1, meta[5] == '1' and 1 or 0)
return admitted
"""
)

# Seats came back: admit the next ARGV[1] users in line at once (not paced, not capped).
_OFFER = (
    _ADMIT_NEXT
    + """
local now, wanted, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local meta = redis.call('HMGET', KEYS[3], 'last_seq', 'serving')
local last_seq, serving = tonumber(meta[1] or '0'), tonumber(meta[2] or '0')
local count = math.min(wanted, last_seq - serving)
local admitted = {}
if count > 0 then
  admit_next(serving, count, now, ttl, admitted)
  redis.call('HSET', KEYS[3], 'serving', serving + count)
end
return admitted
"""
)

_KEY_NAMES = ("seq", "at", "meta", "pre", "active", "finished", "admits", "log", "joined", "waits")


class RedisWaitingRoom:
    def __init__(self, redis: Redis, prefix: str = "", rng: random.Random | None = None) -> None:
        self._redis = redis
        self._prefix = prefix
        self._rng = rng or random.SystemRandom()
        self._join_many = redis.register_script(_JOIN_MANY)
        #: Joins waiting for this event-loop turn's batch, per event.
        self._batches: dict[int, list[tuple[str, Policy, asyncio.Future[Position]]]] = {}
        self._flushes = TaskSet()
        #: Events known opened, so joins skip the check (the flag reverts only when Redis
        #: loses its data, which joining and admitting detect).
        self._opened: set[int] = set()
        #: When Redis became unreachable (``None``: it answers), so the outage is logged once.
        self._down_since: float | None = None
        self._open = redis.register_script(_OPEN)
        self._admit = redis.register_script(_ADMIT)
        self._offer = redis.register_script(_OFFER)

    def _keys(self, event_id: int) -> list[str]:
        tag = f"{self._prefix}{{wr:{event_id}}}"
        return [f"{tag}:{name}" for name in _KEY_NAMES]

    # -- Redis outages ---------------------------------------------------------------------

    async def _reach(self, call: Awaitable[T]) -> T:
        """``call``'s result; Redis unreachable → :class:`Unavailable` (the outage logged when
        it starts, and when it ends)."""
        try:
            result = await call
        except (RedisError, OSError) as exc:
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("waiting room: Redis unreachable (%s); joins answer 503 until it "
                            "is back", exc)  # fmt: skip
            raise Unavailable(
                "the waiting room is unavailable for a moment; try again",
                retry_after_s=RETRY_AFTER_S,
            ) from None
        if self._down_since is not None:
            log.warning("waiting room: Redis reachable again after %.1f s",
                        time.monotonic() - self._down_since)  # fmt: skip
            self._down_since = None
        return result

    def _lost(self, event_id: int) -> bool:
        """Redis says the event's queue is not open: if this node had seen it open, Redis lost
        its data. Forget it (so it is opened again) and say so once; ``True`` if it was lost."""
        if event_id not in self._opened:
            return False
        self._opened.discard(event_id)
        log.warning("waiting room of event %d: Redis lost its queue (restarted without its "
                    "data?); reopened from the event's settings, the positions held before are "
                    "lost and waiting users are numbered as they re-join", event_id)  # fmt: skip
        return True

    # -- the queue ---------------------------------------------------------------------------

    async def join(self, event_id: int, user: str, policy: Policy) -> Position:
        """Join; concurrent joins share one round trip (10,000 users arriving together are a
        few hundred script calls, not 30,000 commands)."""
        return await self._reach(self._join(event_id, user, policy))

    async def _join(self, event_id: int, user: str, policy: Policy) -> Position:
        if policy.open and event_id not in self._opened:
            await self._ensure_open(event_id)  # an open sale is first come, first served
        future: asyncio.Future[Position] = asyncio.get_running_loop().create_future()
        batch = self._batches.setdefault(event_id, [])
        batch.append((user, policy, future))
        if len(batch) == 1:
            asyncio.get_running_loop().call_soon(self._start_flush, event_id)
        position = await future
        if position.seq is None and position.state in QUEUED and policy.open:
            # Joined the pre-queue of an open sale: Redis lost the queue. Open it again, then
            # look again; also when the admission tick noticed the loss first and is opening it
            # right now (the join then came between the loss and the reopening).
            self._lost(event_id)
            await self._ensure_open(event_id)
            again = await self.positions(event_id, [user], policy)
            if again:
                return again[0]
        return position

    def _start_flush(self, event_id: int) -> None:
        self._flushes.start(self._flush(event_id))

    async def _flush(self, event_id: int) -> None:
        batch = self._batches.pop(event_id, [])
        if not batch:
            return
        try:
            reply = await self._join_many(
                keys=self._keys(event_id), args=[time.time(), *(u for u, _, _ in batch)]
            )
        except BaseException as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        last, served, pre_count, active = (int(n) for n in reply[-5:-1])
        waiting_total = last - served + pre_count
        for i, (user, policy, future) in enumerate(batch):
            number, end, score = reply[3 * i : 3 * i + 3]
            seq = int(number)
            found = _position(
                event_id, user, policy, waiting_total, served,
                number=seq if seq >= 0 else None,
                ended=_text(end) or None,
                admitted_until=float(score) if _text(score) else None,
                in_pre=seq < 0,
                active=active,
            )  # fmt: skip
            if not future.done() and found is not None:
                future.set_result(found)

    async def position(self, event_id: int, user: str, policy: Policy) -> Position | None:
        found = await self.positions(event_id, [user], policy)
        return found[0] if found else None

    async def positions(self, event_id: int, users: list[str], policy: Policy) -> list[Position]:
        if not users:
            return []
        seq, _, meta, pre, active, finished, *_ = self._keys(event_id)

        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hmget(meta, "last_seq", "serving")
                pipe.scard(pre)
                pipe.hmget(seq, users)
                pipe.hmget(finished, users)
                pipe.zmscore(active, users)
                pipe.smismember(pre, users)
                pipe.zcard(active)
                return list(await pipe.execute())

        replies = await self._reach(read())
        (last_seq, serving), pre_count, seqs, ended, scores, in_pre, active_count = replies
        last, served = int(last_seq or 0), int(serving or 0)
        waiting_total = last - served + int(pre_count)
        out = []
        for user, raw_seq, end, score, pre_member in zip(
            users, seqs, ended, scores, in_pre, strict=True
        ):
            found = _position(
                event_id, user, policy, waiting_total, served,
                number=int(raw_seq) if raw_seq is not None else None,
                ended=_text(end) if end is not None else None,
                admitted_until=float(score) if score is not None else None,
                in_pre=bool(pre_member),
                active=int(active_count),
            )  # fmt: skip
            if found is not None:
                out.append(found)
        return out

    async def admit(self, event_id: int, policy: Policy, now: float) -> list[str]:
        return await self._reach(self._admit_now(event_id, policy, now))

    async def _admit_now(self, event_id: int, policy: Policy, now: float) -> list[str]:
        keys = self._keys(event_id)
        if policy.open and event_id not in self._opened:
            await self._ensure_open(event_id)
        opened, *users = await self._admit(
            keys=keys,
            args=[now, policy.rate_per_s, policy.max_active, policy.admission_ttl_s,
                  "1" if policy.open and not policy.paused else "0",
                  -1 if policy.seats is None else policy.seats],
        )  # fmt: skip
        if policy.open and not int(opened) and self._lost(event_id):
            await self._ensure_open(event_id)  # the next tick admits again
        return [u.decode() if isinstance(u, bytes) else str(u) for u in users]

    async def offer(self, event_id: int, count: int, policy: Policy, now: float) -> list[str]:
        if policy.open and event_id not in self._opened:
            await self._ensure_open(event_id)
        users = await self._offer(
            keys=self._keys(event_id), args=[now, count, policy.admission_ttl_s]
        )
        return [_text(u) for u in users]

    async def _ensure_open(self, event_id: int) -> None:
        """Number the pre-queue in a uniformly shuffled order, once (the script checks)."""
        keys = self._keys(event_id)
        if await self._redis.hget(keys[2], "opened") in (b"1", "1"):
            self._opened.add(event_id)
            return
        members = [
            m.decode() if isinstance(m, bytes) else str(m)
            for m in await self._redis.smembers(keys[3])
        ]
        seed, salt = await self._seed(event_id)
        members = place(members, seed, salt)  # seeded, verifiable (booking.fairness)
        if await self._open(keys=keys, args=members):
            await self._redis.hset(keys[2], mapping={"placed": len(members),
                                                     "opened_at": time.time()})  # fmt: skip
        self._opened.add(event_id)

    async def _seed(self, event_id: int) -> tuple[bytes, bytes]:
        """The event's shuffle seed and queue-id salt, drawn once (whoever comes first)."""
        meta = self._keys(event_id)[2]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(meta, "seed", self._rng.randbytes(32).hex())
            pipe.hsetnx(meta, "salt", self._rng.randbytes(16).hex())
            pipe.hmget(meta, "seed", "salt")
            *_, (seed, salt) = await pipe.execute()
        return bytes.fromhex(_text(seed)), bytes.fromhex(_text(salt))

    async def placement(self, event_id: int) -> Placement:
        seed, salt = await self._seed(event_id)
        keys = self._keys(event_id)
        opened, placed, opened_at = await self._redis.hmget(
            keys[2], "opened", "placed", "opened_at"
        )
        count = int(placed or 0)
        users = await self._redis.hmget(keys[1], list(range(1, count + 1))) if count else []
        times = await self._redis.lrange(keys[7], 0, -1)
        served = await self._redis.hmget(keys[1], list(range(1, len(times) + 1))) if times else []
        admitted = [(_text(u), float(t)) for u, t in zip(served, times, strict=True)]
        return Placement(seed, salt, _text(opened or "") == "1",
                         float(opened_at) if opened_at else None,
                         [_text(u) for u in users], admitted)  # fmt: skip

    async def complete(self, event_id: int, user: str) -> None:
        keys = self._keys(event_id)
        if await self._reach(self._redis.zrem(keys[4], user)):
            await self._reach(self._redis.hset(keys[5], user, CLOSED))

    async def used(self, event_id: int, user: str) -> bool:
        ended = await self._reach(self._redis.hget(self._keys(event_id)[5], user))
        return ended is not None and _text(ended) == CLOSED

    async def stats(self, event_id: int) -> Stats:
        _, _, meta, pre, active, _, admits, _, _, waits = self._keys(event_id)
        now = time.time()

        async def read() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hmget(meta, "last_seq", "serving", "abandoned")
                pipe.scard(pre)
                pipe.zcard(active)
                pipe.zcount(admits, now - 60, "+inf")
                pipe.hgetall(waits)
                return list(await pipe.execute())

        (last_seq, serving, gone), pre_count, active_count, recent, hist = await self._reach(read())
        last, served = int(last_seq or 0), int(serving or 0)
        counts = {int(_text(k)): int(v) for k, v in hist.items()}
        return Stats(served, last - served + int(pre_count), float(recent), int(active_count),
                     int(gone or 0), tuple(counts.get(i, 0)
                                           for i in range(len(WAIT_BUCKETS_S) + 1)))  # fmt: skip


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _position(
    event_id: int,
    user: str,
    policy: Policy,
    waiting_total: int,
    served: int,
    *,
    number: int | None,
    ended: str | None,
    admitted_until: float | None,
    in_pre: bool,
    active: int,
) -> Position | None:
    """One user's standing from the raw facts Redis returned (``None``: never joined)."""
    if ended is not None:
        return Position(event_id, user, ended, number, None, None, waiting_total, None)
    if admitted_until is not None:
        return Position(event_id, user, ADMITTED, number, 0, 0, waiting_total, 0, admitted_until)
    if number is not None:
        ahead = number - served - 1
        return Position(event_id, user, queued(policy), number, ahead + 1, ahead, waiting_total,
                        eta(ahead, policy, active))  # fmt: skip
    if in_pre:
        return Position(event_id, user, queued(policy), None, None, None, waiting_total, None)
    return None
