"""The fair virtual waiting room in front of a sale (SPEC §5, §6).

Theory of operation
-------------------
Every user who joins gets a *sequence number* once and keeps it (re-joining is idempotent).
Users who join before the sale opens wait in a *pre-queue*; at opening they are shuffled uniformly
(a seeded, verifiable shuffle: :mod:`booking.fairness`) and numbered 1..P (Queue-it and
Cloudflare's pre-queue); later arrivals are numbered P+1, P+2, … in arrival order. Admission
advances one *serving counter* (AWS Virtual Waiting Room): everyone numbered up to it has been
admitted. So a waiting user's position is ``seq - serving``, derived
from two integers, and the cost of telling 10,000 people where they stand does not grow with how
often the queue moves.

Admission is paced per event by two knobs an admin can change live: admissions per second and a
cap on *active shoppers* (admitted users whose admission has neither expired nor been used up by
a purchase). Each admission yields a signed token (:mod:`booking.admission`) that holds require.

The room also knows the sale behind it (:class:`Policy` carries the seats available outside
holds): it never admits more users than there are seats left for the shoppers it has, so
admission stops at sell-out; waiting users then read ``paused`` (every seat is held, some may come
back) or ``sold_out`` (nothing held, nothing left) instead of ``waiting``, and stay in line.
Seats that come back from a lapsed hold are *offered* (:meth:`WaitingRoom.offer`): the next users
in line are admitted, one per seat, whatever the rate, and each gets one of the seats on hold.

Two implementations share the :class:`WaitingRoom` interface: :class:`InProcessWaitingRoom`
(embedded default, one node) and the cluster's, in Redis (one queue for all nodes, surviving a node
restart), which the server's backplane provides.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from booking.fairness import Placement, place

WAITING = "waiting"
ADMITTED = "admitted"
#: The admission lapsed unused (the user may join again at the back).
EXPIRED = "expired"
#: The user's turn is over: they bought, or the sale closed.
CLOSED = "closed"
#: Waiting, while every seat is held (some may come back).
PAUSED = "paused"
#: Waiting, while no seat is available and no hold is open (a waiting list).
SOLD_OUT = "sold_out"
#: The sale has seats to offer (a waiting user reads ``waiting``).
SELLING = "selling"
#: States of a user still in line.
QUEUED = frozenset({WAITING, PAUSED, SOLD_OUT})
#: Not in this waiting room (never joined): a state to render, not an error.
NOT_JOINED = "not_joined"


@dataclass(frozen=True, slots=True)
class Policy:
    """How fast and how many to admit; read from the event on every tick."""

    open: bool  # the sale is open: admit (before: pre-queue only)
    paused: bool
    rate_per_s: float
    max_active: int
    admission_ttl_s: int
    #: ``selling``, ``paused`` or ``sold_out`` (:func:`sale_state`).
    sale: str = SELLING
    #: Seats available outside holds (``None``: not known, admission is not bounded by it).
    seats: int | None = None


def sale_state(available: int, held: int) -> str:
    """``paused`` when every seat left is held, ``sold_out`` when none is left at all."""
    if available > 0:
        return SELLING
    return PAUSED if held > 0 else SOLD_OUT


def queued(policy: Policy) -> str:
    """The state a user still in line reads under ``policy``."""
    return WAITING if policy.sale == SELLING else policy.sale


def admissible(policy: Policy, active: int) -> int | None:
    """How many more users the sale has seats for, beside the ``active`` shoppers it has
    (``None``: unbounded). Each admitted shopper may want a seat, so no more are admitted than
    seats are left for them: at sell-out admission stops."""
    if policy.seats is None:
        return None
    return max(0, policy.seats - active)


@dataclass(frozen=True, slots=True)
class Offer:
    """Seats that came back, on hold for the user in line they were offered to."""

    event_id: int
    user: str
    hold_id: str
    seats: tuple[str, ...]
    expires_at: float  # unix time the hold lapses


@dataclass(frozen=True, slots=True)
class Position:
    """One user's standing in an event's waiting room (the edges render it, SPEC §6)."""

    event_id: int
    user: str
    state: str
    seq: int | None  # None while in the pre-queue
    position: int | None  # 1 = next to be admitted
    ahead: int | None
    waiting_total: int
    eta_seconds: int | None
    admitted_until: float | None = None  # unix time the admission expires
    #: The signed admission token (:class:`~booking.admissions.Admissions` stamps it).
    admission_token: str | None = None
    #: Seats offered to this admitted user, on hold for them (:meth:`WaitingRoom.offer`).
    offer: Offer | None = None


#: Upper edges (seconds) of the time-to-admission histogram's buckets; one more bucket counts
#: the longer waits. Time to admission runs from joining (or the opening, for the pre-queue).
WAIT_BUCKETS_S = (10, 30, 60, 120, 300, 600, 1800, 3600)


def wait_bucket(seconds: float) -> int:
    """The histogram bucket of a wait of ``seconds`` (:data:`WAIT_BUCKETS_S`)."""
    for index, edge in enumerate(WAIT_BUCKETS_S):
        if seconds <= edge:
            return index
    return len(WAIT_BUCKETS_S)


@dataclass(frozen=True, slots=True)
class Stats:
    serving: int
    waiting: int
    admitted_per_min: float
    active: int
    #: Users who gave up: admissions that lapsed unused (timed out), since the queue began.
    abandoned: int = 0
    #: Time-to-admission histogram: counts per :data:`WAIT_BUCKETS_S` bucket (+ overflow).
    waits: tuple[int, ...] = ()


class WaitingRoom(Protocol):
    async def join(self, event_id: int, user: str, policy: Policy) -> Position: ...

    async def position(self, event_id: int, user: str, policy: Policy) -> Position | None:
        """``None`` when the user never joined."""

    async def admit(self, event_id: int, policy: Policy, now: float) -> list[str]:
        """Open the pre-queue if due and admit whoever the policy allows now; returns users."""

    async def offer(self, event_id: int, count: int, policy: Policy, now: float) -> list[str]:
        """Admit the next ``count`` users in line at once, whatever the rate and the cap (seats
        came back for them); returns them (fewer when fewer wait)."""

    async def complete(self, event_id: int, user: str) -> None:
        """The user bought: their admission is used up and leaves the active set."""

    async def used(self, event_id: int, user: str) -> bool:
        """Whether a purchase used the user's admission up (:meth:`complete`)."""

    async def stats(self, event_id: int) -> Stats: ...

    async def positions(self, event_id: int, users: list[str], policy: Policy) -> list[Position]:
        """Positions of those of ``users`` who joined (one round trip in Redis)."""

    async def placement(self, event_id: int) -> Placement:
        """The seed (drawn on first use, so committed before opening) and the pre-queue's
        placement at opening (:mod:`booking.fairness`)."""


