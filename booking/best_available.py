"""Best available: which N adjacent seats in one row to offer, found in this node's seat map.

Theory of operation
-------------------
A request asks for ``count`` seats, optionally of one price tier, in one section, or with
wheelchair access. A **block** is ``count`` seats side by side in one row (consecutive seat
numbers), each free for a new hold (:meth:`SeatMap.free`) and not being claimed on this node
right now. Which block is best:

1. **No avoidable single gap.** A block that would leave one free seat alone between it and a
   taken seat (or the row's end) is taken only when no block anywhere avoids that: a lone seat
   is one nobody buys in a rush.
2. **Closest to the stage centre**: the section listed first in the layout (admins list them
   from the stage outwards), then the front row (row A), then the block whose middle is nearest
   the middle of its row, then the leftmost.

Seat attributes (:data:`ACCESSIBLE`, :data:`COMPANION`) are kept for those who need them: an
ordinary request never gets a wheelchair space or a companion seat; an accessible request gets
a block with at least one wheelchair space, and when it asks for two or more seats, with a
companion seat beside that space in the block. (Anyone may still pick those seats on the map.)

The search must keep up with a hot sale, so nothing about the layout is worked out per request:
:class:`SeatRows` (rows in ranking order, their seats, tiers and attributes) is built once when
an event loads, and :class:`BlockFinder` keeps, per row, which seats are free and the longest
free run, recomputed only for rows whose seats changed (the seat map and this node's claims
tell it which) or whose answer lapsed (a hold expiring). A full row is passed with two list
reads.
The database still decides every grant: the finder only proposes;
:meth:`booking.holds.SeatHolds.hold_best` claims.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from booking.catalog import EventInfo
from booking.errors import InvalidRequest, LimitExceeded
from booking.seatmap import SeatMap

#: A wheelchair space (seat attribute).
ACCESSIBLE = "accessible"
#: A seat for the companion of a wheelchair user, beside a wheelchair space (seat attribute).
COMPANION = "companion"


@dataclass(frozen=True, slots=True)
class BlockRequest:
    """What a buyer asks for: ``count`` seats side by side, optionally narrowed down.

    ``tier`` is a tier id (``tiers[].id`` of the event) or a tier name."""

    count: int
    tier: int | str | None = None
    section: str | None = None
    accessible: bool = False


@dataclass(frozen=True, slots=True)
class Wanted:
    """A :class:`BlockRequest` checked against its event: the tier resolved to its id."""

    count: int
    tier_id: int | None
    section: str | None
    accessible: bool

    def words(self) -> str:
        """``"2 adjacent seats in section A with wheelchair access"``, for error details."""
        text = "1 seat" if self.count == 1 else f"{self.count} adjacent seats"
        if self.section is not None:
            text += f" in section {self.section}"
        if self.accessible:
            text += " with wheelchair access"
        return text


def resolve(event: EventInfo, rows: SeatRows, request: BlockRequest) -> Wanted:
    """Check ``request`` against ``event`` and its ``rows`` (what needs no seat map): the count
    within the per-user limit, a tier and a section the event has."""
    if request.count < 1:
        raise InvalidRequest("count must be at least 1")
    if request.count > event.max_seats_per_user:
        limit = event.max_seats_per_user
        raise LimitExceeded(f"at most {limit} seats per user", limit=limit)
    tier_id: int | None = None
    if isinstance(request.tier, int):
        if request.tier not in event.tiers:
            raise InvalidRequest("unknown price tier", unknown=[request.tier])
        tier_id = request.tier
    elif request.tier is not None:
        tier_id = next((t.id for t in event.tiers.values() if t.name == request.tier), None)
        if tier_id is None:
            raise InvalidRequest("unknown price tier", unknown=[request.tier])
    if request.section is not None and request.section not in rows.by_section:
        raise InvalidRequest("unknown section", unknown=[request.section])
    return Wanted(request.count, tier_id, request.section, request.accessible)


@dataclass(frozen=True, slots=True)
class Row:
    """Seats side by side, in seat-number order: one row of a section (or the part of it up to
    a missing seat number)."""

    section: str
    seat_ids: tuple[str, ...]
    tiers: tuple[int, ...]
    #: Per seat: ``""``, :data:`ACCESSIBLE` or :data:`COMPANION`.
    access: tuple[str, ...]
    tier_set: frozenset[int]
    has_accessible: bool


class SeatRows:
    """An event's rows in ranking order (best first), built once from its layout."""

    __slots__ = ("by_section", "row_of", "rows", "with_accessible")

    def __init__(self, event: EventInfo) -> None:
        grouped: dict[tuple[str, str], list[tuple[int, str, int]]] = {}
        for seat_id, (section, row, number, tier_id) in event.seats.items():  # layout order
            grouped.setdefault((section, row), []).append((number, seat_id, tier_id))
        sections = list(dict.fromkeys(section for section, _ in grouped))
        rows: list[Row] = []
        # Layout order is sections in the order given, rows from the front: the ranking.
        for (section, _), seats in grouped.items():
            seats.sort()
            run: list[tuple[int, str, int]] = []
            for seat in seats:
                if run and seat[0] != run[-1][0] + 1:  # a missing number: not side by side
                    rows.append(self._row(section, run, event.access))
                    run = []
                run.append(seat)
            rows.append(self._row(section, run, event.access))
        self.rows = tuple(rows)
        self.row_of = {seat_id: i for i, row in enumerate(rows) for seat_id in row.seat_ids}
        self.by_section = {s: tuple(i for i, r in enumerate(rows) if r.section == s)
                           for s in sections}  # fmt: skip
        self.with_accessible = tuple(i for i, r in enumerate(rows) if r.has_accessible)

    @staticmethod
    def _row(section: str, seats: list[tuple[int, str, int]], access: dict[str, str]) -> Row:
        kinds = tuple(access.get(seat_id, "") for _, seat_id, _ in seats)
        tiers = tuple(tier for _, _, tier in seats)
        return Row(section, tuple(seat_id for _, seat_id, _ in seats), tiers, kinds,
                   frozenset(tiers), ACCESSIBLE in kinds)  # fmt: skip

    def candidates(self, wanted: Wanted) -> Iterable[int]:
        """Indexes of the rows that could hold such a block, best first."""
        if wanted.accessible:
            indexes: Iterable[int] = self.with_accessible
            if wanted.section is not None:
                indexes = (i for i in indexes if self.rows[i].section == wanted.section)
        elif wanted.section is not None:
            indexes = self.by_section.get(wanted.section, ())
        else:
            indexes = range(len(self.rows))
        if wanted.tier_id is None:
            return indexes
        tier = wanted.tier_id
        return (i for i in indexes if tier in self.rows[i].tier_set)


