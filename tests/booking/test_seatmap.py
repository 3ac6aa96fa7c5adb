"""The node's in-memory seat map against the database: what subscribers and GET /seats show."""

from __future__ import annotations

import json
from typing import Any

import pytest

from booking import holds as holds_module
from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.errors import SeatsUnavailable
from booking.service import BookingService
from tests.booking.conftest import VISA, build_service


def statuses(snapshot: bytes) -> dict[str, str]:
    return dict(map(tuple, json.loads(snapshot)["seats"]))


async def test_map_follows_every_kind_of_change(service: BookingService, event: EventInfo) -> None:
    seatmap = await service.seat_map(event.id)
    assert seatmap.tick() is None
    hold = await service.hold(event.id, "alice", ["A-A-1", "A-A-2"])
    other = await service.hold(event.id, "bob", ["B-A-1"])
    await service.release(other.id, "bob")
    delta = seatmap.tick()
    assert delta is not None
    assert (
        b'"seq":1' in delta and b'["A-A-1","held"]' in delta and b'["B-A-1","available"]' in delta
    )
    paid = await service.checkout("alice", hold.id, "k", VISA)
    assert statuses(seatmap.snapshot())["A-A-1"] == "sold"
    await service.cancel(paid.body["order_id"], "alice")
    delta = seatmap.tick()
    assert delta is not None and b'"seq":2' in delta and b'["A-A-1","available"]' in delta
    assert statuses(seatmap.snapshot()) == dict.fromkeys(event.seats, "available")
    # a node starting afresh reads the same map from the tables
    fresh = build_service(service.engine)
    assert statuses((await fresh.seat_map(event.id)).snapshot()) == statuses(seatmap.snapshot())


async def test_a_conflict_does_not_turn_a_sold_seat_into_held(
    service: BookingService, event: EventInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob asks for a seat the map shows free; before his claim reaches the database, Alice holds
    and buys it on this node (the map learns "sold"). Bob's conflict must not repaint it "held"."""
    place_hold = holds_module.place_hold

    async def alice_first(engine: Any, info: EventInfo, user: str, *args: Any) -> Any:
        if user == "bob":
            monkeypatch.setattr(holds_module, "place_hold", place_hold)
            alices = await service.hold(event.id, "alice", ["A-A-1"])
            assert (await service.checkout("alice", alices.id, "k", VISA)).ok
        return await place_hold(engine, info, user, *args)

    monkeypatch.setattr(holds_module, "place_hold", alice_first)
    with pytest.raises(SeatsUnavailable) as caught:
        await service.hold(event.id, "bob", ["A-A-1"])
    assert caught.value.extra["conflicts"] == ["A-A-1"]
    seatmap = await service.seat_map(event.id)
    assert seatmap.status("A-A-1", utcnow()) == "sold"
    assert statuses(seatmap.snapshot())["A-A-1"] == "sold"
