"""The SDK's sans-I/O state: seat maps built from snapshots, deltas and resumes; resume headers;
``/app`` replies."""

from __future__ import annotations

import json

import pytest

from concert_hub_client.state import (
    Applied,
    CommandError,
    Hold,
    QueuePosition,
    ResumePoint,
    SeatMapState,
)


def snapshot(seq: int, **seats: str) -> bytes:
    return json.dumps({"type": "snapshot", "event_id": 1, "seq": seq,
                       "seats": [[s, v] for s, v in seats.items()]}).encode()  # fmt: skip


def delta(seq: int, since: int | None = None, **seats: str) -> bytes:
    body: dict[str, object] = {"type": "delta", "event_id": 1, "seq": seq,
                               "changes": [[s, v] for s, v in seats.items()]}  # fmt: skip
    if since is not None:
        body["since"] = since
    return json.dumps(body).encode()


def test_a_snapshot_then_deltas_build_the_map() -> None:
    state = SeatMapState(1)
    assert not state.ready
    assert state.apply(snapshot(4, A="available", B="available")) is Applied.SNAPSHOT
    assert state.apply(delta(5, A="held")) is Applied.DELTA
    assert state.apply(delta(6, A="sold", B="held")) is Applied.DELTA
    assert (state.seq, state.statuses) == (6, {"A": "sold", "B": "held"})


def test_an_old_delta_is_ignored_and_a_gap_is_reported() -> None:
    state = SeatMapState(1)
    assert state.apply(delta(1, A="held")) is Applied.GAP  # nothing to apply it to
    state.apply(snapshot(10, A="held"))
    assert state.apply(delta(10, A="available")) is Applied.STALE
    assert state.statuses == {"A": "held"}
    assert state.apply(delta(12, A="sold")) is Applied.GAP
    assert state.seq == 10
    state.forget()
    assert not state.ready


def test_a_resume_delta_applies_from_its_since() -> None:
    state = SeatMapState(1)
    state.apply(snapshot(3, A="available", B="available"))
    assert state.apply(delta(9, since=3, B="sold")) is Applied.DELTA
    assert (state.seq, state.statuses) == (9, {"A": "available", "B": "sold"})
    assert state.apply(delta(9, since=9)) is Applied.DELTA  # nothing changed meanwhile
    assert state.apply(delta(20, since=15, A="sold")) is Applied.GAP
    with pytest.raises(ValueError, match="not a seat-map message"):
        state.apply({"type": "pong", "seq": 1})


def test_resume_headers() -> None:
    seats = ResumePoint("/topic/events/1/seats")
    assert seats.headers(seat_seq=5) == []  # never subscribed: nothing to resume
    seats.subscribed = True
    assert seats.headers(seat_seq=5) == [("resume-seq", "5")]
    assert seats.headers(seat_seq=-1) == []  # after a gap: a snapshot
    replies = ResumePoint("/user/queue/replies", subscribed=True)
    assert replies.headers() == [("resume-after", "*")]
    replies.last_message_id = "node-a-7"
    assert replies.headers() == [("resume-after", "node-a-7")]
    assert ResumePoint("/topic/news", subscribed=True).headers() == []


def test_replies_become_typed_values_and_errors() -> None:
    hold = Hold.from_reply({"type": "hold", "hold_id": "h1", "event_id": 3, "seats": ["A"],
                            "status": "active", "created_at": "x", "expires_at": "y",
                            "amount_cents": 500, "currency": "EUR"})  # fmt: skip
    assert (hold.hold_id, hold.event_id, hold.seats, hold.amount_cents) == ("h1", 3, ["A"], 500)
    position = QueuePosition.from_reply({"type": "queue", "event_id": 3, "state": "waiting",
                                         "position": 4, "ahead": 3, "waiting_total": 9,
                                         "eta_seconds": 12.0})  # fmt: skip
    assert (position.state, position.position, position.admission_token) == ("waiting", 4, None)
    error = CommandError({"type": "error", "status": 409, "kind": "conflict", "detail": "taken"})
    assert (error.status, error.kind, str(error)) == (409, "conflict", "409 conflict: taken")
