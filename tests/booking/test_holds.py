"""Seat holds: all-or-nothing, validation, the per-user limit, sale window, waiting room,
expiry, the reaper and release."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest

from booking.admissions import AdmissionSigner
from booking.catalog import EventInfo, EventPatch
from booking.clock import utcnow
from booking.core import BookingCore
from booking.errors import (
    AdmissionRequired,
    HoldNotActive,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    SaleNotOpen,
    SeatsUnavailable,
)
from booking.keyring import Keyring
from booking.layout import SectionSpec
from booking.schema import holds, seats
from server.auth import TokenAuthority
from server.backplane.memory import InProcessSequencer
from tests.booking.conftest import (
    VISA,
    build_service,
    buy,
    count,
    decisions,
    event_spec,
    expire_hold,
    expire_in_db,
    hold_status,
    rendered,
    rows,
    seat_row,
)
from tests.conftest import SECRET


async def held_seats(service: BookingCore, event_id: int) -> dict[str, str]:
    """seat id → hold id of every seat the database records as held (expired or not)."""
    found = await rows(service.engine, seats, seats.c.event_id == event_id,
                       seats.c.hold_id.is_not(None))  # fmt: skip
    return {r.seat_id: r.hold_id for r in found}


async def test_hold_claims_the_seats(service: BookingCore, event: EventInfo) -> None:
    before = utcnow()
    hold = await service.holds.hold(event.id, "alice", ["B-A-2", "A-A-1"])
    assert hold.seat_ids == ["A-A-1", "B-A-2"]
    assert hold.user_id == "alice" and hold.status == "active"
    assert (hold.amount_cents, hold.currency) == (7500, "EUR")
    ttl = (hold.expires_at - before).total_seconds()
    assert 299 <= ttl <= 301
    assert await held_seats(service, event.id) == {"A-A-1": hold.id, "B-A-2": hold.id}
    row = await seat_row(service.engine, event.id, "A-A-1")
    assert row.hold_user == "alice" and row.hold_expires_at == hold.expires_at
    assert await hold_status(service.engine, hold.id) == "active"
    seatmap = await service.inventory.seat_map(event.id)
    now = utcnow()
    assert seatmap.status("A-A-1", now) == "held" and seatmap.status("A-A-2", now) == "available"
    assert await service.holds.get(hold.id, "alice") == hold
    with pytest.raises(NotFound):
        await service.holds.get(hold.id, "mallory")


async def test_all_or_nothing_with_exact_conflicts(service: BookingCore, event: EventInfo) -> None:
    first = await service.holds.hold(event.id, "alice", ["A-A-1", "A-A-2"])
    with pytest.raises(SeatsUnavailable) as caught:
        await service.holds.hold(event.id, "bob", ["A-A-3", "A-A-2", "B-A-1", "A-A-1"])
    assert caught.value.kind == "conflict"
    assert caught.value.extra["conflicts"] == ["A-A-1", "A-A-2"]
    # nothing was claimed for bob
    assert await held_seats(service, event.id) == {"A-A-1": first.id, "A-A-2": first.id}
    assert await count(service.engine, holds, holds.c.user_id == "bob") == 0
    # and the free seats are still free for him
    await service.holds.hold(event.id, "bob", ["A-A-3", "B-A-1"])


async def test_the_database_decides_when_a_node_does_not_know(
    service: BookingCore, event: EventInfo
) -> None:
    other = build_service(service.engine)  # a second node that loaded the map before the hold
    await other.inventory.seat_map(event.id)
    first = await service.holds.hold(event.id, "alice", ["A-B-1", "A-B-2"])
    with pytest.raises(SeatsUnavailable) as caught:
        await other.holds.hold(event.id, "bob", ["A-B-3", "A-B-2", "A-B-4"])
    assert caught.value.extra["conflicts"] == ["A-B-2"]
    assert decisions(other)["database"] == 1
    assert await held_seats(service, event.id) == {"A-B-1": first.id, "A-B-2": first.id}
    assert await count(service.engine, holds, holds.c.user_id == "bob") == 0
    # the node learnt it: the next attempt is refused from memory
    with pytest.raises(SeatsUnavailable):
        await other.holds.hold(event.id, "bob", ["A-B-2"])
    assert decisions(other) == {"memory": 1, "database": 1}


async def test_conflicts_name_held_and_sold_seats(service: BookingCore, event: EventInfo) -> None:
    sold = await service.holds.hold(event.id, "alice", ["A-A-1"])
    assert (await buy(service, "alice", sold.id, "k1", VISA)).ok
    await service.holds.hold(event.id, "carol", ["A-A-2"])
    fresh = build_service(service.engine)  # reads the state from the database
    for node in (service, fresh):
        with pytest.raises(SeatsUnavailable) as caught:
            await node.holds.hold(event.id, "bob", ["A-A-2", "A-A-3", "A-A-1"])
        assert caught.value.extra["conflicts"] == ["A-A-1", "A-A-2"]
    assert (await fresh.inventory.seat_map(event.id)).status("A-A-1", utcnow()) == "sold"


@pytest.mark.parametrize(
    ("seat_ids", "why"),
    [
        ([], "no seats"),
        (["A-A-1", "A-A-1"], "twice"),
        (["A-A-1", "Z-Z-99"], "unknown"),
    ],
)
async def test_invalid_requests(
    service: BookingCore, event: EventInfo, seat_ids: list[str], why: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await service.holds.hold(event.id, "alice", seat_ids)
    assert why in caught.value.detail
    if why == "unknown":
        assert caught.value.extra["unknown"] == ["Z-Z-99"]
    assert await held_seats(service, event.id) == {}


async def test_unknown_event(service: BookingCore) -> None:
    with pytest.raises(NotFound):
        await service.holds.hold(999, "alice", ["A-A-1"])


async def test_per_user_limit_counts_holds_and_tickets(
    service: BookingCore, event: EventInfo
) -> None:
    with pytest.raises(LimitExceeded):
        await service.holds.hold(event.id, "alice", ["A-A-1", "A-A-2", "A-A-3", "A-A-4", "A-A-5"])
    first = await service.holds.hold(event.id, "alice", ["A-A-1", "A-A-2", "A-A-3"])
    with pytest.raises(LimitExceeded) as caught:
        await service.holds.hold(event.id, "alice", ["A-B-1", "A-B-2"])
    assert caught.value.kind == "limit" and caught.value.extra["have"] == 3
    assert await count(service.engine, holds, holds.c.user_id == "alice") == 1
    # the limit is per user: bob is not affected
    await service.holds.hold(event.id, "bob", ["A-B-1", "A-B-2", "A-B-3", "A-B-4"])
    # bought seats count as tickets
    assert (await buy(service, "alice", first.id, "k", VISA)).ok
    with pytest.raises(LimitExceeded) as caught:
        await service.holds.hold(event.id, "alice", ["B-A-1", "B-A-2"])
    assert caught.value.extra["have"] == 3
    second = await service.holds.hold(event.id, "alice", ["B-A-1"])
    # a released hold no longer counts
    await service.holds.release(second.id, "alice")
    third = await service.holds.hold(event.id, "alice", ["B-A-2"])
    # nor does a lapsed one
    await expire_hold(service, third)
    await service.holds.hold(event.id, "alice", ["B-A-3"])


async def test_per_user_limit_from_the_event(service: BookingCore) -> None:
    info = await service.inventory.create_event(event_spec(max_seats_per_user=1))
    with pytest.raises(LimitExceeded):
        await service.holds.hold(info.id, "alice", ["A-A-1", "A-A-2"])
    await service.holds.hold(info.id, "alice", ["A-A-1"])
    with pytest.raises(LimitExceeded):
        await service.holds.hold(info.id, "alice", ["A-A-2"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"status": "paused"},
        {"status": "closed"},
        {"sale_opens_at": utcnow() + timedelta(hours=1)},
        {
            "sale_opens_at": utcnow() - timedelta(days=2),
            "sale_closes_at": utcnow() - timedelta(days=1),
        },
    ],
    ids=["paused", "closed", "not-yet", "over"],
)
async def test_sale_not_open(service: BookingCore, overrides: dict[str, object]) -> None:
    info = await service.inventory.create_event(event_spec(**overrides))
    with pytest.raises(SaleNotOpen):
        await service.holds.hold(info.id, "alice", ["A-A-1"])
    assert await count(service.engine, holds) == 0


async def test_a_draft_is_not_there_for_holds(service: BookingCore) -> None:
    info = await service.inventory.create_event(event_spec(status="draft"))
    with pytest.raises(NotFound):
        await service.holds.hold(info.id, "alice", ["A-A-1"])
    assert await count(service.engine, holds) == 0


async def test_pausing_a_sale_stops_holds(service: BookingCore, event: EventInfo) -> None:
    await service.holds.hold(event.id, "alice", ["A-A-1"])
    await service.inventory.update_event(event.id, EventPatch(status="paused"))
    with pytest.raises(SaleNotOpen):
        await service.holds.hold(event.id, "bob", ["A-A-2"])
    await service.inventory.update_event(event.id, EventPatch(status="on_sale"))
    await service.holds.hold(event.id, "bob", ["A-A-2"])


async def test_waiting_room_requires_admission_for_that_event_and_user(
    service: BookingCore,
) -> None:
    info = await service.inventory.create_event(event_spec(waiting_room=True))
    other = await service.inventory.create_event(event_spec(waiting_room=True))
    admission = service.admissions.signer
    soon = time.time() + 60
    good = admission.issue(info.id, "alice", soon)
    forged_key = AdmissionSigner(Keyring("another secret")).issue(info.id, "alice", soon)
    payload = jwt.decode(good, options={"verify_signature": False})
    unsigned = jwt.encode(payload, "a guessed key of at least 32 bytes!", algorithm="HS256")
    refused = {
        "none": None,
        "empty": "",
        "garbage": "not-a-token",
        "other event": admission.issue(other.id, "alice", soon),
        "other user": admission.issue(info.id, "bob", soon),
        "expired": admission.issue(info.id, "alice", time.time() - 5),
        "forged": forged_key,
        "re-signed": unsigned,
    }
    for why, token in refused.items():
        with pytest.raises(AdmissionRequired) as caught:
            await service.holds.hold(info.id, "alice", ["A-A-1"], admission_token=token)
        assert caught.value.kind == "admission_required", why
    assert await count(service.engine, holds) == 0
    assert await held_seats(service, info.id) == {}
    hold = await service.holds.hold(info.id, "alice", ["A-A-1"], admission_token=good)
    assert hold.seat_ids == ["A-A-1"]
    # a session token signed with the same secret is not an admission
    session_token = TokenAuthority(Keyring(SECRET)).issue("alice", "user", 60)
    with pytest.raises(AdmissionRequired):
        await service.holds.hold(info.id, "alice", ["A-A-2"], admission_token=session_token)


async def test_no_admission_needed_without_waiting_room(
    service: BookingCore, event: EventInfo
) -> None:
    await service.holds.hold(event.id, "alice", ["A-A-1"], admission_token="whatever")


async def test_expired_seats_can_be_held_again_at_once(
    service: BookingCore, event: EventInfo
) -> None:
    first = await service.holds.hold(event.id, "alice", ["A-A-1", "A-A-2"])
    await expire_hold(service, first)
    # before the reaper has run: the seats are free, both in memory and in the database
    assert await hold_status(service.engine, first.id) == "active"
    second = await service.holds.hold(event.id, "bob", ["A-A-2", "A-A-3"])
    assert await held_seats(service, event.id) == {
        "A-A-1": first.id,  # lapsed, not yet reaped
        "A-A-2": second.id,
        "A-A-3": second.id,
    }
    # the reaper expires the old hold but leaves the seat bob holds alone
    assert await service.holds.reap() == 1
    assert await hold_status(service.engine, first.id) == "expired"
    assert await hold_status(service.engine, second.id) == "active"
    assert await held_seats(service, event.id) == {"A-A-2": second.id, "A-A-3": second.id}
    seatmap = await service.inventory.seat_map(event.id)
    now = utcnow()
    assert [seatmap.status(s, now) for s in ("A-A-1", "A-A-2", "A-A-3")] == [
        "available",
        "held",
        "held",
    ]
    # checkout of the lapsed hold is refused
    outcome = await buy(service, "alice", first.id, "k", VISA)
    assert not outcome.ok and rendered(outcome)["kind"] == "conflict"


async def test_a_lapsed_hold_in_the_database_is_free_for_another_node(
    service: BookingCore, event: EventInfo
) -> None:
    first = await service.holds.hold(event.id, "alice", ["B-A-1"])
    await expire_in_db(service.engine, first.id)
    other = build_service(service.engine)
    assert (await other.inventory.seat_map(event.id)).status("B-A-1", utcnow()) == "available"
    second = await other.holds.hold(event.id, "bob", ["B-A-1"])
    assert await held_seats(service, event.id) == {"B-A-1": second.id}


async def test_reaper_frees_lapsed_holds(service: BookingCore, event: EventInfo) -> None:
    sequencer = InProcessSequencer(service.inventory)
    service.inventory.listen(sequencer.record)
    lapsed = await service.holds.hold(event.id, "alice", ["A-A-1", "A-A-2"])
    live = await service.holds.hold(event.id, "bob", ["A-B-1"])
    seatmap = await service.inventory.seat_map(event.id)
    await sequencer.tick(event.id)
    await expire_in_db(service.engine, lapsed.id)
    assert await service.holds.reap() == 2
    assert await hold_status(service.engine, lapsed.id) == "expired"
    assert await hold_status(service.engine, live.id) == "active"
    assert await held_seats(service, event.id) == {"A-B-1": live.id}
    now = utcnow()
    assert seatmap.status("A-A-1", now) == "available"
    assert seatmap.statuses["A-A-1"] == "available"  # in the snapshot, not only by expiry
    delta = await sequencer.tick(event.id)
    assert delta is not None and ("A-A-1", "available") in delta.seats
    assert await service.holds.reap() == 0
    # the user may not release or buy an expired hold
    with pytest.raises(HoldNotActive):
        await service.holds.release(lapsed.id, "alice")


async def test_release(service: BookingCore, event: EventInfo) -> None:
    hold = await service.holds.hold(event.id, "alice", ["A-A-1", "B-A-4"])
    with pytest.raises(NotFound):
        await service.holds.release(hold.id, "mallory")
    with pytest.raises(NotFound):
        await service.holds.release("h_nonexistent", "alice")
    released = await service.holds.release(hold.id, "alice")
    assert released.id == hold.id
    assert await hold_status(service.engine, hold.id) == "released"
    assert await held_seats(service, event.id) == {}
    seatmap = await service.inventory.seat_map(event.id)
    assert seatmap.status("B-A-4", utcnow()) == "available"
    with pytest.raises(HoldNotActive):
        await service.holds.release(hold.id, "alice")
    again = await service.holds.hold(event.id, "bob", ["A-A-1", "B-A-4"])
    outcome = await buy(service, "alice", hold.id, "k", VISA)
    assert not outcome.ok and rendered(outcome)["kind"] == "conflict"
    assert await held_seats(service, event.id) == {"A-A-1": again.id, "B-A-4": again.id}


async def test_releasing_a_lapsed_hold_leaves_seats_held_by_others(
    service: BookingCore, event: EventInfo
) -> None:
    """A lapsed, unreaped hold whose seat someone else holds now: releasing it must not show
    that seat as available."""
    sequencer = InProcessSequencer(service.inventory)
    service.inventory.listen(sequencer.record)
    first = await service.holds.hold(event.id, "alice", ["A-A-1", "A-A-2"])
    await expire_hold(service, first)
    second = await service.holds.hold(event.id, "bob", ["A-A-1"])
    seatmap = await service.inventory.seat_map(event.id)
    await sequencer.tick(event.id)
    await service.holds.release(first.id, "alice")
    assert await held_seats(service, event.id) == {"A-A-1": second.id}
    assert seatmap.statuses["A-A-1"] == "held"
    assert seatmap.statuses["A-A-2"] == "available"
    delta = await sequencer.tick(event.id)
    assert delta is not None and "A-A-1" not in dict(delta.seats)


async def test_release_after_purchase_is_refused(service: BookingCore, event: EventInfo) -> None:
    hold = await service.holds.hold(event.id, "alice", ["A-A-1"])
    assert (await buy(service, "alice", hold.id, "k", VISA)).ok
    with pytest.raises(HoldNotActive):
        await service.holds.release(hold.id, "alice")
    assert (await seat_row(service.engine, event.id, "A-A-1")).order_id is not None


async def test_seats_are_listed_as_the_layout_has_them(service: BookingCore) -> None:
    layout = event_spec().layout.model_copy(
        update={"sections": [SectionSpec(name="A", rows=1, seats_per_row=12, tier="Gold")]}
    )
    event = await service.inventory.create_event(event_spec(layout=layout))
    # as strings "A-A-10" sorts before "A-A-9": a buyer's seats are listed by the layout
    hold = await service.holds.hold(event.id, "alice", ["A-A-10", "A-A-2", "A-A-9"])
    assert hold.seat_ids == ["A-A-2", "A-A-9", "A-A-10"]
    with pytest.raises(SeatsUnavailable) as caught:
        await service.holds.hold(event.id, "bob", ["A-A-11", "A-A-10", "A-A-9"])
    assert caught.value.extra["conflicts"] == ["A-A-9", "A-A-10"]
    outcome = await buy(service, "alice", hold.id, "k", VISA)
    assert outcome.order is not None
    assert [t.seat_id for t in outcome.order.tickets] == ["A-A-2", "A-A-9", "A-A-10"]
    listed = await service.orders.get(outcome.order.id, "alice")
    assert [t.seat_id for t in listed.tickets] == ["A-A-2", "A-A-9", "A-A-10"]
