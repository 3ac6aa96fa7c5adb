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
  Redis's clock) and then, when the stream would hold more than ``--queue-max-length`` entries or
  ``--queue-max-bytes`` of bodies (counting those out with consumers), refuses the message or
  (``drop-head``) deletes the oldest ready ones to make room, never one out with a consumer, and
  refuses when too few are ready. The bytes of each stream's bodies are kept in the hash
  ``<prefix>queue-bytes`` (queue → bytes), changed by the same scripts that add, drop, trim and
  settle entries, so it is exact.
* The number of queues (``--max-queues``) is the cluster's: the sorted set ``<prefix>queue-names``
  holds every queue that has a stream or subscribers, scored with the time (Redis's clock, ms)
  until which a node's subscribers keep it (a node renews it with its lease, every third of
  ``--queue-lease-s``; 0: none). A SEND to a queue not in it, or a node's first subscriber of
  one, adds it unless that makes one more than ``--max-queues`` (the server's own queues are
  always added). Before refusing, the script *sweeps*: every queue whose stream is empty and
  whose subscribers' time is past is deleted (stream, claim hint, byte count, name), so the
  bound counts exactly the queues holding messages or having subscribers when it matters; a
  settle that empties a queue nobody subscribes to deletes it at once. (The sweep names keys
  the script builds from the prefix: one Redis, not a Redis Cluster, holds the queues.)
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

from server.queue_store import Outgoing, Queued, QueuePolicy, Refused, groups

GROUP = "consumers"
DEDUPE_TTL_S = 86400
#: ``XCLAIM IDLE`` of a released message: far past any lease.
RELEASED_IDLE_MS = 10**9
# Shared by the scripts: the time now (Redis's clock, ms), an entry's body size, and the sweep.
# KEYS[1], KEYS[2]: the names (sorted set), the byte counts (hash); ARGV[1]: the key prefix.
_COMMON = """
local names, sizes, prefix = KEYS[1], KEYS[2], ARGV[1]
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local function body_size(fields)
  for j = 1, #fields, 2 do
    if fields[j] == 'b' then return #fields[j + 1] end
  end
  return 0
end
local function forget(name)
  redis.call('DEL', prefix .. 'queue:' .. name, prefix .. 'queue-claims:' .. name)
  redis.call('HDEL', sizes, name)
  redis.call('ZREM', names, name)
end
local function sweep()
  for _, name in ipairs(redis.call('ZRANGEBYSCORE', names, '-inf', '(' .. now_ms)) do
    if redis.call('XLEN', prefix .. 'queue:' .. name) == 0 then forget(name) end
  end
end
local function add_bytes(name, delta)
  if delta ~= 0 and redis.call('HINCRBY', sizes, name, delta) <= 0 then
    redis.call('HDEL', sizes, name)
  end
end
"""

