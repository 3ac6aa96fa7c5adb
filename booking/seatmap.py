"""The live seat map of one event, in memory: statuses, a sequence, and conflated deltas (SPEC §6).

Statuses change when this node commits a hold, release, sale or cancellation, and when the
reaper frees expired holds. Each change is recorded at once; :meth:`SeatMap.tick` (called every
``--seat-tick-ms``) turns everything changed since the last tick into at most one delta carrying
each changed seat's latest status, with ``seq`` one higher. A snapshot is encoded at most once per
``seq`` however many subscribers ask for it.

A held seat remembers when its hold expires, so a seat whose hold has lapsed counts as available
at once, before the reaper has written that down.
"""

from __future__ import annotations

import json
from datetime import datetime

AVAILABLE = "available"
HELD = "held"
SOLD = "sold"
BLOCKED = "blocked"
STATUSES = (AVAILABLE, HELD, SOLD, BLOCKED)


class SeatMap:
    __slots__ = ("_changed", "_expiry", "_hints", "_snapshot", "event_id", "seq", "statuses")

    def __init__(
        self, event_id: int, statuses: dict[str, str], expiry: dict[str, datetime]
    ) -> None:
        self.event_id = event_id
        self.statuses = statuses
        self._expiry = expiry
        self.seq = 0
        self._changed: dict[str, str] = {}
        self._snapshot: tuple[int, bytes] | None = None
        #: Seats the database just refused although this map shows them available (another
        #: node's news not yet arrived), until when: they answer holds from memory but are never
        #: published, since they are a guess, not a committed status.
        self._hints: dict[str, datetime] = {}

    def status(self, seat_id: str, now: datetime) -> str | None:
        status = self.statuses.get(seat_id)
        if status == HELD and self._expiry.get(seat_id, now) <= now:
            return AVAILABLE
        return status

    def unavailable(self, seat_ids: list[str], now: datetime) -> list[str]:
        """The seats of ``seat_ids`` known (or, briefly, believed) taken right now."""
        hints = self._hints
        return [
            s for s in seat_ids
            if self.status(s, now) not in (AVAILABLE, None) or hints.get(s, now) > now
        ]  # fmt: skip

    def hint_taken(self, seat_ids: list[str], now: datetime, until: datetime) -> None:
        """Remember, unpublished, that the database refused these seats (see ``_hints``)."""
        if len(self._hints) > len(self.statuses):  # keep it bounded: drop lapsed guesses
            self._hints = {s: t for s, t in self._hints.items() if t > now}
        for seat_id in seat_ids:
            self._hints[seat_id] = until

    def apply(self, changes: list[tuple[str, str]], expires_at: datetime | None = None) -> None:
        for seat_id, status in changes:
            if self.statuses.get(seat_id) == status and status != HELD:
                continue
            self.statuses[seat_id] = status
            self._hints.pop(seat_id, None)  # committed news beats a guess
            if status == HELD and expires_at is not None:
                self._expiry[seat_id] = expires_at
            else:
                self._expiry.pop(seat_id, None)
            self._changed[seat_id] = status

    def tick(self) -> bytes | None:
        """The conflated delta since the last tick, encoded, or ``None`` if nothing changed."""
        if not self._changed:
            return None
        self.seq += 1
        delta = {
            "type": "delta",
            "event_id": self.event_id,
            "seq": self.seq,
            "changes": [[seat_id, status] for seat_id, status in self._changed.items()],
        }
        self._changed.clear()
        return json.dumps(delta, separators=(",", ":")).encode()

    def snapshot(self) -> bytes:
        """The whole map now, tagged with the current ``seq``.

        Changes recorded since the last tick are already in it and come again in the next delta;
        that is harmless because a delta carries absolute statuses, not transitions. The encoded
        snapshot is reused until the map changes.
        """
        cached = self._snapshot
        if cached is not None and cached[0] == self.seq and not self._changed:
            return cached[1]
        body = json.dumps(
            {
                "type": "snapshot",
                "event_id": self.event_id,
                "seq": self.seq,
                "seats": [[seat_id, status] for seat_id, status in self.statuses.items()],
            },
            separators=(",", ":"),
        ).encode()
        self._snapshot = (self.seq, body) if not self._changed else None
        return body
