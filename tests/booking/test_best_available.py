"""Best available's choice, on random layouts and random sold/held/blocked patterns (hypothesis).

No database: an :class:`EventInfo` and a :class:`SeatMap` are built in memory, the way the
inventory builds them, and :class:`BlockFinder` is asked for a block. Two kinds of check:

1. What the issue promises of any pick, stated on its own: the seats are side by side in one
   row, as many as asked, of the requested tier and section, all free; an ordinary request gets
   no wheelchair space or companion seat, an accessible one a wheelchair space with a companion
   beside it; a pick leaves a single free seat alone only when no block avoids that; and there
   is no pick only when no block exists at all.
2. The finder, with its per-row cache and shortcuts, picks exactly what a plain search over
   every window of every row picks (the ranking of booking.best_available), also after a
   sequence of changes reaches the map in every way one can (commits, the cluster's news,
   guesses after a refused claim, holds lapsing as time passes, this node's claims starting
   and ending).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from booking.best_available import (
    ACCESSIBLE,
    COMPANION,
    BlockFinder,
    BlockRequest,
    Wanted,
    resolve,
)
from booking.catalog import EventInfo, Tier
from booking.errors import InvalidRequest, LimitExceeded
from booking.layout import row_label
from booking.seatmap import AVAILABLE, BLOCKED, HELD, SOLD, SeatChange, SeatMap

EXAMPLES = settings(max_examples=300, deadline=None)
NOW = datetime(2030, 5, 1, 19, 0, 0)
TIERS = {1: Tier(1, "Gold", 5000, "EUR"), 2: Tier(2, "Silver", 2500, "EUR")}
SECTION_NAMES = ("STALLS", "CIRCLE", "BALCONY")


# -- building an event in memory ---------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Sections (in ranking order) of rows of seats: each seat a (tier id, access) pair."""

    sections: tuple[tuple[str, tuple[tuple[tuple[int, str], ...], ...]], ...]

    def event(self) -> EventInfo:
        info = EventInfo(
            id=1, name="Property Night", venue="Hall", starts_at=NOW, sale_opens_at=NOW,
            sale_closes_at=NOW, status="on_sale", waiting_room=False, admission_rate=1.0,
            max_active_shoppers=1, hold_ttl_s=300, max_seats_per_user=6, tiers=dict(TIERS),
        )  # fmt: skip
        for section, rows in self.sections:
            for r, row in enumerate(rows):
                label = row_label(r)
                for n, (tier, access) in enumerate(row, start=1):
                    seat_id = f"{section}-{label}-{n}"
                    info.seats[seat_id] = (section, label, n, tier)
                    if access:
                        info.access[seat_id] = access
        return info


@st.composite
def layouts(draw: st.DrawFn) -> Layout:
    sections = []
    for name in SECTION_NAMES[: draw(st.integers(1, 3))]:
        rows = []
        for _ in range(draw(st.integers(1, 4))):
            width = draw(st.integers(1, 12))
            tier = draw(st.sampled_from([1, 2]))
            access = draw(
                st.lists(
                    st.sampled_from(["", "", "", ACCESSIBLE, COMPANION]),
                    min_size=width,
                    max_size=width,
                )
            )
            rows.append(tuple((tier, a) for a in access))
        sections.append((name, tuple(rows)))
    return Layout(tuple(sections))


#: A seat's state for the map: its status, and for a held seat whether its hold has lapsed.
SEAT_STATES = st.sampled_from(
    ["available"] * 4 + ["held", "held-lapsed", "sold", "blocked", "guessed-taken"]
)


def seat_map(info: EventInfo, states: dict[str, str]) -> SeatMap:
    statuses: dict[str, str] = {}
    expiry: dict[str, datetime] = {}
    guessed = []
    for seat_id in info.seats:
        state = states.get(seat_id, AVAILABLE)
        if state == "guessed-taken":
            guessed.append(seat_id)
            state = AVAILABLE
        if state.startswith(HELD):
            lapsed = state == "held-lapsed"
            expiry[seat_id] = NOW + timedelta(seconds=-5 if lapsed else 60)
            state = HELD
        statuses[seat_id] = state
    seatmap = SeatMap(info.id, statuses, expiry)
    seatmap.hint_taken(guessed, NOW, NOW + timedelta(seconds=1))
    return seatmap


