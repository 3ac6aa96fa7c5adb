"""Creating events from layouts: seat ids, tiers and prices, settings, and the live seat map."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from booking.catalog import EventPatch
from booking.clock import utcnow
from booking.core import BookingCore
from booking.errors import InvalidRequest, NotFound
from booking.layout import LayoutSpec, SectionSpec, TierSpec
from booking.schema import price_tiers, seats
from tests.booking.conftest import build_service, count, event_spec, rows


async def test_layout_becomes_seats_with_ids_tiers_and_prices(service: BookingCore) -> None:
    info = await service.inventory.create_event(event_spec())
    assert list(info.seats) == [
        *(f"A-{row}-{n}" for row in "AB" for n in range(1, 6)),
        *(f"B-A-{n}" for n in range(1, 5)),
    ]
    tiers = {t.name: t for t in info.tiers.values()}
    assert {(t.name, t.price_cents, t.currency) for t in tiers.values()} == {
        ("Gold", 5000, "EUR"),
        ("Silver", 2500, "EUR"),
    }
    assert info.seats["A-B-5"] == ("A", "B", 5, tiers["Gold"].id)
    assert info.seats["B-A-1"] == ("B", "A", 1, tiers["Silver"].id)
    assert info.price(["A-A-1", "A-B-2", "B-A-3"]) == (12500, "EUR")
    # the tables are the record
    assert await count(service.engine, seats, seats.c.event_id == info.id) == 14
    assert len(await rows(service.engine, price_tiers, price_tiers.c.event_id == info.id)) == 2
    # policy defaults apply when the spec leaves them open
    assert info.hold_ttl_s == 300 and info.max_seats_per_user == 4
    seatmap = await service.inventory.seat_map(info.id)
    assert set(seatmap.statuses.values()) == {"available"}


async def test_row_tiers_and_row_labels_past_z(service: BookingCore) -> None:
    layout = LayoutSpec(
        tiers=[TierSpec(name="Front", price_cents=9000), TierSpec(name="Back", price_cents=1000)],
        sections=[
            SectionSpec(name="S", rows=28, seats_per_row=1, tier="Back", row_tiers={"A": "Front"})
        ],
    )
    info = await service.inventory.create_event(event_spec(layout=layout, hold_ttl_s=60))
    assert "S-Z-1" in info.seats and "S-AA-1" in info.seats and "S-AB-1" in info.seats
    assert info.price(["S-A-1"]) == (9000, "EUR")
    assert info.price(["S-B-1", "S-AB-1"]) == (2000, "EUR")
    assert info.hold_ttl_s == 60


async def test_a_fresh_node_reads_the_same_event(service: BookingCore) -> None:
    info = await service.inventory.create_event(event_spec(max_seats_per_user=6))
    other = build_service(service.engine)
    again = await other.inventory.event(info.id)
    assert again.seats == info.seats and again.tiers == info.tiers
    assert again.max_seats_per_user == 6
    assert [e.id for e in await other.inventory.events()] == [info.id]


async def test_bad_layouts_are_refused(service: BookingCore) -> None:
    mixed = LayoutSpec(
        tiers=[TierSpec(name="X", price_cents=1, currency="EUR"),
               TierSpec(name="Y", price_cents=1, currency="USD")],
        sections=[SectionSpec(name="A", rows=1, seats_per_row=1, tier="X")],
    )  # fmt: skip
    with pytest.raises(InvalidRequest):
        await service.inventory.create_event(event_spec(layout=mixed))
    unknown_tier = LayoutSpec(
        tiers=[TierSpec(name="X", price_cents=1)],
        sections=[SectionSpec(name="A", rows=1, seats_per_row=1, tier="nope")],
    )
    with pytest.raises(InvalidRequest):
        await service.inventory.create_event(event_spec(layout=unknown_tier))
    with pytest.raises(ValidationError):
        event_spec(sale_closes_at=utcnow() - timedelta(days=1))
    with pytest.raises(ValidationError):
        event_spec(hold_ttl_s=1)
    assert await count(service.engine, seats) == 0


async def test_unknown_event(service: BookingCore) -> None:
    with pytest.raises(NotFound):
        await service.inventory.event(424242)
    with pytest.raises(NotFound):
        await service.inventory.update_event(424242, EventPatch(status="paused"))


async def test_update_event_changes_settings_in_place(service: BookingCore) -> None:
    info = await service.inventory.create_event(event_spec())
    fresh = await service.inventory.update_event(
        info.id, EventPatch(waiting_room=True, max_seats_per_user=2, hold_ttl_s=30)
    )
    assert fresh is info  # the loaded EventInfo is refreshed, seats kept
    assert info.waiting_room and info.max_seats_per_user == 2 and info.hold_ttl_s == 30
    assert len(info.seats) == 14
