"""The node's in-memory seat map against the database: what subscribers and GET /seats show."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from booking import holds as holds_module
from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.errors import SeatsUnavailable
from booking.holds import Hold
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
    """Bob asks this node for a seat its map shows free; before his claim reaches the database,
    Alice holds and buys it through another node, whose news ("sold") reaches this node's map.
    Bob's conflict must not repaint the seat "held". (On one node this interleaving cannot
    happen: a request for a seat being claimed waits for that claim's outcome.)"""
    other_node = BookingService(
        service.engine, service.provider, service.signer, service.admission, service.policy
    )
    other_node.on_changes = service.apply_remote  # the cluster's news, delivered at once
    place_hold = holds_module.place_hold

    async def alice_first(engine: Any, info: EventInfo, user: str, *args: Any) -> Any:
        if user == "bob":
            monkeypatch.setattr(holds_module, "place_hold", place_hold)
            alices = await other_node.hold(event.id, "alice", ["A-A-1"])
            assert (await other_node.checkout("alice", alices.id, "k", VISA)).ok
        return await place_hold(engine, info, user, *args)

    monkeypatch.setattr(holds_module, "place_hold", alice_first)
    with pytest.raises(SeatsUnavailable) as caught:
        await service.hold(event.id, "bob", ["A-A-1"])
    assert caught.value.extra["conflicts"] == ["A-A-1"]
    seatmap = await service.seat_map(event.id)
    assert seatmap.status("A-A-1", utcnow()) == "sold"
    assert statuses(seatmap.snapshot())["A-A-1"] == "sold"


async def test_concurrent_requests_for_one_seat_make_one_database_attempt(
    service: BookingService, event: EventInfo
) -> None:
    """Twenty shoppers click the same seat at once on one node: one gets it, nineteen get a
    conflict, and only the first claim went to the database; the rest waited for its outcome."""
    results = await asyncio.gather(
        *(service.hold(event.id, f"rush{i}", ["A-A-2"]) for i in range(20)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, Hold)]
    lost = [r for r in results if isinstance(r, SeatsUnavailable)]
    assert (len(won), len(lost)) == (1, 19)
    assert all(r.extra["conflicts"] == ["A-A-2"] for r in lost)
    assert service.decisions["database"] == 1
