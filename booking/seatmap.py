"""Seat availability as one node sees it, and the value every committed seat change is.

The database decides every hold; a node's :class:`SeatMap` only spares it requests that would
lose: a hold on a seat this node knows to be taken is refused from memory (most requests in the
first minute of a hot sale are for seats already gone). The map is told of changes two ways:

* :meth:`SeatMap.apply` — a change this node committed, exactly (a held seat knows when its hold
  lapses, so it counts as available at once when it does, before the reaper writes that down);
* :meth:`SeatMap.learn` — the cluster's conflated statuses (seat-map deltas), which may include
  changes other nodes committed. They do not carry hold expiry, so a seat another node holds is
  taken to be held for the event's hold TTL from when this node heard of it: a slight
  over-estimate, corrected by the reaper's delta when the hold lapses.

A :class:`SeatChange` is what a commit changed; the booking core hands each one to a single
listener (the server's seat stream) right after the commit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from booking.clock import utcnow

AVAILABLE = "available"
HELD = "held"
SOLD = "sold"
BLOCKED = "blocked"
STATUSES = (AVAILABLE, HELD, SOLD, BLOCKED)

#: (seat id, status) pairs, in the order they changed.
SeatStatuses = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class SeatChange:
    """Seats whose status one committed transaction changed."""

    event_id: int
    seats: SeatStatuses
    #: When the hold that made seats ``held`` lapses (holds only).
    held_until: datetime | None = None
    #: When the transaction committed (naive UTC), so the lag to the delta can be measured.
    committed_at: datetime = field(default_factory=utcnow)


def _unwatched(_: str) -> None:
    pass


class SeatMap:
    __slots__ = ("_expiry", "_hints", "_watch", "event_id", "statuses")

    def __init__(
        self, event_id: int, statuses: dict[str, str], expiry: dict[str, datetime]
    ) -> None:
        self.event_id = event_id
        #: Every seat's status, in layout order.
        self.statuses = statuses
        self._expiry = expiry
        #: Seats the database just refused although this map shows them available (another
        #: node's news not yet arrived), until when: they answer holds from memory but are never
        #: published, since they are a guess, not a committed status.
        self._hints: dict[str, datetime] = {}
        self._watch: Callable[[str], None] = _unwatched

    def watch(self, watcher: Callable[[str], None]) -> None:
        """Tell ``watcher`` the id of every seat whose status, hold expiry or guess changes
        (one watcher: the event's :class:`~booking.best_available.BlockFinder`, which keeps a
        summary per row and must know which rows to look at again)."""
        self._watch = watcher

    def status(self, seat_id: str, now: datetime) -> str | None:
        status = self.statuses.get(seat_id)
        if status == HELD and self._expiry.get(seat_id, now) <= now:
            return AVAILABLE
        return status

    def counts(self, now: datetime) -> dict[str, int]:
        """Seats by status right now (every status of :data:`STATUSES`, zeros included), as
        :meth:`status` reads each one: a held seat whose hold lapsed counts as available. Cheap
        enough for every scrape: one C-level count, then a pass over the held seats only."""
        counts = Counter(self.statuses.values())
        held = sum(
            1 for seat_id, until in self._expiry.items()
            if until > now and self.statuses.get(seat_id) == HELD
        )  # fmt: skip
        counts[AVAILABLE] += counts[HELD] - held
        counts[HELD] = held
        return {status: counts[status] for status in STATUSES}

    def unavailable(self, seat_ids: list[str], now: datetime) -> list[str]:
        """The seats of ``seat_ids`` known (or, briefly, believed) taken right now."""
        hints = self._hints
        return [
            s for s in seat_ids
            if self.status(s, now) not in (AVAILABLE, None) or hints.get(s, now) > now
        ]  # fmt: skip

    def free(self, seat_ids: Sequence[str], now: datetime) -> tuple[list[bool], datetime | None]:
        """Whether each of ``seat_ids`` is free for a new hold right now, as :meth:`unavailable`
        decides it, and the first instant at which one of these answers changes by itself (a
        hold or a guess lapsing; ``None``: none will)."""
        statuses, expiry, hints = self.statuses, self._expiry, self._hints
        free: list[bool] = []
        until: datetime | None = None
        for seat_id in seat_ids:
            status = statuses.get(seat_id)
            ok = status == AVAILABLE
            if status == HELD:
                lapses = expiry.get(seat_id)
                if lapses is None or lapses <= now:
                    ok = True
                elif until is None or lapses < until:
                    until = lapses
            guess = hints.get(seat_id)
            if guess is not None and guess > now:
                ok = False
                if until is None or guess < until:
                    until = guess
            free.append(ok)
        return free, until

    def hint_taken(self, seat_ids: list[str], now: datetime, until: datetime) -> None:
        """Remember, unpublished, that the database refused these seats (see ``_hints``)."""
        if len(self._hints) > len(self.statuses):  # keep it bounded: drop lapsed guesses
            self._hints = {s: t for s, t in self._hints.items() if t > now}
        for seat_id in seat_ids:
            self._hints[seat_id] = until
            self._watch(seat_id)

    def apply(self, change: SeatChange) -> None:
        """A change this node committed: exact statuses and hold expiry."""
        for seat_id, status in change.seats:
            self._set(seat_id, status, change.held_until)

    def learn(self, seats: SeatStatuses, held_until: datetime) -> None:
        """The cluster's statuses: seats whose status differs take it (held ones until
        ``held_until``); a seat already showing that status keeps what this node knows of it."""
        statuses = self.statuses
        for seat_id, status in seats:
            if statuses.get(seat_id) != status:
                self._set(seat_id, status, held_until)

    def _set(self, seat_id: str, status: str, held_until: datetime | None) -> None:
        self.statuses[seat_id] = status
        self._hints.pop(seat_id, None)  # committed news beats a guess
        if status == HELD and held_until is not None:
            self._expiry[seat_id] = held_until
        else:
            self._expiry.pop(seat_id, None)
        self._watch(seat_id)
