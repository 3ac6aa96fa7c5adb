"""The cluster's seat sequencer: one ``seq`` per event for every node, in Redis (SPEC §6, §8).

Nodes append the changes they commit to the event's pending list in Redis (one ``RPUSH`` per
change, batched per event-loop turn: the only time a change crosses Redis). Each tick, the one node
holding the event's lease (a key with a ``--seat-lease-ms`` expiry, so another node takes over
soon after it dies) runs an atomic script that drains the list, conflates it to each seat's latest
status, applies it to a shared status hash and increments ``seq``. Deltas are therefore produced
once, not once per node, and a snapshot (hash + ``seq``, read atomically) is consistent with every
delta that follows it.

If Redis was unreachable while changes were committed, or lost its data, the shared map is rebuilt
from the database (the record) when it is back and ``seq`` jumps past anything a client may have
seen, so every client sees a gap and resubscribes for a fresh snapshot.

Keys, under the backplane's prefix and one hash tag per event (a Redis Cluster keeps them on one
shard): ``{sm:E}:pending``, ``{sm:E}:status``, ``{sm:E}:seq``, ``{sm:E}:lease``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from booking.inventory import Inventory
from booking.seatmap import SeatChange
from server.backplane.redis.batches import InOrderBatches
from server.seat_sequencer import SeatDelta, SeatSnapshot

log = logging.getLogger(__name__)

#: How far ``seq`` jumps after a rebuild, so that no client mistakes it for the next delta.
REBUILD_JUMP = 1000

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

# Build (ARGV[1] == '0': only if absent) or rebuild the shared map from the given statuses. A
# first build starts seq at the time-based floor ARGV[3], so an event's seqs never repeat (a
# client resuming with resume-seq from before Redis lost its data cannot be mistaken).
# A rebuild moves seq past anything a client may have seen (at least ARGV[2] on, and at least
# ARGV[3], a time-based floor that holds even if Redis lost the old seq), and queues an empty
# batch so the next tick sends a delta: every subscriber then sees the gap and resubscribes.
# ARGV: rebuild flag, jump, floor, seat, status, seat, status, ...
_INIT = """
if ARGV[1] == '0' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[1])
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
local seq = tonumber(redis.call('GET', KEYS[3]) or ARGV[3])
if ARGV[1] == '1' then
  seq = math.max(seq + tonumber(ARGV[2]), tonumber(ARGV[3]))
  redis.call('RPUSH', KEYS[1], '[]')