@st.composite
def scenes(draw: st.DrawFn) -> tuple[EventInfo, SeatMap, Wanted, frozenset[str]]:
    """An event, its seat map, a request for it, and the seats being claimed right now."""
    info = draw(layouts()).event()
    seat_ids = list(info.seats)
    states = draw(st.lists(SEAT_STATES, min_size=len(seat_ids), max_size=len(seat_ids)))
    seatmap = seat_map(info, dict(zip(seat_ids, states, strict=True)))
    sections = sorted({s for s, _, _, _ in info.seats.values()})
    wanted = Wanted(
        count=draw(st.integers(1, 5)),
        tier_id=draw(st.sampled_from([None, None, 1, 2])),
        section=draw(st.sampled_from([None, None, *sections])),
        accessible=draw(st.booleans()),
    )
    busy = frozenset(draw(st.lists(st.sampled_from(seat_ids), max_size=3)))
    return info, seatmap, wanted, busy


# -- the promises, stated on their own ------------------------------------------------------------


def rows_of(info: EventInfo) -> list[list[str]]:
    """Every row's seat ids in seat order, best row first (layout order)."""
    rows: dict[tuple[str, str], list[str]] = {}
    for seat_id, (section, row, _, _) in info.seats.items():
        rows.setdefault((section, row), []).append(seat_id)
    return list(rows.values())


@dataclass(frozen=True)
class Map:
    """What a pick is made from: the seat map at an instant, and the seats being claimed."""

    seatmap: SeatMap
    busy: frozenset[str] = frozenset()
    now: datetime = NOW

    def is_free(self, seat_id: str) -> bool:
        return not self.seatmap.unavailable([seat_id], self.now) and seat_id not in self.busy


def fits(info: EventInfo, wanted: Wanted, seat_ids: list[str]) -> bool:
    """The seats are of the requested tier and section and, for the kind of request, of the
    right kind: no wheelchair or companion seat for an ordinary request; a wheelchair space,
    and (two seats or more) a companion right beside it, for an accessible one."""
    for seat_id in seat_ids:
        section, _, _, tier = info.seats[seat_id]
        if wanted.section not in (None, section) or wanted.tier_id not in (None, tier):
            return False
        if not wanted.accessible and seat_id in info.access:
            return False
    if not wanted.accessible:
        return True
    kinds = [info.access.get(s, "") for s in seat_ids]
    if len(kinds) == 1:
        return kinds == [ACCESSIBLE]
    return any({a, b} == {ACCESSIBLE, COMPANION} for a, b in pairwise(kinds))


def leaves_lone_seat(at: Map, row: list[str], start: int, count: int) -> bool:
    """Taking ``row[start:start+count]`` leaves a free seat between it and a taken seat or the
    row's end."""
    free = [at.is_free(s) for s in row]
    for i in range(start, start + count):
        free[i] = False
    for side in (start - 1, start + count):
        if 0 <= side < len(row) and free[side]:
            left = side == 0 or not free[side - 1]
            right = side == len(row) - 1 or not free[side + 1]
            if left and right:
                return True
    return False


@dataclass(frozen=True)
class Window:
    row_index: int
    row: list[str]
    start: int
    count: int

    @property
    def seats(self) -> list[str]:
        return self.row[self.start : self.start + self.count]


def every_block(info: EventInfo, at: Map, wanted: Wanted) -> list[Window]:
    """Every block that meets the request, by brute force."""
    found = []
    for index, row in enumerate(rows_of(info)):
        for start in range(len(row) - wanted.count + 1):
            window = Window(index, row, start, wanted.count)
            seats = window.seats
            if all(at.is_free(s) for s in seats) and fits(info, wanted, seats):
                found.append(window)
    return found


def plain_best(info: EventInfo, at: Map, wanted: Wanted) -> list[str] | None:
    """The ranking of booking.best_available, applied to every block: no lone seat left if
    possible, then the best row (layout order), then the middle of the row, then leftmost."""

    def rank(w: Window) -> tuple[bool, int, int, int]:
        lonely = leaves_lone_seat(at, w.row, w.start, w.count)
        return lonely, w.row_index, abs(2 * w.start + w.count - len(w.row)), w.start

    blocks = every_block(info, at, wanted)
    return min(blocks, key=rank).seats if blocks else None