# One script call stores a group (a COMMIT's SENDs, or one message) all or none.
# KEYS: the names, the byte counts; then per message, its stream and its dedupe key (the stream
# key again when there is none).
# ARGV: the key prefix, max length, "1" to drop the head when full, max age ms, dedupe TTL s,
#       group, lease ms, max bytes, max queues; then per message: its queue, "1" when it is the
#       server's own (never refused for the number of queues), headers JSON, body, "1" when its
#       dedupe key is one.
# Returns 1 when stored (a message whose dedupe key was stored before counts as stored), 0 when
# refused for a bound of its queue: some stream would hold more than max length or max bytes,
# and (drop-head) it has too few ready messages to drop for the group; 2 when it would make one
# queue more than max queues. A ready message is one no consumer holds: released or a dead
# node's (pending, idle past the lease; the oldest) or never delivered (after the group's
# last-delivered id). MAXLEN would trim the oldest entries, which are those out with consumers.
_APPEND = (
    _COMMON
    + """
local max, drop_head, group, lease = tonumber(ARGV[2]), ARGV[3] == '1', ARGV[6], ARGV[7]
local max_bytes, max_queues = tonumber(ARGV[8]), tonumber(ARGV[9])
local oldest = now_ms - tonumber(ARGV[4])
local n = (#KEYS - 2) / 2
local function arg(i, k) return ARGV[9 + 5 * (i - 1) + k] end
local adding, adding_bytes, order, skip, claimed, name_of = {}, {}, {}, {}, {}, {}
local new_queues, refusable = 0, false
for i = 1, n do
  local stream, dedupe = KEYS[2 * i + 1], KEYS[2 * i + 2]
  local deduped = arg(i, 5) == '1'
  if deduped and (claimed[dedupe] or redis.call('EXISTS', dedupe) == 1) then
    skip[i] = true
  else
    if deduped then claimed[dedupe] = true end
    if adding[stream] == nil then
      adding[stream], adding_bytes[stream] = 0, 0
      order[#order + 1] = stream
      name_of[stream] = arg(i, 1)
      if not redis.call('ZSCORE', names, arg(i, 1)) then
        new_queues = new_queues + 1
        if arg(i, 2) ~= '1' then refusable = true end
      end
    end
    adding[stream] = adding[stream] + 1
    adding_bytes[stream] = adding_bytes[stream] + #arg(i, 4)
  end
end
if refusable and redis.call('ZCARD', names) + new_queues > max_queues then
  sweep()
  if redis.call('ZCARD', names) + new_queues > max_queues then return 2 end
end
local function last_delivered(stream)
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local fields = {}
    for j = 1, #info, 2 do fields[info[j]] = info[j + 1] end
    if fields['name'] == group then return fields['last-delivered-id'] end
  end
  return '0-0'
end
-- The oldest ready entries that make room for count more entries and bytes more bytes:
-- {pending ids, fresh ids, bytes freed}, or nil when there are too few.
local function ready(stream, count, bytes)
  local taken, fresh, freed = {}, {}, 0
  local function done() return #taken + #fresh >= count and freed >= bytes end
  local start = '-'
  while not done() do
    local pending = redis.call('XPENDING', stream, group, 'IDLE', lease, start, '+', 100)
    if #pending == 0 then break end
    for _, entry in ipairs(pending) do
      local found = redis.call('XRANGE', stream, entry[1], entry[1])
      if #found > 0 then
        taken[#taken + 1] = entry[1]
        freed = freed + body_size(found[1][2])
        if done() then break end
      end
    end
    start = '(' .. pending[#pending][1]
  end
  local after = '(' .. last_delivered(stream)
  while not done() do
    local entries = redis.call('XRANGE', stream, after, '+', 'COUNT', 100)
    if #entries == 0 then break end
    for _, entry in ipairs(entries) do
      fresh[#fresh + 1] = entry[1]
      freed = freed + body_size(entry[2])
      if done() then break end
    end
    after = '(' .. entries[#entries][1]
  end
  if not done() then return nil end
  return {taken, fresh, freed}
end
local drops, made = {}, {}
for _, stream in ipairs(order) do
  local name = name_of[stream]
  if redis.call('EXISTS', stream) == 0 then
    made[stream] = true  -- made below, once the group is known to fit: none left behind empty
    if adding[stream] > max or adding_bytes[stream] > max_bytes then return 0 end
  elseif oldest > 0 then
    -- Entries past the age bound go, and their bytes with them (read in slices: bodies).
    local trimmed, after = 0, '-'
    while true do
      local entries = redis.call('XRANGE', stream, after, '(' .. oldest, 'COUNT', 100)
      if #entries == 0 then break end
      for _, entry in ipairs(entries) do trimmed = trimmed + body_size(entry[2]) end
      after = '(' .. entries[#entries][1]
    end
    if trimmed > 0 then
      redis.call('XTRIM', stream, 'MINID', oldest)
      add_bytes(name, -trimmed)
    end
  end
  local count = redis.call('XLEN', stream) + adding[stream] - max
  local bytes = tonumber(redis.call('HGET', sizes, name) or '0') + adding_bytes[stream] - max_bytes
  if not made[stream] and (count > 0 or bytes > 0) then
    if not drop_head then return 0 end
    local found = ready(stream, math.max(count, 0), math.max(bytes, 0))
    if found == nil then return 0 end
    drops[stream] = found
  end
end
for stream, found in pairs(drops) do
  local taken, fresh, freed = found[1], found[2], found[3]
  for first = 1, #taken, 500 do
    local ids = {unpack(taken, first, math.min(first + 499, #taken))}
    redis.call('XACK', stream, group, unpack(ids))
    redis.call('XDEL', stream, unpack(ids))
  end
  for first = 1, #fresh, 500 do
    redis.call('XDEL', stream, unpack(fresh, first, math.min(first + 499, #fresh)))
  end
  add_bytes(name_of[stream], -freed)
end
for _, stream in ipairs(order) do
  if made[stream] then redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM') end
  redis.call('ZADD', names, 'NX', 0, name_of[stream])
end
for i = 1, n do
  if not skip[i] then
    if arg(i, 5) == '1' then redis.call('SET', KEYS[2 * i + 2], '1', 'EX', ARGV[5]) end
    redis.call('XADD', KEYS[2 * i + 1], '*', 'h', arg(i, 3), 'b', arg(i, 4))
    add_bytes(arg(i, 1), #arg(i, 4))
  end
end
return 1
"""
)


# A take: up to COUNT messages for this node, claimable ones first, then new ones.
# KEYS: the stream, its claim hint. ARGV: group, consumer, lease ms, count.
# Returns per message: its id, its delivery count before this take (0: never sent), its fields
# (a flat list). Claimable: pending and idle for at least the lease (released, or a dead
# node's), oldest first; XCLAIM checks the idle time again, and drops an entry deleted from the
# stream from the pending list without returning it. It takes the ids in slices: Lua's unpack
# has a bound on arguments. The pending list is walked only when something may be claimable:
# the hint counts releases since the last walk that left nothing claimable, and a walk is due
# anyway every tenth of a lease, when a node may have died. No stream (a queue with subscribers
# and nothing sent yet, or one swept away): nothing to take.
_TAKE = """
local stream, hint = KEYS[1], KEYS[2]
if redis.call('EXISTS', stream) == 0 then return {} end
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

# A settle: the entries go (XACK, XDEL) and their bytes with them; a stream left empty that no
# node's subscribers keep is forgotten. KEYS: the names, the byte counts, the stream.
# ARGV: the key prefix, group, queue, then the ids.
_SETTLE = (
    _COMMON
    + """
