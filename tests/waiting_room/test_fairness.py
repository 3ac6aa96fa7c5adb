"""Fairness: first come, first served after opening; a uniform shuffle of the pre-queue."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter

from booking.waiting_room import ADMITTED, WAITING, InProcessWaitingRoom, Policy, WaitingRoom
from tests.waiting_room.conftest import RoomFactory

BEFORE = Policy(open=False, paused=False, rate_per_s=1000, max_active=10**6, admission_ttl_s=600)
OPEN = Policy(open=True, paused=False, rate_per_s=1000, max_active=10**6, admission_ttl_s=600)


async def admit_all(room: WaitingRoom, event_id: int, expected: int) -> list[str]:
    """Admit until ``expected`` users are in, advancing a simulated clock."""
    order: list[str] = []
    now = 1_000_000.0
    for _ in range(10_000):
        now += 1.0
        order += await room.admit(event_id, OPEN, now)
        if len(order) >= expected:
            break
    return order


async def test_after_opening_admission_order_is_join_order(
    make_room: RoomFactory, event_id: int
) -> None:
    room = make_room(None)
    await room.admit(event_id, OPEN, 1_000_000.0)  # the sale opens with an empty pre-queue
    users = [f"u{i:03d}" for i in range(120)]
    for user in users:
        await room.join(event_id, user, OPEN)
    assert await admit_all(room, event_id, len(users)) == users


async def test_concurrent_joins_are_served_in_the_order_they_were_numbered(
    make_room: RoomFactory, event_id: int
) -> None:
    room = make_room(None)
    await room.admit(event_id, OPEN, 1_000_000.0)
    users = [f"c{i:03d}" for i in range(200)]
    positions = await asyncio.gather(*(room.join(event_id, u, OPEN) for u in users))
    numbered = [p.user for p in sorted(positions, key=lambda p: p.seq or 0)]
    assert sorted(p.seq or 0 for p in positions) == list(range(1, len(users) + 1))
    assert await admit_all(room, event_id, len(users)) == numbered


async def test_rejoining_keeps_the_place(make_room: RoomFactory, event_id: int) -> None:
    room = make_room(None)
    await room.admit(event_id, OPEN, 1_000_000.0)
    first = await room.join(event_id, "a", OPEN)
    await room.join(event_id, "b", OPEN)
    again = await room.join(event_id, "a", OPEN)
    assert (again.seq, again.position) == (first.seq, 1)
    assert (await room.stats(event_id)).waiting == 2


async def test_pre_queue_users_are_placed_at_opening_before_later_arrivals(
    make_room: RoomFactory, event_id: int
) -> None:
    room = make_room(random.Random(7))
    early = [f"early{i}" for i in range(10)]
    for user in early:
        waiting = await room.join(event_id, user, BEFORE)
        assert (waiting.state, waiting.position) == (WAITING, None)  # no place before opening
    assert await room.admit(event_id, BEFORE, 1_000_000.0) == []
    # Opening numbers the pre-queue (and, the rate being high, admits it at once).
    order = await room.admit(event_id, OPEN, 1_000_001.0)
    late = await room.join(event_id, "late", OPEN)
    assert late.seq == len(early) + 1
    order += await admit_all(room, event_id, 1)
    assert sorted(order[: len(early)]) == sorted(early)
    assert order[-1] == "late"
    assert (await room.position(event_id, "late", OPEN)).state == ADMITTED  # type: ignore[union-attr]


# -- uniformity of the opening shuffle ---------------------------------------------------------

PRE_QUEUE = 5
#: Largest tolerated deviation of any (user, place) count from its expectation, relative. With
#: T trials each count is Binomial(T, 1/5): at T=20,000 its standard deviation is 1.4 % of the
#: expectation, so 6 % is over 4 sigma: a fair shuffle passes, a biased one does not.
TOLERANCE = 0.06


def deviation(counts: Counter[tuple[str, int]], trials: int, users: list[str]) -> float:
    expected = trials / len(users)
    cells = itertools.product(users, range(1, len(users) + 1))
    return max(abs(counts[cell] - expected) / expected for cell in cells)


async def opening_places(room: WaitingRoom, event_id: int, users: list[str]) -> dict[str, int]:
    for user in users:
        await room.join(event_id, user, BEFORE)
    await room.admit(event_id, OPEN, 1_000_000.0)
    placed = await room.positions(event_id, users, OPEN)
    return {p.user: p.seq or 0 for p in placed}


async def test_pre_queue_shuffle_is_uniform_in_process() -> None:

    users = [f"p{i}" for i in range(PRE_QUEUE)]
    rng = random.Random(20261124)
    counts: Counter[tuple[str, int]] = Counter()
    trials = 20_000
    for trial in range(trials):
        room = InProcessWaitingRoom(rng)
        for user, place in (await opening_places(room, trial, users)).items():
            counts[(user, place)] += 1
    assert deviation(counts, trials, users) < TOLERANCE


async def test_pre_queue_shuffle_is_uniform_in_redis(make_room: RoomFactory) -> None:
    users = [f"p{i}" for i in range(PRE_QUEUE)]
    room = make_room(random.Random(20261124))
    base = random.SystemRandom().randrange(10**9, 10**10)
    counts: Counter[tuple[str, int]] = Counter()
    trials = 2_000  # each trial is a fresh queue in Redis; fewer trials, wider tolerance
    for trial in range(trials):
        for user, place in (await opening_places(room, base + trial, users)).items():
            counts[(user, place)] += 1
    assert deviation(counts, trials, users) < 0.2  # sigma is 4.5 % here: > 4 sigma


def test_the_uniformity_check_rejects_a_biased_shuffle() -> None:
    """The tolerance is tight enough to fail: join order kept 10 % of the time is caught."""
    users = [f"p{i}" for i in range(PRE_QUEUE)]
    rng = random.Random(1)
    counts: Counter[tuple[str, int]] = Counter()
    trials = 20_000
    for _ in range(trials):
        order = list(users)
        if rng.random() >= 0.1:
            rng.shuffle(order)
        for place, user in enumerate(order, start=1):
            counts[(user, place)] += 1
    assert deviation(counts, trials, users) > TOLERANCE