def check_pick(info: EventInfo, at: Map, wanted: Wanted, pick: list[str] | None) -> None:
    blocks = every_block(info, at, wanted)
    if pick is None:
        assert blocks == [], "no pick although a block exists"
        return
    assert len(pick) == wanted.count
    places = [info.seats[s] for s in pick]
    assert len({(section, row) for section, row, _, _ in places}) == 1, "one row"
    numbers = [number for _, _, number, _ in places]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "side by side"
    assert all(at.is_free(s) for s in pick), "only free seats"
    assert fits(info, wanted, pick), "tier, section and kind of seat as asked"
    row = next(r for r in rows_of(info) if pick[0] in r)
    if leaves_lone_seat(at, row, row.index(pick[0]), len(pick)):
        assert all(leaves_lone_seat(at, b.row, b.start, b.count) for b in blocks), (
            "left a seat alone although another block would not"
        )


@EXAMPLES
@given(scenes())
def test_a_pick_keeps_every_promise(
    scene: tuple[EventInfo, SeatMap, Wanted, frozenset[str]],
) -> None:
    info, seatmap, wanted, busy = scene
    finder = BlockFinder(info, seatmap)
    finder.claiming(busy)
    pick = finder.find(wanted, NOW)
    at = Map(seatmap, busy)
    check_pick(info, at, wanted, pick)
    assert pick == plain_best(info, at, wanted)
    # and were every claim under way to fail
    assert finder.find(wanted, NOW, through_claims=True) == plain_best(info, Map(seatmap), wanted)


# -- the cache follows every way the map changes -------------------------------------------------


CHANGES = st.sampled_from(["commit", "news", "guess", "time", "claim"])


@EXAMPLES
@given(st.data())
def test_the_finder_follows_the_map_through_changes(data: st.DataObject) -> None:
    info, seatmap, wanted, _ = data.draw(scenes())
    finder = BlockFinder(info, seatmap)
    seat_ids = list(info.seats)
    now = NOW
    claims: list[tuple[list[str], int]] = []  # under way, oldest first, with their tickets
    for _ in range(data.draw(st.integers(1, 6))):
        busy = frozenset(s for claim, _ in claims for s in claim)
        assert finder.find(wanted, now) == plain_best(info, Map(seatmap, busy, now), wanted)
        how = data.draw(CHANGES)
        seats = data.draw(st.lists(st.sampled_from(seat_ids), min_size=1, max_size=4))
        status = data.draw(st.sampled_from([AVAILABLE, HELD, SOLD, BLOCKED]))
        if how == "commit":
            until = now + timedelta(seconds=data.draw(st.integers(1, 90)))
            seatmap.apply(SeatChange(info.id, tuple((s, status) for s in seats), until))
        elif how == "news":
            seatmap.learn(tuple((s, status) for s in seats), now + timedelta(seconds=30))
        elif how == "guess":
            seatmap.hint_taken(seats, now, now + timedelta(seconds=1))
        elif how == "claim":  # a claim starts, or the oldest one ends
            if len(claims) > 0 and data.draw(st.booleans()):
                finder.claimed(*claims.pop(0))
            else:
                claims.append((seats, finder.claiming(seats)))
        else:  # holds and guesses lapse
            now += timedelta(seconds=data.draw(st.integers(1, 120)))
    at = Map(seatmap, frozenset(s for claim, _ in claims for s in claim), now)
    pick = finder.find(wanted, now)
    check_pick(info, at, wanted, pick)
    assert pick == plain_best(info, at, wanted)


# -- a few pictures, for the reader ---------------------------------------------------------------


