"""Where seat-map deltas get their ``seq`` and snapshots come from (SPEC §6, §8).

A :class:`SeatSequencer` turns committed seat changes into conflated deltas with a sequence
number, and serves snapshots consistent with that sequence. The server asks every loaded event's
sequencer for a delta each tick and sends what it gets once through the engine to every node.

* :class:`InProcessSequencer` (single node): the node's own in-memory
  :class:`~booking.seatmap.SeatMap` is the whole truth.
* :class:`RedisSequencer` (cluster): one sequence per event for the whole cluster. Nodes append
  the changes they commit to a Redis list; each tick, the one node holding the event's lease (a
  key with a one-second expiry, so another node takes over within a second if it dies) runs an
  atomic script that drains the list, conflates it to each seat's latest status, applies it to a
  shared status hash and increments ``seq``. Deltas are therefore produced once, not once per
  node, and a snapshot (hash + ``seq``, read atomically, cached per ``seq`` on each node) is
  consistent with every delta that follows it. If Redis was unreachable while changes were
  committed, the shared map is rebuilt from the database (the record) when it is back and ``seq``
  jumps, so every client sees a gap and resubscribes for a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from booking.service import BookingService

log = logging.getLogger(__name__)

#: How far ``seq`` jumps after a rebuild, so that no client mistakes it for the next delta.
REBUILD_JUMP = 1000
LEASE_MS = 1000


def delta_body(event_id: int, seq: int, changes: list[tuple[str, str]]) -> bytes:
    delta = {"type": "delta", "event_id": event_id, "seq": seq,
             "changes": [[seat, status] for seat, status in changes]}  # fmt: skip
    return json.dumps(delta, separators=(",", ":")).encode()


def snapshot_body(event_id: int, seq: int, seats: list[tuple[str, str]]) -> bytes:
    snap = {"type": "snapshot", "event_id": event_id, "seq": seq,
            "seats": [[seat, status] for seat, status in seats]}  # fmt: skip
    return json.dumps(snap, separators=(",", ":")).encode()


class SeatSequencer(Protocol):
    async def record(self, event_id: int, changes: list[tuple[str, str]]) -> None:
        """Changes this node committed (already applied to its own in-memory map)."""

    async def tick(self, event_id: int) -> bytes | None:
        """The next delta to send to everyone, if this node is to produce it."""

    async def snapshot(self, event_id: int) -> tuple[int, bytes]:
        """``(seq, encoded snapshot)``: the map as of ``seq``."""


class InProcessSequencer:
    def __init__(self, booking: BookingService) -> None:
        self.booking = booking

    async def record(self, event_id: int, changes: list[tuple[str, str]]) -> None:
        pass  # the node's own seat map recorded them when they were applied

    async def tick(self, event_id: int) -> bytes | None:
        return (await self.booking.seat_map(event_id)).tick()

    async def snapshot(self, event_id: int) -> tuple[int, bytes]:
        seatmap = await self.booking.seat_map(event_id)
        return seatmap.seq, seatmap.snapshot()


_RECORD = "redis.call('RPUSH', KEYS[1], ARGV[1])"

# KEYS: pending list, status hash, seq, lease. ARGV: node id, lease ms.
# Returns nil when another node leads, {} when nothing changed, else {seq, seat, status, ...}.
_TICK = """
local holder = redis.call('GET', KEYS[4])
if holder and holder ~= ARGV[1] then return nil end
redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1} end
local batches = redis.call('LRANGE', KEYS[1], 0, -1)
if #batches == 0 then return {} end
redis.call('DEL', KEYS[1])
local latest, order = {}, {}
for _, batch in ipairs(batches) do
  for _, change in ipairs(cjson.decode(batch)) do
    if latest[change[1]] == nil then order[#order + 1] = change[1] end
    latest[change[1]] = change[2]
  end
end
local out = {redis.call('INCR', KEYS[3])}
for _, seat in ipairs(order) do
  redis.call('HSET', KEYS[2], seat, latest[seat])
  out[#out + 1] = seat
  out[#out + 1] = latest[seat]
end
return out
"""

# Build (ARGV[1] == '0': only if absent) or rebuild the shared map from the given statuses.
# A rebuild moves seq past anything a client may have seen (at least ARGV[2] on, and at least
# ARGV[3], a time-based floor that holds even if Redis lost the old seq), and queues an empty
# batch so the next tick sends a delta: every subscriber then sees the gap and resubscribes.
# ARGV: rebuild flag, jump, floor, seat, status, seat, status, ...
_INIT = """
if ARGV[1] == '0' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[1])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
if ARGV[1] == '1' then
  seq = math.max(seq + tonumber(ARGV[2]), tonumber(ARGV[3]))
  redis.call('RPUSH', KEYS[1], '[]')
end
redis.call('SET', KEYS[3], seq)
return seq
"""

_SNAPSHOT = "return {redis.call('GET', KEYS[3]) or '0', redis.call('HGETALL', KEYS[2])}"


def _keys(event_id: int) -> list[str]:
    tag = f"{{sm:{event_id}}}"
    return [f"{tag}:pending", f"{tag}:status", f"{tag}:seq", f"{tag}:lease"]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisSequencer:
    def __init__(self, redis: Redis, booking: BookingService, node_id: str) -> None:
        self._redis = redis
        self.booking = booking
        self.node_id = node_id
        self._record = redis.register_script(_RECORD)
        self._tick = redis.register_script(_TICK)
        self._init = redis.register_script(_INIT)
        self._snapshot = redis.register_script(_SNAPSHOT)
        self._ready: set[int] = set()
        #: Events whose changes could not be recorded: rebuild from the database when possible.
        self._stale: set[int] = set()
        self._snapshots: dict[int, tuple[int, bytes]] = {}
        self._fetching: dict[int, asyncio.Future[tuple[int, bytes]]] = {}

    async def _ensure(self, event_id: int) -> None:
        if event_id in self._ready and event_id not in self._stale:
            return
        rebuild = event_id in self._stale
        if rebuild:
            await self.booking.reload_seat_map(event_id)  # ours may have missed others' news
        seatmap = await self.booking.seat_map(event_id)
        flat: list[str] = []
        for seat, status in seatmap.statuses.items():
            flat += [seat, status]
        # Deltas come at most once a tick (10 a second), so tenths of a second since the epoch
        # exceed every seq this event can have had: a floor that survives Redis losing its data.
        floor = int(time.time() * 10)
        await self._init(
            keys=_keys(event_id), args=["1" if rebuild else "0", REBUILD_JUMP, floor, *flat]
        )
        if rebuild:
            log.warning("seat map of event %d rebuilt from the database after an outage", event_id)
        self._ready.add(event_id)
        self._stale.discard(event_id)

    async def record(self, event_id: int, changes: list[tuple[str, str]]) -> None:
        try:
            await self._ensure(event_id)
            await self._record(keys=_keys(event_id), args=[json.dumps(changes)])
        except (RedisError, OSError) as exc:
            self._stale.add(event_id)
            log.warning("could not record seat changes of event %d: %s", event_id, exc)

    async def tick(self, event_id: int) -> bytes | None:
        try:
            await self._ensure(event_id)
            result = await self._tick(keys=_keys(event_id), args=[self.node_id, LEASE_MS])
        except (RedisError, OSError):
            self._stale.add(event_id)
            return None
        if not result:
            return None
        if int(result[0]) == -1:
            # The shared map is gone (Redis restarted empty): rebuild it from the database.
            self._stale.add(event_id)
            return None
        seq = int(result[0])
        pairs = [(_text(result[i]), _text(result[i + 1])) for i in range(1, len(result), 2)]
        return delta_body(event_id, seq, pairs)

    async def snapshot(self, event_id: int) -> tuple[int, bytes]:
        """The shared map as of its current ``seq``; one fetch per ``seq`` per node however
        many subscribers ask at once (a cheap ``GET`` of ``seq`` answers the rest)."""
        await self._ensure(event_id)
        cached = self._snapshots.get(event_id)
        if cached is not None and int(await self._redis.get(_keys(event_id)[2]) or 0) == cached[0]:
            return cached
        pending = self._fetching.get(event_id)
        if pending is None:
            pending = self._fetching[event_id] = asyncio.ensure_future(self._fetch(event_id))
            pending.add_done_callback(lambda _: self._fetching.pop(event_id, None))
        return await asyncio.shield(pending)

    async def _fetch(self, event_id: int) -> tuple[int, bytes]:
        raw_seq, flat = await self._snapshot(keys=_keys(event_id))
        seq = int(raw_seq)
        shared = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        order = (await self.booking.seat_map(event_id)).statuses  # layout order
        seats = [(seat, shared.get(seat, status)) for seat, status in order.items()]
        snapshot = (seq, snapshot_body(event_id, seq, seats))
        self._snapshots[event_id] = snapshot
        return snapshot