local stream, group, name = KEYS[3], ARGV[2], ARGV[3]
local freed = 0
for i = 4, #ARGV do
  local found = redis.call('XRANGE', stream, ARGV[i], ARGV[i])
  if #found > 0 then freed = freed + body_size(found[1][2]) end
end
for first = 4, #ARGV, 500 do
  local last = math.min(first + 499, #ARGV)
  redis.call('XACK', stream, group, unpack(ARGV, first, last))
  redis.call('XDEL', stream, unpack(ARGV, first, last))
end
add_bytes(name, -freed)
local kept_until = tonumber(redis.call('ZSCORE', names, name) or '0')
if redis.call('XLEN', stream) == 0 and kept_until < now_ms then forget(name) end
return 1
"""
)

# A node's subscribers of a queue: it counts, and stays while empty, until the time given (a
# lease from now); renewed by the node every third of a lease. KEYS: the names, the byte counts.
# ARGV: the key prefix, queue, lease ms, max queues, "1" to add it even past max queues (the
# server's own, or a renewal). Returns 1, or 0 when it would be one queue more than max queues.
_OPEN = (
    _COMMON
    + """
local name, until_ms = ARGV[2], now_ms + tonumber(ARGV[3])
if not redis.call('ZSCORE', names, name) and ARGV[5] ~= '1' then
  if redis.call('ZCARD', names) >= tonumber(ARGV[4]) then sweep() end
  if redis.call('ZCARD', names) >= tonumber(ARGV[4]) then return 0 end
end
redis.call('ZADD', names, 'GT', until_ms, name)
return 1
"""
)


#: What the append script answers, per group.
_OUTCOMES = {1: None, 0: Refused.FULL, 2: Refused.TOO_MANY_QUEUES}


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
        self._settle = redis.register_script(_SETTLE)
        self._open = redis.register_script(_OPEN)
        #: The keys every script of the bounds names first: the queues, their byte counts.
        self._shared = [f"{prefix}queue-names", f"{prefix}queue-bytes"]

    def _key(self, queue: str) -> str:
        return f"{self._prefix}queue:{queue}"

    async def append(self, messages: Sequence[Outgoing]) -> list[Refused | None]:
        policy = self._policy
        cut = groups(messages)
        async with self._redis.pipeline(transaction=True) as pipe:
            for group in cut:
                keys = list(self._shared)
                args: list[Any] = [
                    self._prefix,
                    policy.max_length,
                    "1" if policy.overflow == "drop-head" else "0",
                    int(policy.max_age_s * 1000),
                    DEDUPE_TTL_S,
                    GROUP,
                    int(policy.lease_s * 1000),
                    policy.max_bytes,
                    policy.max_queues,
                ]
                for message in group:
                    key = self._key(message.queue)
                    dedupe = message.dedupe
                    keys += [key, f"{self._prefix}queue-dedupe:{dedupe}" if dedupe else key]
                    always = "1" if policy.always_admitted(message.queue) else "0"
                    args += [message.queue, always, json.dumps(message.headers), message.body,
                             "1" if dedupe else "0"]  # fmt: skip
                await self._append(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
        return [_OUTCOMES[int(r)] for r, group in zip(results, cut, strict=True) for _ in group]

    def _hint(self, queue: str) -> str:
        return f"{self._prefix}queue-claims:{queue}"

    async def take(self, queue: str, count: int) -> list[Queued]:
        key = self._key(queue)
        lease_ms = int(self._policy.lease_s * 1000)
        try:
            taken: Any = await self._take(
                keys=[key, self._hint(queue)], args=[GROUP, self._consumer, lease_ms, count]
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # a stream made without its group: not by a node of ours
                return []
            raise
        return [
            _message(i, dict(zip(flat[::2], flat[1::2], strict=True)), redelivered=n > 0)
            for i, n, flat in taken
        ]

    async def settle(self, queue: str, ids: Sequence[str]) -> None:
        await self._settle(
            keys=[*self._shared, self._key(queue)], args=[self._prefix, GROUP, queue, *ids]
        )

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
        await self._subscribed(queue, renew=True)
        if ids:
            key = self._key(queue)
            await self._redis.xclaim(key, GROUP, self._consumer, 0, list(ids), justid=True)

    async def open(self, queue: str) -> bool:
        return await self._subscribed(queue, renew=self._policy.always_admitted(queue))

    async def close(self, queue: str) -> None:
        pass  # other nodes may subscribe too: it stays until its time runs out (a lease)

    async def _subscribed(self, queue: str, *, renew: bool) -> bool:
        """Count ``queue`` as subscribed for a lease from now (``renew``: however many queues
        there are); whether it is."""
        policy = self._policy
        args: list[str | int] = [
            self._prefix, queue, int(policy.lease_s * 1000), policy.max_queues, int(renew),
        ]  # fmt: skip
        return bool(await self._open(keys=self._shared, args=args))