def picture(rows: list[str]) -> tuple[EventInfo, SeatMap]:
    """One section ``S``; a row per string: ``.`` free, ``x`` taken, ``w`` a free wheelchair
    space, ``c`` a free companion seat (row A first)."""
    layout = Layout((("S", tuple(tuple((1, {"w": ACCESSIBLE, "c": COMPANION}.get(ch, ""))
                                           for ch in row) for row in rows)),))  # fmt: skip
    info = layout.event()
    states = {}
    for r, row in enumerate(rows):
        for n, ch in enumerate(row, start=1):
            if ch == "x":
                states[f"S-{row_label(r)}-{n}"] = SOLD
    return info, seat_map(info, states)


def best(rows: list[str], count: int, accessible: bool = False) -> list[str] | None:
    info, seatmap = picture(rows)
    return BlockFinder(info, seatmap).find(Wanted(count, None, None, accessible), NOW)


def test_front_row_middle_first() -> None:
    assert best(["..........", ".........."], 2) == ["S-A-5", "S-A-6"]
    assert best(["..........", ".........."], 3) == ["S-A-4", "S-A-5", "S-A-6"]


def test_a_lone_seat_is_avoided_when_another_block_allows() -> None:
    # Row A's only pairs would strand seat 1 or seat 3: row B's pair does not.
    assert best(["...x", "..xx"], 2) == ["S-B-1", "S-B-2"]
    # With nothing better, the pair is sold rather than refused.
    assert best(["...x", "xxxx"], 2) in (["S-A-1", "S-A-2"], ["S-A-2", "S-A-3"])
    # A gap of exactly the right size beats the middle of a gap one seat too wide.
    assert best(["x..x...x", "........"], 2) == ["S-A-2", "S-A-3"]


def test_wheelchair_spaces_go_to_those_who_ask_with_their_companion() -> None:
    rows = ["cw......wc", ".........."]
    assert best(rows, 2) == ["S-A-5", "S-A-6"]  # ordinary: never a marked seat
    assert best(["cw.wc", "....."], 2) == ["S-B-1", "S-B-2"]  # row A has one ordinary seat
    assert best(rows, 2, accessible=True) == ["S-A-1", "S-A-2"]
    assert best(rows, 1, accessible=True) == ["S-A-2"]
    assert best(rows, 3, accessible=True) == ["S-A-1", "S-A-2", "S-A-3"]
    assert best(["w.........", ".........."], 2, accessible=True) is None  # no companion seat
    assert best(["x.........", ".........."], 1, accessible=True) is None  # no wheelchair space


def test_requests_are_checked_against_the_event() -> None:
    info, seatmap = picture([".."])
    rows = BlockFinder(info, seatmap).rows
    assert resolve(info, rows, BlockRequest(2, tier="Gold")).tier_id == 1
    assert resolve(info, rows, BlockRequest(2, tier=2, section="S")).tier_id == 2
    with pytest.raises(InvalidRequest, match="tier"):
        resolve(info, rows, BlockRequest(2, tier=7))
    with pytest.raises(InvalidRequest, match="tier"):
        resolve(info, rows, BlockRequest(2, tier="Bronze"))
    with pytest.raises(InvalidRequest, match="section"):
        resolve(info, rows, BlockRequest(2, section="ROOF"))
    with pytest.raises(LimitExceeded):
        resolve(info, rows, BlockRequest(info.max_seats_per_user + 1))


async def test_waiting_for_claims_ends_with_the_claims_under_way_when_asked() -> None:
    """A request that finds a block only through claims under way waits for those claims, not
    for claims started after it asked (a steady stream of them must not keep it waiting)."""
    info, seatmap = picture(["...."])
    finder = BlockFinder(info, seatmap)
    first = finder.claiming(["S-A-1"])
    waiting = asyncio.ensure_future(finder.settled())
    await asyncio.sleep(0)
    later = finder.claiming(["S-A-2"])
    assert not waiting.done()
    finder.claimed(["S-A-1"], first)
    await asyncio.wait_for(waiting, 5)
    gone = asyncio.ensure_future(finder.settled())
    await asyncio.sleep(0)
    gone.cancel()
    finder.claimed(["S-A-2"], later)  # a waiter whose request was cancelled is passed over
    await asyncio.wait_for(finder.settled(), 5)  # nothing under way: at once
    assert finder.find(Wanted(4, None, None, False), NOW) == ["S-A-1", "S-A-2", "S-A-3", "S-A-4"]