@dataclass(frozen=True, slots=True)
class _RowState:
    """A row's seats as the search sees them, until ``until`` (a hold or a guess lapsing):
    ``free`` by the seat map, ``open`` also not being claimed on this node right now, and the
    longest run of each."""

    free: list[bool]
    open: list[bool]
    until: datetime | None
    longest_free: int
    longest_open: int


def _longest_run(free: list[bool]) -> int:
    best = run = 0
    for ok in free:
        run = run + 1 if ok else 0
        best = max(best, run)
    return best


class BlockFinder:
    """The best block for a request, from one event's rows, its seat map and the claims under
    way on this node (see the module docstring for what "best" is).

    Every claim this node makes (any hold, not only best available) is announced with
    :meth:`claiming` and ended with :meth:`claimed`: while it is under way its seats are not
    offered to anyone else, so concurrent requests go for different blocks at once."""

    __slots__ = ("_busy", "_in_flight", "_longest", "_seatmap", "_states", "_tickets", "_until",
                 "_waiters", "rows")  # fmt: skip

    def __init__(self, event: EventInfo, seatmap: SeatMap) -> None:
        self.rows = SeatRows(event)
        self._forget()
        self._busy: Counter[str] = Counter()
        #: Claims under way, by ticket (numbered in the order they started), oldest first.
        self._in_flight: dict[int, None] = {}
        self._tickets = 0  # the next claim's
        #: Who waits for the claims under way when they asked to end: (first ticket that does
        #: not concern them, their future), in the order they asked.
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._seatmap = seatmap
        seatmap.watch(self._changed)

    def attach(self, seatmap: SeatMap) -> None:
        """Follow a freshly loaded seat map instead (the inventory reloaded it)."""
        self._seatmap = seatmap
        self._forget()
        seatmap.watch(self._changed)

    def relayout(self, event: EventInfo) -> None:
        """The event's seat attributes changed: rebuild the rows."""
        self.rows = SeatRows(event)
        self._forget()

    def _forget(self) -> None:
        """Every row's summary is to be worked out afresh."""
        count = len(self.rows.rows)
        self._states: list[_RowState | None] = [None] * count
        #: Per row, the longest run of (open, free) seats as last worked out (-1: not known),
        #: and until when that holds: what lets the search pass a full row at once.
        self._longest = ([-1] * count, [-1] * count)
        self._until: list[datetime | None] = [None] * count

    def claiming(self, seat_ids: Iterable[str]) -> int:
        """A claim of these seats is under way on this node; its ticket for :meth:`claimed`."""
        for seat_id in seat_ids:
            self._busy[seat_id] += 1
            self._changed(seat_id)
        ticket = self._tickets
        self._tickets += 1
        self._in_flight[ticket] = None
        return ticket

    def claimed(self, seat_ids: Iterable[str], ticket: int) -> None:
        """That claim is over (whatever its outcome: the seat map says it)."""
        busy = self._busy
        for seat_id in seat_ids:
            busy[seat_id] -= 1
            if busy[seat_id] <= 0:
                del busy[seat_id]
            self._changed(seat_id)
        del self._in_flight[ticket]
        oldest = next(iter(self._in_flight), None)
        waiters = self._waiters
        while waiters and (oldest is None or waiters[0][0] <= oldest):
            _, waiter = waiters.popleft()
            if not waiter.done():  # (its request may have been cancelled meanwhile)
                waiter.set_result(None)

    async def settled(self) -> None:
        """Return once every claim under way now has ended (claims started later do not
        count, so a steady stream of them cannot keep anyone waiting)."""
        if not self._in_flight:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((self._tickets, waiter))  # tickets only grow: the deque is in order
        await waiter

    def _changed(self, seat_id: str) -> None:
        row = self.rows.row_of.get(seat_id)
        if row is not None:
            self._states[row] = None
            self._longest[0][row] = self._longest[1][row] = -1

    def _state(self, index: int, now: datetime) -> _RowState:
        state = self._states[index]
        if state is None or (state.until is not None and state.until <= now):
            seat_ids = self.rows.rows[index].seat_ids
            free, until = self._seatmap.free(seat_ids, now)
            busy = self._busy
            opened = [
                ok and seat_id not in busy for ok, seat_id in zip(free, seat_ids, strict=True)
            ]
            state = _RowState(free, opened, until, _longest_run(free), _longest_run(opened))
            self._states[index] = state
            self._longest[0][index] = state.longest_open
            self._longest[1][index] = state.longest_free
            self._until[index] = until
        return state

    def find(
        self, wanted: Wanted, now: datetime, *, through_claims: bool = False
    ) -> list[str] | None:
        """The seat ids of the best block for ``wanted`` (in seat order), or ``None`` when
        there is none. Seats being claimed count as taken, unless ``through_claims``: then the
        answer is the best block there would be were every claim under way to fail."""
        count = wanted.count
        fallback: list[str] | None = None  # the best block that leaves a single seat alone
        longest = self._longest[1 if through_claims else 0]
        until = self._until
        for index in self.rows.candidates(wanted):
            known = longest[index]
            if 0 <= known < count:  # too full, unless a hold or a guess in it has lapsed
                lapse = until[index]
                if lapse is None or lapse > now:
                    continue
            state = self._state(index, now)
            if (state.longest_free if through_claims else state.longest_open) < count:
                continue
            row = self.rows.rows[index]
            found = _best_in_row(row, state.free if through_claims else state.open, wanted)
            if found is None:
                continue
            start, lonely = found
            block = list(row.seat_ids[start : start + count])
            if not lonely:
                return block  # rows come best first, and no later block beats a clean one
            if fallback is None:
                fallback = block
        return fallback


