"""``/queue/`` messages of a cluster: one Redis stream per queue, one consumer group.

* Key ``<prefix>queue:<name>``; every node is a consumer (its ``--node-id``) of the group
  ``consumers``. A SEND is an ``XADD`` (by a script that also applies the bounds and the
  dedupe key, atomically, and stores a COMMIT's SENDs all or none); a batch of them goes in one
  ``MULTI``.
* A node *takes* messages with one script, one round trip: first claimable ones (whose holder
  has not renewed its claim for ``--queue-lease-s``: a dead node's, or released ones), then new
  ones (``XREADGROUP``). It finds claimable ones with ``XPENDING … IDLE <lease>``, which walks the
  pending list inside Redis, oldest first, and claims them with ``XCLAIM`` (which checks the idle
  time again). (``XAUTOCLAIM`` examines at most ten times ``COUNT`` entries a call: a take behind
  10,000 unacked messages needed a thousand round trips.) The walk costs Redis time in
  proportion to the unacked messages, so it is made only when something may be claimable: a
  release since the last walk that left nothing (the hint ``<prefix>queue-claims:<name>``
  counts them), or a tenth of a lease since the last walk (a node may have died; its messages
  come back within 1.1 leases). What a node took sits in the group's pending list under its
  name until it settles it (``XACK`` and ``XDEL``) or releases it (``XCLAIM … IDLE``: marked
  long idle, so the next take of any node takes it again, oldest first, ahead of new messages,
  as a redelivery). A live node renews its claim on what its consumers still have out
  (``XCLAIM … JUSTID``) every third of the lease.
* ``redelivered`` comes from the entry's delivery counter, read before the claim:
  ``XREADGROUP`` sets it to 1, a claim adds one, ``XCLAIM … JUSTID`` (a release, a renewal)
  leaves it, so an entry with a count of 1 or more may have been seen by a client. A message
  taken but sent to no client (its subscribers left while the take was under way) is given back
  with its count set back (``RETRYCOUNT``) to what it was before the take: its next delivery is
  still a first one.
* Bounds: the script drops entries older than ``--queue-max-age-s`` (``XTRIM MINID``, from
  Redis's clock) and then, when the stream holds ``--queue-max-length`` entries (counting those
  out with consumers), refuses the message or (``drop-head``) deletes the oldest ready ones to
  make room, never one out with a consumer, and refuses when too few are ready.
* Dedupe keys (``<prefix>queue-dedupe:<key>``) live a day: an integration event sent again within
  a day is stored once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import StreamIdT

from server.queue_store import Outgoing, Queued, QueuePolicy, groups

GROUP = "consumers"
DEDUPE_TTL_S = 86400
#: ``XCLAIM IDLE`` of a released message: far past any lease.
RELEASED_IDLE_MS = 10**9

# One script call stores a group (a COMMIT's SENDs, or one message) all or none.
# KEYS: per message, its stream and its dedupe key (the stream key again when there is none).
# ARGV: max length, "1" to drop the head when full, max age ms, dedupe TTL s, group, lease ms;
#       then per message: headers JSON, body, "1" when its dedupe key is one.
# Returns 1 when stored (a message whose dedupe key was stored before counts as stored), 0 when
# refused: some stream would hold more than max length, and (drop-head) it has too few ready
# messages to drop for the group. A ready message is one no consumer holds: released or a dead
# node's (pending, idle past the lease; the oldest) or never delivered (after the group's
# last-delivered id). MAXLEN would trim the oldest entries, which are those out with consumers.
_APPEND = """
local n = #KEYS / 2
local max, group, lease = tonumber(ARGV[1]), ARGV[5], ARGV[6]
local now = redis.call('TIME')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
local adding, order, skip, claimed = {}, {}, {}, {}
for i = 1, n do
  local stream, dedupe = KEYS[2 * i - 1], KEYS[2 * i]
  local deduped = ARGV[3 * i + 6] == '1'
  if deduped and (claimed[dedupe] or redis.call('EXISTS', dedupe) == 1) then
    skip[i] = true
  else
    if deduped then claimed[dedupe] = true end
    if adding[stream] == nil then
      if redis.call('EXISTS', stream) == 0 then
        redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
      end
      if oldest > 0 then redis.call('XTRIM', stream, 'MINID', oldest) end
      adding[stream] = 0
      order[#order + 1] = stream
    end
    adding[stream] = adding[stream] + 1
  end
end
local function last_delivered(stream)
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local fields = {}
    for j = 1, #info, 2 do fields[info[j]] = info[j + 1] end
    if fields['name'] == group then return fields['last-delivered-id'] end
  end
  return '0-0'
end
local function ready(stream, need)
  local taken, fresh = {}, {}
  for _, entry in ipairs(redis.call('XPENDING', stream, group, 'IDLE', lease, '-', '+', need)) do
    if #redis.call('XRANGE', stream, entry[1], entry[1]) > 0 then taken[#taken + 1] = entry[1] end
  end
  if #taken < need then
    local after = '(' .. last_delivered(stream)
    for _, entry in ipairs(redis.call('XRANGE', stream, after, '+', 'COUNT', need - #taken)) do
      fresh[#fresh + 1] = entry[1]
    end
  end
  if #taken + #fresh < need then return nil end
  return {taken, fresh}
end
local drops = {}
for _, stream in ipairs(order) do
  local need = redis.call('XLEN', stream) + adding[stream] - max
  if need > 0 then
    if ARGV[2] ~= '1' then return 0 end
    local found = ready(stream, need)
    if found == nil then return 0 end
    drops[stream] = found
  end
end
for stream, found in pairs(drops) do
  local taken, fresh = found[1], found[2]
  if #taken > 0 then
    redis.call('XACK', stream, group, unpack(taken))
    redis.call('XDEL', stream, unpack(taken))
  end
  if #fresh > 0 then redis.call('XDEL', stream, unpack(fresh)) end
end
for i = 1, n do
  if not skip[i] then
    if ARGV[3 * i + 6] == '1' then redis.call('SET', KEYS[2 * i], '1', 'EX', ARGV[4]) end
    local headers, body = ARGV[3 * i + 4], ARGV[3 * i + 5]
    redis.call('XADD', KEYS[2 * i - 1], '*', 'h', headers, 'b', body)
  end
end
return 1
"""


# A take: up to COUNT messages for this node, claimable ones first, then new ones.
# KEYS: the stream, its claim hint. ARGV: group, consumer, lease ms, count.
# Returns per message: its id, its delivery count before this take (0: never sent), its fields
# (a flat list). Claimable: pending and idle for at least the lease (released, or a dead
# node's), oldest first; XCLAIM checks the idle time again, and drops an entry deleted from the
# stream from the pending list without returning it. It takes the ids in slices: Lua's unpack
# has a bound on arguments. The pending list is walked only when something may be claimable:
# the hint counts releases since the last walk that left nothing claimable, and a walk is due
# anyway every tenth of a lease, when a node may have died.
_TAKE = """
local stream, hint = KEYS[1], KEYS[2]
local group, consumer, lease, count = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local state = redis.call('HMGET', hint, 'released', 'walked')
local taken = {}
if (tonumber(state[1]) or 0) > 0 or now_ms - (tonumber(state[2]) or 0) >= tonumber(lease) / 10 then
  local pending = redis.call('XPENDING', stream, group, 'IDLE', lease, '-', '+', count)
  for first = 1, #pending, 500 do
    local ids, counts = {}, {}
    for i = first, math.min(first + 499, #pending) do
      ids[#ids + 1] = pending[i][1]
      counts[pending[i][1]] = pending[i][4]
    end
    for _, entry in ipairs(redis.call('XCLAIM', stream, group, consumer, lease, unpack(ids))) do
      if entry and entry[2] then taken[#taken + 1] = {entry[1], counts[entry[1]], entry[2]} end
    end
  end
  if #pending < count then redis.call('HSET', hint, 'released', 0, 'walked', now_ms) end
end
if #taken < count then
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count - #taken,
                          'STREAMS', stream, '>')
  if read then
    for _, entry in ipairs(read[1][2]) do
      if entry[2] then taken[#taken + 1] = {entry[1], 0, entry[2]} end
    end
  end
end
return taken
"""


def _message(entry_id: bytes, fields: dict[bytes, bytes], redelivered: bool) -> Queued:
    headers = tuple((k, v) for k, v in json.loads(fields[b"h"]))
    return Queued(entry_id.decode(), headers, fields[b"b"], redelivered)


class RedisQueueStore:
    def __init__(self, redis: Redis, prefix: str, consumer: str, policy: QueuePolicy) -> None:
        self._redis = redis
        self._prefix = prefix
        self._consumer = consumer
        self._policy = policy
        self._append = redis.register_script(_APPEND)
        self._take = redis.register_script(_TAKE)
        self._grouped: set[str] = set()

    def _key(self, queue: str) -> str:
        return f"{self._prefix}queue:{queue}"

    async def append(self, messages: Sequence[Outgoing]) -> list[bool]:
        policy = self._policy
        cut = groups(messages)
        async with self._redis.pipeline(transaction=True) as pipe:
            for group in cut:
                keys: list[str] = []
                args: list[Any] = [
                    policy.max_length,
                    "1" if policy.overflow == "drop-head" else "0",
                    int(policy.max_age_s * 1000),
                    DEDUPE_TTL_S,
                    GROUP,
                    int(policy.lease_s * 1000),
                ]
                for message in group:
                    key = self._key(message.queue)
                    dedupe = message.dedupe
                    keys += [key, f"{self._prefix}queue-dedupe:{dedupe}" if dedupe else key]
                    args += [json.dumps(message.headers), message.body, "1" if dedupe else "0"]
                await self._append(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        return [bool(int(r)) for r, group in zip(results, cut, strict=True) for _ in group]

    async def _group(self, key: str) -> None:
        if key in self._grouped:
            return
        try:
            await self._redis.xgroup_create(key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._grouped.add(key)

    def _hint(self, queue: str) -> str:
        return f"{self._prefix}queue-claims:{queue}"

    async def take(self, queue: str, count: int) -> list[Queued]:
        key = self._key(queue)
        await self._group(key)
        lease_ms = int(self._policy.lease_s * 1000)
        try:
            taken: Any = await self._take(
                keys=[key, self._hint(queue)], args=[GROUP, self._consumer, lease_ms, count]
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was deleted under us: make it again
                self._grouped.discard(key)
                return []
            raise
        return [
            _message(i, dict(zip(flat[::2], flat[1::2], strict=True)), redelivered=n > 0)
            for i, n, flat in taken
        ]

    async def settle(self, queue: str, ids: Sequence[str]) -> None:
        key = self._key(queue)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(key, GROUP, *ids)
            pipe.xdel(key, *ids)
            await pipe.execute()

    async def release(self, queue: str, ids: Sequence[str]) -> None:
        await self._back(queue, [(list(ids), None)])

    async def give_back(self, queue: str, messages: Sequence[Queued]) -> None:
        await self._back(
            queue,
            [
                ([m.id for m in messages if m.redelivered is seen], int(seen))
                for seen in (False, True)
            ],
        )

    async def _back(self, queue: str, batches: Sequence[tuple[list[str], int | None]]) -> None:
        """Mark taken entries long idle (claimable by the next take of any node), each batch with
        its delivery count (``RETRYCOUNT``; ``None``: as it is), then tell takes to walk the
        pending list (in that order: a walk between the two would reset the hint)."""
        key = self._key(queue)
        async with self._redis.pipeline(transaction=True) as pipe:
            for ids, count in batches:
                if ids:
                    pipe.xclaim(
                        key, GROUP, self._consumer, 0, list[StreamIdT](ids),
                        idle=RELEASED_IDLE_MS, retrycount=count, justid=True,
                    )  # fmt: skip
            pipe.hincrby(self._hint(queue), "released", 1)
            await pipe.execute()

    async def keep(self, queue: str, ids: Sequence[str]) -> None:
        await self._redis.xclaim(self._key(queue), GROUP, self._consumer, 0, list(ids), justid=True)