def eta(ahead: int, policy: Policy, active: int) -> int | None:
    """Seconds until the user with ``ahead`` people in front of them is admitted; ``None``
    ("unknown") while nobody is being admitted (paused, closed, no admission rate, or no seat
    to sell).

    Two limits pace the queue: the admission rate, and the cap on active shoppers. The places
    free under the cap now are filled at the rate; after that a place frees only when an admitted
    shopper buys or their admission lapses. The estimate assumes the slow case for the latter
    (every admission used to its expiry: ``max_active / admission_ttl_s`` a second, or the rate
    if that is lower), so it errs long, never "under a minute" for a queue that is stuck behind
    the cap.
    """
    rate = policy.rate_per_s
    admitting = policy.open and not policy.paused and policy.sale == SELLING
    if not admitting or rate <= 0 or policy.max_active <= 0:
        return None
    # The user's own admission is one of those to wait for: position 1 behind a full cap waits
    # for a place to free, not for nothing.
    needed = ahead + 1
    free = max(0, policy.max_active - active)
    if needed <= free:
        return math.ceil(needed / rate)
    recycle = min(rate, policy.max_active / max(policy.admission_ttl_s, 1))
    return math.ceil(free / rate + (needed - free) / recycle)


@dataclass
class _Queue:
    """One event's queue state in memory."""

    seq_of: dict[str, int] = field(default_factory=dict)
    user_at: dict[int, str] = field(default_factory=dict)
    #: Who joined before opening, in joining order: a dict as an ordered set, since every
    #: waiting user's position asks whether they are in it (a list made each interval's
    #: positions quadratic in the pre-queue).
    prequeue: dict[str, None] = field(default_factory=dict)
    opened: bool = False
    last_seq: int = 0
    serving: int = 0
    #: user → admission expiry (unix time), for admitted users still shopping.
    active: dict[str, float] = field(default_factory=dict)
    #: users whose admission lapsed or was used (so their state reads right).
    finished: dict[str, str] = field(default_factory=dict)
    tokens: float = 0.0
    tokens_at: float = 0.0
    admissions: deque[float] = field(default_factory=deque)
    #: The shuffle's seed and the queue ids' salt (:mod:`booking.fairness`).
    seed: bytes = b""
    salt: bytes = b""
    opened_at: float | None = None
    #: The pre-queue in the order it was placed at opening.
    placed: list[str] = field(default_factory=list)
    #: When each user joined (unix time), for time to admission.
    joined_at: dict[str, float] = field(default_factory=dict)
    #: The admission log's times: the admission of sequence number ``n`` at ``[n - 1]``.
    admitted_at: list[float] = field(default_factory=list)
    abandoned: int = 0
    waits: list[int] = field(default_factory=lambda: [0] * (len(WAIT_BUCKETS_S) + 1))


