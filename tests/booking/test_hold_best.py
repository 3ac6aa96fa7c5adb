"""Best available through the booking core, on SQLite and MariaDB: the block is held like any
hold (one decision in the database, all or nothing, the per-user limit, the sale window, the
waiting room), a block lost to another node is followed by the next one, and wheelchair spaces
and companion seats are stored, changed by an admin and kept for those who ask."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import pytest

from booking.best_available import BlockRequest
from booking.catalog import EventInfo, SeatAccessPatch
from booking.core import BookingCore
from booking.errors import (
    AdmissionRequired,
    InvalidRequest,
    LimitExceeded,
    NoBlockLeft,
    SaleNotOpen,
)
from booking.holds import Hold
from booking.hooks import HoldOutcome
from booking.layout import LayoutSpec, SectionSpec, TierSpec
from booking.schema import holds, seats
from tests.booking.conftest import build_service, count, decisions, event_spec, rows


async def held_by(service: BookingCore, event_id: int) -> dict[str, str]:
    """seat id → hold id of every held seat, from the database."""
    found = await rows(service.engine, seats, seats.c.event_id == event_id,
                       seats.c.hold_id.is_not(None))  # fmt: skip
    return {r.seat_id: r.hold_id for r in found}


def side_by_side(event: EventInfo, seat_ids: list[str]) -> bool:
    places = [event.seats[s] for s in seat_ids]
    numbers = sorted(n for _, _, n, _ in places)
    one_row = len({(section, row) for section, row, _, _ in places}) == 1
    return one_row and numbers == list(range(numbers[0], numbers[0] + len(numbers)))


async def test_the_best_block_is_held_in_one_decision(
    service: BookingCore, event: EventInfo
) -> None:
    # Row A-A has 5 seats: a pair in its middle would leave a seat alone, so the pair at its
    # left end it is; then the three left, side by side.
    first = await service.holds.hold_best(event.id, "alice", BlockRequest(2))
    assert first.seat_ids == ["A-A-1", "A-A-2"]
    assert (first.amount_cents, first.status) == (10000, "active")
    second = await service.holds.hold_best(event.id, "bob", BlockRequest(3))
    assert second.seat_ids == ["A-A-3", "A-A-4", "A-A-5"]
    assert await held_by(service, event.id) == {
        **dict.fromkeys(first.seat_ids, first.id),
        **dict.fromkeys(second.seat_ids, second.id),
    }
    seatmap = await service.inventory.seat_map(event.id)
    assert {s: seatmap.statuses[s] for s in first.seat_ids} == dict.fromkeys(first.seat_ids, "held")
    assert decisions(service) == {"memory": 0, "database": 2}
    # row A-A is full: the next block is in row A-B
    third = await service.holds.hold_best(event.id, "carol", BlockRequest(1))
    assert third.seat_ids == ["A-B-3"]


async def test_tier_and_section_narrow_the_choice(service: BookingCore, event: EventInfo) -> None:
    silver = next(t.id for t in event.tiers.values() if t.name == "Silver")
    by_name = await service.holds.hold_best(event.id, "alice", BlockRequest(2, tier="Silver"))
    assert by_name.seat_ids == ["B-A-1", "B-A-2"]
    by_id = await service.holds.hold_best(event.id, "bob", BlockRequest(2, tier=silver))
    assert by_id.seat_ids == ["B-A-3", "B-A-4"]
    assert by_id.amount_cents == 5000
    in_a = await service.holds.hold_best(event.id, "carol", BlockRequest(1, section="A"))
    assert in_a.seat_ids == ["A-A-3"]
    with pytest.raises(NoBlockLeft) as caught:
        await service.holds.hold_best(event.id, "dave", BlockRequest(1, section="B"))
    assert caught.value.extra == {"count": 1}
    assert "section B" in caught.value.detail


async def test_bad_requests_and_closed_sales_hold_nothing(service: BookingCore) -> None:
    event = await service.inventory.create_event(event_spec())
    refused = {
        BlockRequest(2, tier="Bronze"): InvalidRequest,
        BlockRequest(2, tier=123456): InvalidRequest,
        BlockRequest(2, section="ROOF"): InvalidRequest,
        BlockRequest(5): LimitExceeded,  # the event allows 4 per user
    }
    for request, error in refused.items():
        with pytest.raises(error):
            await service.holds.hold_best(event.id, "alice", request)
    closed = await service.inventory.create_event(event_spec(status="paused"))
    with pytest.raises(SaleNotOpen):
        await service.holds.hold_best(closed.id, "alice", BlockRequest(2))
    queued = await service.inventory.create_event(event_spec(waiting_room=True))
    with pytest.raises(AdmissionRequired):
        await service.holds.hold_best(queued.id, "alice", BlockRequest(2))
    admitted = service.admissions.signer.issue(queued.id, "alice", time.time() + 60)
    hold = await service.holds.hold_best(queued.id, "alice", BlockRequest(2), admitted)
    assert hold.seat_ids == ["A-A-1", "A-A-2"]
    assert await count(service.engine, holds) == 1


async def test_the_per_user_limit_counts_like_any_hold(
    service: BookingCore, event: EventInfo
) -> None:
    await service.holds.hold(event.id, "alice", ["B-A-1", "B-A-2", "B-A-3"])
    with pytest.raises(LimitExceeded) as caught:
        await service.holds.hold_best(event.id, "alice", BlockRequest(2))
    assert caught.value.extra == {"limit": 4, "have": 3}
    assert (await service.holds.hold_best(event.id, "alice", BlockRequest(1))).seat_ids


async def test_no_block_left_is_said_from_memory(service: BookingCore, event: EventInfo) -> None:
    # Leave only single seats in A: A-A-2, A-A-4, A-B-2, A-B-4 (and section B whole).
    for n, seat in enumerate(["A-A-1", "A-A-3", "A-A-5", "A-B-1", "A-B-3", "A-B-5"]):
        await service.holds.hold(event.id, f"u{n}", [seat])
    before = await held_by(service, event.id)
    decided = dict(decisions(service))
    ended: list[HoldOutcome] = []
    service.hooks.hold_ended = lambda outcome, _seconds: ended.append(outcome)
    with pytest.raises(NoBlockLeft) as caught:
        await service.holds.hold_best(event.id, "alice", BlockRequest(2, section="A"))
    assert caught.value.kind == "no_block" and caught.value.extra == {"count": 2}
    assert await held_by(service, event.id) == before
    assert decisions(service)["memory"] == decided["memory"] + 1
    single = await service.holds.hold_best(event.id, "alice", BlockRequest(1, section="A"))
    assert single.seat_ids == ["A-A-2"]
    assert ended == [HoldOutcome.NO_BLOCK, HoldOutcome.GRANTED]  # what /metrics counts


async def test_a_block_lost_to_another_node_is_followed_by_the_next(
    service: BookingCore, event: EventInfo
) -> None:
    """Node 2 never hears of node 1's hold (no shared news here), so its first choice is
    refused by the database; it tries the next block in the same request."""
    other = build_service(service.engine)
    await other.inventory.seat_map(event.id)
    won = await service.holds.hold_best(event.id, "alice", BlockRequest(2))
    assert won.seat_ids == ["A-A-1", "A-A-2"]
    second = await other.holds.hold_best(event.id, "bob", BlockRequest(2))
    # A-A-1/2 refused; every pair left in row A-A would strand a seat, row A-B has a clean one
    assert second.seat_ids == ["A-B-1", "A-B-2"]
    assert decisions(other) == {"memory": 0, "database": 1}
    assert set(won.seat_ids).isdisjoint(second.seat_ids)


async def test_racing_nodes_never_share_a_seat_and_refuse_only_when_no_block_is_left(
    service: BookingCore,
) -> None:
    """Eight nodes that know nothing of each other's holds ask for 1-4 seats of one small
    section at once: every grant is a block of its own, and every refusal is true at the end."""
    event = await service.inventory.create_event(event_spec())
    nodes = [build_service(service.engine) for _ in range(8)]
    for node in nodes:
        await node.inventory.seat_map(event.id)
    rng = random.Random(13)
    wanted = [rng.randint(1, 4) for _ in range(24)]

    async def attempt(i: int) -> Hold | NoBlockLeft:
        try:
            return await nodes[i % 8].holds.hold_best(
                event.id, f"u{i}", BlockRequest(wanted[i], section="A")
            )
        except NoBlockLeft as refused:
            return refused

    answers = await asyncio.wait_for(asyncio.gather(*(attempt(i) for i in range(24))), 60)
    granted = [a for a in answers if isinstance(a, Hold)]
    claimed = list(itertools.chain.from_iterable(h.seat_ids for h in granted))
    assert len(claimed) == len(set(claimed)), "a seat in two holds"
    assert all(side_by_side(event, h.seat_ids) for h in granted)
    assert all(len(h.seat_ids) == wanted[answers.index(h)] for h in granted)
    taken = await held_by(service, event.id)
    assert taken == {s: h.id for h in granted for s in h.seat_ids}
    for i, answer in enumerate(answers):
        if isinstance(answer, NoBlockLeft):
            assert not free_block(event, taken, "A", wanted[i]), (wanted[i], sorted(taken))


def free_block(event: EventInfo, taken: dict[str, str], section: str, size: int) -> bool:
    """Whether ``size`` free seats side by side are left in one row of ``section``."""
    rows: dict[str, list[int]] = {}
    for seat_id, (sec, row, number, _) in event.seats.items():
        if sec == section and seat_id not in taken:
            rows.setdefault(row, []).append(number)
    for numbers in rows.values():
        run = 0
        previous = None
        for n in sorted(numbers):
            run = run + 1 if previous is not None and n == previous + 1 else 1
            previous = n
            if run >= size:
                return True
    return False


# -- wheelchair spaces and companion seats ------------------------------------------------------

ACCESS_LAYOUT = LayoutSpec(
    tiers=[TierSpec(name="Main", price_cents=3000)],
    sections=[SectionSpec(name="S", rows=2, seats_per_row=6, tier="Main")],
    accessible=["S-B-1", "S-B-6"],
    companion=["S-B-2", "S-B-5"],
)


async def test_wheelchair_spaces_are_kept_for_those_who_ask(service: BookingCore) -> None:
    event = await service.inventory.create_event(event_spec(layout=ACCESS_LAYOUT))
    assert event.access == {"S-B-1": "accessible", "S-B-6": "accessible",
                            "S-B-2": "companion", "S-B-5": "companion"}  # fmt: skip
    wheelchair = await service.holds.hold_best(event.id, "alice", BlockRequest(2, accessible=True))
    assert wheelchair.seat_ids == ["S-B-1", "S-B-2"]
    # Ordinary requests fill row A, then take row B's ordinary seats only.
    for user in ("bob", "carol", "dave"):
        await service.holds.hold_best(event.id, user, BlockRequest(2))
    middle = await service.holds.hold_best(event.id, "erin", BlockRequest(2))
    assert middle.seat_ids == ["S-B-3", "S-B-4"]
    with pytest.raises(NoBlockLeft):
        await service.holds.hold_best(event.id, "frank", BlockRequest(1))
    alone = await service.holds.hold_best(event.id, "gina", BlockRequest(1, accessible=True))
    assert alone.seat_ids == ["S-B-6"]
    with pytest.raises(NoBlockLeft, match="wheelchair"):
        await service.holds.hold_best(event.id, "hank", BlockRequest(1, accessible=True))


async def test_an_admin_marks_seats_on_a_live_event(service: BookingCore) -> None:
    event = await service.inventory.create_event(event_spec())
    other_node = build_service(service.engine)
    await other_node.inventory.load(event.id)
    told: list[int] = []
    service.inventory.listen_to_events(told.append)
    with pytest.raises(NoBlockLeft):
        await service.holds.hold_best(event.id, "alice", BlockRequest(2, accessible=True))
    marked = await service.inventory.mark_seats(
        event.id, SeatAccessPatch(accessible=["A-B-5"], companion=["A-B-4"])
    )
    assert marked.access == {"A-B-5": "accessible", "A-B-4": "companion"}
    assert told == [event.id]  # so that every other node re-reads them
    hold = await service.holds.hold_best(event.id, "alice", BlockRequest(2, accessible=True))
    assert hold.seat_ids == ["A-B-4", "A-B-5"]
    # Another node that hears of it re-reads them, and its best available follows: it goes for
    # that wheelchair space (its map has not heard of alice's hold), which the database refuses.
    await other_node.inventory.refresh(event.id)
    assert (await other_node.inventory.event(event.id)).access == marked.access
    with pytest.raises(NoBlockLeft):
        await other_node.holds.hold_best(event.id, "bob", BlockRequest(2, accessible=True))
    assert decisions(other_node) == {"memory": 0, "database": 1}
    # stored: a node starting afresh reads them
    fresh = build_service(service.engine)
    assert (await fresh.inventory.event(event.id)).access == marked.access
    await service.inventory.mark_seats(event.id, SeatAccessPatch(standard=["A-B-4"]))
    assert (await build_service(service.engine).inventory.event(event.id)).access == {
        "A-B-5": "accessible"
    }
    bad = {
        "unknown": SeatAccessPatch(accessible=["A-Z-99"]),
        "twice": SeatAccessPatch(accessible=["A-A-1"], companion=["A-A-1"]),
        "marked and unmarked": SeatAccessPatch(companion=["A-A-1"], standard=["A-A-1"]),
    }
    for why, patch in bad.items():
        with pytest.raises(InvalidRequest):
            await service.inventory.mark_seats(event.id, patch)
        assert (await service.inventory.event(event.id)).access == {"A-B-5": "accessible"}, why


async def test_the_demo_event_has_wheelchair_spaces_with_companions(service: BookingCore) -> None:
    demo = await service.inventory.ensure_demo()
    assert demo is not None
    assert sorted(s for s, kind in demo.access.items() if kind == "accessible") == [
        "CIRCLE-A-1", "CIRCLE-A-40", "STALLS-T-1", "STALLS-T-50"
    ]  # fmt: skip
    admitted = service.admissions.signer.issue(demo.id, "alice", time.time() + 60)
    hold = await service.holds.hold_best(
        demo.id, "alice", BlockRequest(2, section="STALLS", accessible=True), admitted
    )
    assert hold.seat_ids == ["STALLS-T-1", "STALLS-T-2"]
