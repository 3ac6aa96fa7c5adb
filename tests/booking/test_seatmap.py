"""The node's in-memory seat map against the database: what subscribers and GET /seats show."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from booking import holds as holds_module
from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.core import BookingCore
from booking.errors import SeatsUnavailable
from booking.holds import Hold
from server.backplane.memory import InProcessSequencer
from server.seat_stream import encode_delta
from tests.booking.conftest import VISA, build_service, buy, decisions, rendered


async def test_map_follows_every_kind_of_change(service: BookingCore, event: EventInfo) -> None:
    """Every kind of commit reaches the node's seat map and, through the one listener, the
    deltas (here the single-node sequencer's)."""
    sequencer = InProcessSequencer(service.inventory)
    service.inventory.listen(sequencer.record)
    seatmap = await service.inventory.seat_map(event.id)
    assert await sequencer.tick(event.id) is None
    # seq starts at the milliseconds since the epoch when the event is first sequenced (README),
    # not when the node started
    await asyncio.sleep(0.05)
    before = int(time.time() * 1000)
    start = (await sequencer.snapshot(event.id)).seq
    assert before <= start <= time.time() * 1000
    hold = await service.holds.hold(event.id, "alice", ["A-A-1", "A-A-2"])
    other = await service.holds.hold(event.id, "bob", ["B-A-1"])
    await service.holds.release(other.id, "bob")
    delta = await sequencer.tick(event.id)
    assert delta is not None
    encoded = encode_delta(delta)
    first = json.loads(encoded)["seq"]
    assert first == start + 1
    assert b'["A-A-1","held"]' in encoded and b'["B-A-1","available"]' in encoded
    paid = await buy(service, "alice", hold.id, "k", VISA)
    assert seatmap.statuses["A-A-1"] == "sold"
    await service.orders.cancel(rendered(paid)["order_id"], "alice")
    delta = await sequencer.tick(event.id)
    assert delta is not None
    encoded = encode_delta(delta)
    # seq starts at a time-based value (README), then counts up by one per delta
    assert json.loads(encoded)["seq"] == first + 1 and b'["A-A-1","available"]' in encoded
    assert seatmap.statuses == dict.fromkeys(event.seats, "available")
    # a node starting afresh reads the same map from the tables
    fresh = build_service(service.engine)
    assert (await fresh.inventory.seat_map(event.id)).statuses == seatmap.statuses


async def test_a_conflict_does_not_turn_a_sold_seat_into_held(
    service: BookingCore, event: EventInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob asks this node for a seat its map shows free; before his claim reaches the database,
    Alice holds and buys it through another node, whose news ("sold") reaches this node's map.
    Bob's conflict must not repaint the seat "held". (On one node this interleaving cannot
    happen: a request for a seat being claimed waits for that claim's outcome.)"""
    other_node = build_service(service.engine)
    # the cluster's news, delivered at once
    other_node.inventory.listen(
        lambda change: service.inventory.learn(change.event_id, change.seats, utcnow())
    )
    place_hold = holds_module.place_hold

    async def alice_first(engine: Any, info: EventInfo, user: str, *args: Any, **kw: Any) -> Any:
        if user == "bob":
            monkeypatch.setattr(holds_module, "place_hold", place_hold)
            alices = await other_node.holds.hold(event.id, "alice", ["A-A-1"])
            assert (await buy(other_node, "alice", alices.id, "k", VISA)).ok
        return await place_hold(engine, info, user, *args, **kw)

    monkeypatch.setattr(holds_module, "place_hold", alice_first)
    with pytest.raises(SeatsUnavailable) as caught:
        await service.holds.hold(event.id, "bob", ["A-A-1"])
    assert caught.value.extra["conflicts"] == ["A-A-1"]
    seatmap = await service.inventory.seat_map(event.id)
    assert seatmap.status("A-A-1", utcnow()) == "sold"
    assert seatmap.statuses["A-A-1"] == "sold"


async def test_concurrent_requests_for_one_seat_make_one_database_attempt(
    service: BookingCore, event: EventInfo
) -> None:
    """Twenty shoppers click the same seat at once on one node: one gets it, nineteen get a
    conflict, and only the first claim went to the database; the rest waited for its outcome."""
    results = await asyncio.gather(
        *(service.holds.hold(event.id, f"rush{i}", ["A-A-2"]) for i in range(20)),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, Hold)]
    lost = [r for r in results if isinstance(r, SeatsUnavailable)]
    assert (len(won), len(lost)) == (1, 19)
    assert all(r.extra["conflicts"] == ["A-A-2"] for r in lost)
    assert decisions(service)["database"] == 1
