"""One subscription to an event's live seat map (SPEC §6), read through stomp.py.

:class:`SeatFeed` subscribes to ``/topic/events/{id}/seats``, checks that the first MESSAGE is the
snapshot, then reads deltas one by one, keeping the map as of every ``seq`` it went through. A
gap in ``seq`` fails the test, unless the feed was made with ``record_gaps=True``: the fault
tests (a Redis outage, a node crash) look for gaps, or for their absence, themselves.
"""

from __future__ import annotations

import json
import time
from typing import Any

import stomp.utils

from tests.server.stomp_clients import Client, unique

#: A delta is due within one tick (100 ms); allow for a loaded machine.
DELTA_TIMEOUT_S = 5.0


def seats_topic(event_id: int) -> str:
    return f"/topic/events/{event_id}/seats"


def statuses_of(snapshot: dict[str, Any]) -> dict[str, str]:
    """Seat id → status of a snapshot (a STOMP one or ``GET /api/events/{id}/seats``)."""
    return {seat: status for seat, status in snapshot["seats"]}


class SeatFeed:
    """One stomp.py subscription to an event's seat map: its snapshot, then every delta."""

    def __init__(self, client: Client, event_id: int, *, record_gaps: bool = False) -> None:
        self.client = client
        self.event_id = event_id
        self.record_gaps = record_gaps
        self.sub_id = ""
        self.snapshot: dict[str, Any] = {}
        self.seq = -1
        self.deltas: list[dict[str, Any]] = []
        self.statuses: dict[str, str] = {}
        #: (seq before, seq of the delta) for every gap seen (``record_gaps`` only).
        self.gaps: list[tuple[int, int]] = []
        #: The whole map as of every ``seq`` this feed went through.
        self.history: dict[int, dict[str, str]] = {}

    def _frame(self, timeout: float) -> stomp.utils.Frame:
        """The oldest MESSAGE of this subscription not yet read (others share the client)."""
        sub_id = self.sub_id
        return self.client.listener.wait(
            "MESSAGE", timeout, lambda f: f.headers.get("subscription") == sub_id
        )

    def subscribe(self, timeout: float = DELTA_TIMEOUT_S) -> dict[str, Any]:
        self.sub_id = unique("seats")
        self.client.subscribe(seats_topic(self.event_id), self.sub_id, timeout=timeout)
        frame = self._frame(timeout)
        assert frame.headers["destination"] == seats_topic(self.event_id)
        assert frame.headers["subscription"] == self.sub_id
        assert frame.headers["content-type"].startswith("application/json")
        message = json.loads(frame.body)
        assert message["type"] == "snapshot", f"first MESSAGE is not the snapshot: {message}"
        assert message["event_id"] == self.event_id
        self.snapshot = message
        self.seq = message["seq"]
        self.deltas = []
        self.gaps = []
        self.statuses = statuses_of(message)
        self.history = {self.seq: dict(self.statuses)}
        return dict(message)

    def resume(self, timeout: float = DELTA_TIMEOUT_S) -> dict[str, Any]:
        """Subscribe again (on this feed's client, perhaps another node's) with ``resume-seq``
        the last seq this feed applied; returns the first MESSAGE, applied: a snapshot (the seq
        was too old) or the one delta of every change since (``"since"`` that seq)."""
        self.sub_id = unique("seats")
        self.client.subscribe(
            seats_topic(self.event_id), self.sub_id, timeout=timeout,
            headers={"resume-seq": str(self.seq)},
        )  # fmt: skip
        frame = self._frame(timeout)
        message = json.loads(frame.body)
        assert frame.headers["seq"] == str(message["seq"]), (frame.headers, message)
        if message["type"] == "snapshot":
            self.snapshot = message
            self.statuses = statuses_of(message)
        else:
            assert message["type"] == "delta" and message["since"] == self.seq, message
            self.statuses.update(dict(map(tuple, message["changes"])))
            self.deltas.append(message)
        self.seq = message["seq"]
        self.history[self.seq] = dict(self.statuses)
        return dict(message)

    def unsubscribe(self) -> None:
        receipt = unique("r")
        self.client.conn.unsubscribe(self.sub_id, receipt=receipt)
        self.client.listener.receipt(receipt)

    def next_delta(self, timeout: float = DELTA_TIMEOUT_S) -> dict[str, Any]:
        delta = json.loads(self._frame(timeout).body)
        assert delta["type"] == "delta" and delta["event_id"] == self.event_id, delta
        seats = [seat for seat, _ in delta["changes"]]
        assert len(seats) == len(set(seats)), f"a seat twice in one delta: {delta}"
        if delta["seq"] != self.seq + 1:
            assert self.record_gaps, f"seq gap: {self.seq} then {delta['seq']}"
            self.gaps.append((self.seq, delta["seq"]))
        self.seq = delta["seq"]
        self.deltas.append(delta)
        self.statuses.update(dict(map(tuple, delta["changes"])))
        self.history[self.seq] = dict(self.statuses)
        return dict(delta)

    def until(self, expected: dict[str, str], timeout: float = DELTA_TIMEOUT_S) -> None:
        """Read deltas until every seat of ``expected`` shows its status."""
        deadline = time.monotonic() + timeout
        while any(self.statuses.get(s) != status for s, status in expected.items()):
            left = deadline - time.monotonic()
            assert left > 0, f"no delta to {expected} within {timeout}s; deltas {self.deltas}"
            self.next_delta(left)

    def drain(self, quiet_s: float = 0.6) -> None:
        """Read deltas until none has come for ``quiet_s``."""
        while True:
            try:
                self.next_delta(quiet_s)
            except AssertionError as exc:
                if "no MESSAGE within" in str(exc):
                    return
                raise

    def pending(self) -> list[dict[str, Any]]:
        """Messages of this subscription that arrived but were not read yet."""
        return [
            json.loads(f.body)
            for f in self.client.listener.pending("MESSAGE")
            if f.headers.get("subscription") == self.sub_id
        ]
