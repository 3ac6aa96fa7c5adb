"""The database itself makes double-selling impossible (booking.schema's two guarantees), and
holds racing for the same seats end with one winner per seat."""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Update, insert, or_, update
from sqlalchemy.exc import IntegrityError

from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.core import BookingCore
from booking.errors import LimitExceeded, SeatsUnavailable
from booking.holds import Hold
from booking.schema import holds, orders, seats, tickets
from tests.booking.conftest import (
    VISA,
    build_service,
    buy,
    event_spec,
    rendered,
    rows,
    valid_tickets,
)


def claim(event_id: int, seat_id: str, hold_id: str, now: datetime) -> Update:
    """The conditional claim of booking.holds.place_hold, written out."""
    return (
        update(seats)
        .where(
            seats.c.event_id == event_id,
            seats.c.seat_id == seat_id,
            seats.c.blocked.is_(False),
            seats.c.order_id.is_(None),
            or_(seats.c.hold_id.is_(None), seats.c.hold_expires_at <= now),
        )
        .values(hold_id=hold_id, hold_user="sql", hold_expires_at=now + timedelta(minutes=5))
    )


async def test_a_second_valid_ticket_for_a_seat_violates_the_unique_index(
    service: BookingCore, event: EventInfo
) -> None:
    hold = await service.holds.hold(event.id, "alice", ["A-A-1"])
    paid = await buy(service, "alice", hold.id, "k", VISA)
    order_id = rendered(paid)["order_id"]
    now = utcnow()
    ticket = {
        "order_id": order_id, "event_id": event.id, "seat_id": "A-A-1", "user_id": "mallory",
        "active_seat_id": "A-A-1", "status": "valid", "issued_at": now,
    }  # fmt: skip
    with pytest.raises(IntegrityError):
        async with service.engine.begin() as conn:
            await conn.execute(insert(tickets).values(code="dup-1", **ticket))
    # two in one statement are refused too
    with pytest.raises(IntegrityError):
        async with service.engine.begin() as conn:
            await conn.execute(
                insert(tickets),
                [{**ticket, "code": "x-1", "seat_id": "A-A-2", "active_seat_id": "A-A-2"},
                 {**ticket, "code": "x-2", "seat_id": "A-A-2", "active_seat_id": "A-A-2"}],
            )  # fmt: skip
    # void tickets (active_seat_id NULL) do not count: any number may sit beside a valid one
    async with service.engine.begin() as conn:
        for code in ("void-1", "void-2"):
            await conn.execute(
                insert(tickets).values(code=code, **{**ticket, "status": "void",
                                                     "active_seat_id": None})
            )  # fmt: skip
    assert [t.code for t in await valid_tickets(service.engine, event.id)] == [
        rendered(paid)["tickets"][0]["code"]
    ]
    # the same seat id at another event is another seat
    other = await service.inventory.create_event(event_spec())
    hold2 = await service.holds.hold(other.id, "bob", ["A-A-1"])
    assert (await buy(service, "bob", hold2.id, "k", VISA)).ok


async def test_conditional_claim_of_an_unexpired_hold_claims_nothing(
    service: BookingCore, event: EventInfo
) -> None:
    hold = await service.holds.hold(event.id, "alice", ["A-A-1"])
    now = utcnow()
    async with service.engine.begin() as conn:
        assert (await conn.execute(claim(event.id, "A-A-1", "h_sql", now))).rowcount == 0
        # an unheld seat is claimed...
        assert (await conn.execute(claim(event.id, "A-A-2", "h_sql", now))).rowcount == 1
        # ...once
        assert (await conn.execute(claim(event.id, "A-A-2", "h_sql2", now))).rowcount == 0
    (row,) = await rows(service.engine, seats, seats.c.event_id == event.id,
                        seats.c.seat_id == "A-A-1")  # fmt: skip
    assert row.hold_id == hold.id
    # a lapsed hold no longer protects its seat
    later = hold.expires_at + timedelta(microseconds=1)
    async with service.engine.begin() as conn:
        assert (await conn.execute(claim(event.id, "A-A-1", "h_sql3", later))).rowcount == 1


async def test_conditional_claim_of_a_sold_or_blocked_seat_claims_nothing(
    service: BookingCore, event: EventInfo
) -> None:
    hold = await service.holds.hold(event.id, "alice", ["A-A-1"])
    assert (await buy(service, "alice", hold.id, "k", VISA)).ok
    async with service.engine.begin() as conn:
        await conn.execute(
            update(seats)
            .where(seats.c.event_id == event.id, seats.c.seat_id == "A-A-2")
            .values(blocked=True)
        )
    far_future = utcnow() + timedelta(days=365)
    async with service.engine.begin() as conn:
        for seat_id in ("A-A-1", "A-A-2"):
            assert (await conn.execute(claim(event.id, seat_id, "h_sql", far_future))).rowcount == 0
    # a node that loads the map sees the blocked seat, and refuses it
    fresh = build_service(service.engine)
    assert (await fresh.inventory.seat_map(event.id)).statuses["A-A-2"] == "blocked"
    with pytest.raises(SeatsUnavailable) as caught:
        await fresh.holds.hold(event.id, "bob", ["A-A-2", "A-A-3"])
    assert caught.value.extra["conflicts"] == ["A-A-2"]


async def test_one_order_per_hold(service: BookingCore, event: EventInfo) -> None:
    hold = await service.holds.hold(event.id, "alice", ["A-A-1"])
    paid = await buy(service, "alice", hold.id, "k", VISA)
    with pytest.raises(IntegrityError):
        async with service.engine.begin() as conn:
            await conn.execute(
                insert(orders).values(
                    id="ord_dup", event_id=event.id, user_id="alice", hold_id=hold.id,
                    status="paid", amount_cents=1, currency="EUR", payment_id="p",
                    created_at=utcnow(),
                )
            )  # fmt: skip
    assert [o.id for o in await rows(service.engine, orders)] == [rendered(paid)["order_id"]]


async def test_racing_holds_on_many_nodes_never_share_a_seat(
    service: BookingCore, event: EventInfo
) -> None:
    """Nodes that know nothing of each other's holds (so every decision is the database's)."""
    nodes = [build_service(service.engine) for _ in range(8)]
    for node in nodes:
        await node.inventory.seat_map(event.id)
    seat_ids = list(event.seats)
    rng = random.Random(7)
    requests = []
    for i in range(60):
        wanted = rng.sample(seat_ids, rng.randint(1, 3))
        requests.append((nodes[i % len(nodes)], f"user{i}", wanted))

    async def attempt(node: BookingCore, user: str, wanted: list[str]) -> Hold | None:
        try:
            return await node.holds.hold(event.id, user, wanted)
        except (SeatsUnavailable, LimitExceeded):
            return None

    won = await asyncio.wait_for(asyncio.gather(*(attempt(*r) for r in requests)), 60)
    granted = [h for h in won if h is not None]
    assert granted
    claimed = list(itertools.chain.from_iterable(h.seat_ids for h in granted))
    assert len(claimed) == len(set(claimed)), "a seat in two holds"
    in_db = await rows(service.engine, seats, seats.c.event_id == event.id,
                       seats.c.hold_id.is_not(None))  # fmt: skip
    assert {r.seat_id: r.hold_id for r in in_db} == {s: h.id for h in granted for s in h.seat_ids}
    assert len(await rows(service.engine, holds)) == len(granted)