class InProcessWaitingRoom:
    """The single-node waiting room: all state in this process (lost on restart)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._queues: dict[int, _Queue] = {}
        self._rng = rng or random.SystemRandom()

    def _queue(self, event_id: int) -> _Queue:
        queue = self._queues.get(event_id)
        if queue is None:
            queue = self._queues[event_id] = _Queue(
                seed=self._rng.randbytes(32), salt=self._rng.randbytes(16)
            )
        return queue

    async def join(self, event_id: int, user: str, policy: Policy) -> Position:
        queue = self._queue(event_id)
        if policy.open and not queue.opened:
            self._open(queue)  # the sale is open already: this joiner is first come, first served
        if user not in queue.seq_of and user not in queue.prequeue:
            queue.joined_at[user] = time.time()
            if queue.opened:
                queue.last_seq += 1
                queue.seq_of[user] = queue.last_seq
                queue.user_at[queue.last_seq] = user
            else:
                queue.prequeue[user] = None
        found = await self.position(event_id, user, policy)
        assert found is not None
        return found

    async def position(self, event_id: int, user: str, policy: Policy) -> Position | None:
        queue = self._queues.get(event_id)
        if queue is None:
            return None
        return self._position(queue, event_id, user, policy)

    def _position(self, queue: _Queue, event_id: int, user: str, policy: Policy) -> Position | None:
        waiting_total = queue.last_seq - queue.serving + len(queue.prequeue)
        if user in queue.finished:
            return Position(event_id, user, queue.finished[user], queue.seq_of.get(user), None,
                            None, waiting_total, None)  # fmt: skip
        if user in queue.active:
            return Position(event_id, user, ADMITTED, queue.seq_of[user], 0, 0, waiting_total,
                            0, queue.active[user])  # fmt: skip
        seq = queue.seq_of.get(user)
        if seq is None:
            if user not in queue.prequeue:
                return None
            # Pre-queue: no place yet; everyone gets a uniformly random one at opening.
            return Position(event_id, user, queued(policy), None, None, None, waiting_total, None)
        ahead = seq - queue.serving - 1
        return Position(event_id, user, queued(policy), seq, ahead + 1, ahead, waiting_total,
                        eta(ahead, policy, len(queue.active)))  # fmt: skip

    def _open(self, queue: _Queue) -> None:
        queue.placed = place(list(queue.prequeue), queue.seed, queue.salt)  # seeded: verifiable
        queue.opened_at = time.time()
        for user in queue.placed:
            queue.last_seq += 1
            queue.seq_of[user] = queue.last_seq
            queue.user_at[queue.last_seq] = user
        queue.prequeue.clear()
        queue.opened = True

    async def admit(self, event_id: int, policy: Policy, now: float) -> list[str]:
        queue = self._queue(event_id)
        if policy.open and not queue.opened:
            self._open(queue)
        for user, until in list(queue.active.items()):
            if until <= now:
                del queue.active[user]
                queue.finished[user] = EXPIRED
                queue.abandoned += 1
        # Token bucket holding at most one second of admissions; it starts full, so the
        # first second's worth is admitted as soon as the sale opens.
        burst = max(policy.rate_per_s, 1.0)
        if not queue.tokens_at:
            queue.tokens = burst
        else:
            queue.tokens = min(burst, queue.tokens + (now - queue.tokens_at) * policy.rate_per_s)
        queue.tokens_at = now
        if not policy.open or policy.paused:
            return []
        room = policy.max_active - len(queue.active)
        count = min(int(queue.tokens), room, queue.last_seq - queue.serving)
        seats = admissible(policy, len(queue.active))
        if seats is not None:
            count = min(count, seats)
        if count <= 0:
            return []
        queue.tokens -= count
        return self._admit_next(queue, count, policy, now)

    async def offer(self, event_id: int, count: int, policy: Policy, now: float) -> list[str]:
        queue = self._queue(event_id)
        if policy.open and not queue.opened:
            self._open(queue)
        count = min(count, queue.last_seq - queue.serving)
        if count <= 0:
            return []
        return self._admit_next(queue, count, policy, now)

    def _admit_next(self, queue: _Queue, count: int, policy: Policy, now: float) -> list[str]:
        admitted = []
        since = queue.opened_at or 0.0
        for seq in range(queue.serving + 1, queue.serving + count + 1):
            user = queue.user_at[seq]
            queue.active[user] = now + policy.admission_ttl_s
            admitted.append(user)
            queue.admissions.append(now)
            queue.admitted_at.append(round(now, 3))
            queue.waits[wait_bucket(now - max(queue.joined_at.get(user, now), since))] += 1
        queue.serving += count
        return admitted

    async def complete(self, event_id: int, user: str) -> None:
        queue = self._queues.get(event_id)
        if queue is not None and queue.active.pop(user, None) is not None:
            queue.finished[user] = CLOSED

    async def used(self, event_id: int, user: str) -> bool:
        queue = self._queues.get(event_id)
        return queue is not None and queue.finished.get(user) == CLOSED

    async def stats(self, event_id: int) -> Stats:
        queue = self._queue(event_id)
        cutoff = time.time() - 60
        while queue.admissions and queue.admissions[0] < cutoff:
            queue.admissions.popleft()
        return Stats(
            serving=queue.serving,
            waiting=queue.last_seq - queue.serving + len(queue.prequeue),
            admitted_per_min=float(len(queue.admissions)),
            active=len(queue.active),
            abandoned=queue.abandoned,
            waits=tuple(queue.waits),
        )

    async def positions(self, event_id: int, users: list[str], policy: Policy) -> list[Position]:
        """All of them in one pass, no await per user (10,000 waiting users, every interval)."""
        queue = self._queues.get(event_id)
        if queue is None:
            return []
        position = self._position
        found = [position(queue, event_id, user, policy) for user in users]
        return [p for p in found if p is not None]

    async def placement(self, event_id: int) -> Placement:
        queue = self._queue(event_id)
        admitted = [(queue.user_at[n], at) for n, at in enumerate(queue.admitted_at, start=1)]
        return Placement(
            queue.seed, queue.salt, queue.opened, queue.opened_at, queue.placed, admitted
        )
