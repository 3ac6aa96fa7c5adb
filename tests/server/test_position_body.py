"""The waiting room's position bodies: the fast encoder writes what the generic one writes."""

from __future__ import annotations

import json

import pytest

from booking.waiting_room import ADMITTED, PAUSED, SOLD_OUT, WAITING, Position
from server.bodies import dumps, position_body, position_json

POSITIONS = [
    Position(7, "ann", WAITING, 12, 3, 2, 9_999, 41),
    Position(7, "ann", WAITING, None, None, None, 10_000, None),  # pre-queue
    Position(123456, "bob", PAUSED, 5_000, 4_999, 4_998, 9_000, None),
    Position(1, "cy", SOLD_OUT, 1, 1, 0, 1, 0),
    Position(1, "di", ADMITTED, 4, 0, 0, 12, 0, 1_800_000_000.0, "tok.en"),
]


@pytest.mark.parametrize("position", POSITIONS, ids=lambda p: f"{p.state}-{p.position}")
def test_the_fast_body_is_the_generic_body_byte_for_byte(position: Position) -> None:
    assert position_json(position) == dumps(position_body(position))


def test_a_waiting_body_carries_every_field_of_the_spec() -> None:
    body = json.loads(position_json(POSITIONS[0]))
    assert body == {"event_id": 7, "state": "waiting", "position": 3, "ahead": 2,
                    "waiting_total": 9_999, "eta_seconds": 41}  # fmt: skip