def _best_in_row(row: Row, free: list[bool], wanted: Wanted) -> tuple[int, bool] | None:
    """(start, leaves a lone seat) of the best block in ``row``, or ``None``."""
    count = wanted.count
    size = len(free)
    tier = wanted.tier_id
    access = row.access
    if wanted.accessible:
        fits = [ok and (tier is None or row.tiers[i] == tier) for i, ok in enumerate(free)]
    else:
        fits = [ok and not access[i] and (tier is None or row.tiers[i] == tier)
                for i, ok in enumerate(free)]  # fmt: skip
    best: tuple[bool, int, int] | None = None
    run = 0
    for end in range(size):  # ``end`` is the last seat of a block starting at end - count + 1
        run = run + 1 if fits[end] else 0
        if run < count:
            continue
        start = end - count + 1
        if wanted.accessible and not _serves_wheelchair(access, start, count):
            continue
        lonely = _leaves_lone_seat(free, start - 1, -1) or _leaves_lone_seat(free, end + 1, 1)
        key = (lonely, abs(2 * start + count - size), start)
        if best is None or key < best:
            best = key
    return None if best is None else (best[2], best[0])


def _leaves_lone_seat(free: list[bool], beside: int, step: int) -> bool:
    """Whether the seat at ``beside`` (next to a block, ``step`` away from it) would be a free
    seat alone: free, with a taken seat or the row's end beyond it."""
    if not 0 <= beside < len(free) or not free[beside]:
        return False
    beyond = beside + step
    return not (0 <= beyond < len(free) and free[beyond])


def _serves_wheelchair(access: tuple[str, ...], start: int, count: int) -> bool:
    """A wheelchair space in the block and, for two seats or more, a companion seat in the
    block right beside one."""
    end = start + count
    for i in range(start, end):
        if access[i] != ACCESSIBLE:
            continue
        if count == 1:
            return True
        if (i > start and access[i - 1] == COMPANION) or (
            i + 1 < end and access[i + 1] == COMPANION
        ):
            return True
    return False
