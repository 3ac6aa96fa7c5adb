"""Where seat-map deltas get their ``seq`` and snapshots come from (SPEC §6, §8).

A :class:`SeatSequencer` takes the seat changes this node commits, turns them into conflated
deltas, one ``seq`` higher each, and serves snapshots as of a ``seq``: a snapshot ``N`` followed
by deltas ``N+1``, ``N+2`` … is the seat map (a snapshot may already show changes the next delta
repeats; deltas carry absolute statuses, so that is harmless). It deals in typed values;
encoding them for clients is the seat stream's (:mod:`server.seat_stream`), once per value.

The backplane provides the implementation (:mod:`server.backplane`): in process for one node, or
in Redis for a cluster, where one node at a time produces each event's deltas for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from booking.seatmap import SeatChange, SeatStatuses


@dataclass(frozen=True, slots=True)
class SeatDelta:
    """Each seat changed since the previous delta, with its latest status."""

    event_id: int
    seq: int
    seats: SeatStatuses


@dataclass(frozen=True, slots=True)
class SeatSnapshot:
    """Every seat of an event, in layout order, as of ``seq``."""

    event_id: int
    seq: int
    seats: SeatStatuses


class SeatSequencer(Protocol):
    def record(self, change: SeatChange) -> None:
        """Take a change this node committed (it is applied to its own seat map already).
        Never blocks: an implementation that must do I/O queues it."""

    async def tick(self, event_id: int) -> SeatDelta | None:
        """The next delta, if there is one and this node is the one to produce it."""

    async def snapshot(self, event_id: int) -> SeatSnapshot:
        """The seat map as of the latest delta: the same value again while it still holds (so
        its encoding can be reused)."""