end
redis.call('SET', KEYS[3], seq)
return seq
"""

_SNAPSHOT = "return {redis.call('GET', KEYS[3]) or '0', redis.call('HGETALL', KEYS[2])}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisSequencer:
    def __init__(
        self, redis: Redis, prefix: str, inventory: Inventory, node_id: str, lease_ms: int
    ) -> None:
        self._redis = redis
        self._tick = redis.register_script(_TICK)
        self._init = redis.register_script(_INIT)
        self._snapshot = redis.register_script(_SNAPSHOT)
        self._prefix = prefix
        self.inventory = inventory
        self.node_id = node_id
        self.lease_ms = lease_ms
        self._ready: set[int] = set()
        #: Events whose changes could not be recorded: rebuild from the database when possible.
        self._stale: set[int] = set()
        self._snapshots: dict[int, SeatSnapshot] = {}
        self._fetching: dict[int, asyncio.Future[SeatSnapshot]] = {}
        #: Committed changes not yet sent, sent in commit order (conflation keeps the last).
        self._outbox = InOrderBatches[SeatChange](self._flush)

    def _keys(self, event_id: int) -> list[str]:
        tag = f"{self._prefix}{{sm:{event_id}}}"
        return [f"{tag}:pending", f"{tag}:status", f"{tag}:seq", f"{tag}:lease"]

    async def _ensure(self, event_id: int) -> None:
        if event_id in self._ready and event_id not in self._stale:
            return
        rebuild = event_id in self._stale
        keys = self._keys(event_id)
        if not rebuild and await self._redis.exists(keys[1]):
            self._ready.add(event_id)  # another node built the shared map: nothing to send
            return
        if rebuild:
            await self.inventory.reload_seat_map(event_id)  # ours may have missed others' news
        seatmap = await self.inventory.seat_map(event_id)
        flat: list[str] = []
        for seat, status in seatmap.statuses.items():
            flat += [seat, status]
        # Deltas come at most once a tick (100 a second at the shortest), so milliseconds since
        # the epoch exceed every seq this event can have had: a floor that survives Redis
        # losing its data.
        floor = int(time.time() * 1000)
        await self._init(keys=keys, args=["1" if rebuild else "0", REBUILD_JUMP, floor, *flat])
        if rebuild:
            log.warning("seat map of event %d rebuilt from the database after an outage", event_id)
        self._ready.add(event_id)
        self._stale.discard(event_id)

    def record(self, change: SeatChange) -> None:
        self._outbox.add(change)

    async def close(self) -> None:
        await self._outbox.close()

    async def _flush(self, batch: list[SeatChange]) -> None:
        events = {change.event_id for change in batch}
        try:
            for event_id in events:
                await self._ensure(event_id)
            async with self._redis.pipeline(transaction=False) as pipe:
                for change in batch:
                    pipe.rpush(self._keys(change.event_id)[0], json.dumps(change.seats))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._stale |= events
            log.warning("could not record seat changes of events %s: %s", sorted(events), exc)

    async def tick(self, event_id: int) -> SeatDelta | None:
        try:
            await self._ensure(event_id)
            result = await self._tick(keys=self._keys(event_id), args=[self.node_id, self.lease_ms])
        except (RedisError, OSError):
            self._stale.add(event_id)
            return None
        if not result:
            return None
        if int(result[0]) == -1:
            # The shared map is gone (Redis restarted empty): rebuild it from the database.
            self._stale.add(event_id)
            return None
        seats = tuple((_text(result[i]), _text(result[i + 1])) for i in range(1, len(result), 2))
        await self._correct(event_id, seats)
        return SeatDelta(event_id, int(result[0]), seats)

    async def _correct(self, event_id: int, seats: tuple[tuple[str, str], ...]) -> None:
        """Queue the record's status of every seat of this delta that it contradicts, for the
        next tick.

        Each node pushes its own changes in commit order, but nothing orders two nodes' pushes:
        a hold committed on B and released on A a moment later can reach the list as
        "available" then "held", and the conflation keeps the last, so the seat would show held
        (and be skipped by every node's map) until something else changed it. The database
        orders the two commits, so the producer reads the delta's seats back from it: a status
        it contradicts is queued again as the record has it, and converges by the next tick (a
        change committed since is read too, and its own push only repeats it).
        """
        try:
            recorded = await self.inventory.recorded_statuses(event_id, [s for s, _ in seats])
        except SQLAlchemyError as exc:
            log.warning("could not check the seat map of event %d: %s", event_id, exc)
            return
        wrong = [(seat, recorded[seat]) for seat, status in seats
                 if recorded.get(seat, status) != status]  # fmt: skip
        if not wrong:
            return
        log.info("seat map of event %d: %d seats corrected from the database", event_id,
                 len(wrong))  # fmt: skip
        try:
            await self._redis.rpush(self._keys(event_id)[0], json.dumps(wrong))
        except (RedisError, OSError):
            self._stale.add(event_id)  # the shared map is rebuilt from the database instead

    async def snapshot(self, event_id: int) -> SeatSnapshot:
        """The shared map as of its current ``seq``: one fetch per ``seq`` per node however many
        subscribers ask at once (a cheap ``GET`` of ``seq`` answers the rest)."""
        await self._ensure(event_id)
        cached = self._snapshots.get(event_id)
        seq = int(await self._redis.get(self._keys(event_id)[2]) or 0)
        if cached is not None and cached.seq == seq:
            return cached
        pending = self._fetching.get(event_id)
        if pending is None:
            pending = self._fetching[event_id] = asyncio.ensure_future(self._fetch(event_id))
            pending.add_done_callback(lambda _: self._fetching.pop(event_id, None))
        return await asyncio.shield(pending)

    async def _fetch(self, event_id: int) -> SeatSnapshot:
        raw_seq, flat = await self._snapshot(keys=self._keys(event_id))
        shared = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
        order = (await self.inventory.seat_map(event_id)).statuses  # layout order
        seats = tuple((seat, shared.get(seat, status)) for seat, status in order.items())
        snapshot = self._snapshots[event_id] = SeatSnapshot(event_id, int(raw_seq), seats)
        return snapshot
