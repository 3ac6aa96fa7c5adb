"""Admission: paced by rate, bounded by active shoppers, and proven by a token holds require."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from booking import core
from booking.catalog import EventSpec
from booking.clock import utcnow
from booking.core import BookingCore, BookingPolicy
from booking.errors import AdmissionRequired
from booking.keyring import Keyring
from booking.layout import LayoutSpec, SectionSpec, TierSpec
from booking.migrate import upgrade
from booking.payments import TestGateway
from booking.waiting_room import ADMITTED, EXPIRED, Policy
from server.database import make_engine
from tests.conftest import SECRET
from tests.waiting_room.conftest import RoomFactory

T0 = 1_000_000.0


def policy(
    rate: float = 1000, cap: int = 10**6, ttl: int = 600, paused: bool = False, open: bool = True
) -> Policy:
    return Policy(open=open, paused=paused, rate_per_s=rate, max_active=cap, admission_ttl_s=ttl)


async def fill(room, event_id: int, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    await room.admit(event_id, policy(), T0 - 100)  # open the sale (empty pre-queue)
    users = [f"u{i:04d}" for i in range(count)]
    for user in users:
        await room.join(event_id, user, policy())
    return users


async def test_admissions_follow_the_rate(make_room: RoomFactory, event_id: int) -> None:
    room = make_room(None)
    await fill(room, event_id, 200)
    admitted = 0
    per_second = []
    for tick in range(1, 101):  # 10 simulated seconds in steps of 100 ms
        got = len(await room.admit(event_id, policy(rate=5), T0 + tick / 10))
        admitted += got
        if tick % 10 == 0:
            per_second.append(admitted)
    # A full bucket (one second's worth) at most once, then 5 per second.
    assert 49 <= admitted <= 55
    counts = [b - a for a, b in zip([0, *per_second], per_second, strict=False)]
    assert counts[0] <= 10 and all(c <= 6 for c in counts[1:]), counts


async def test_active_shoppers_are_capped_and_a_purchase_frees_a_place(
    make_room: RoomFactory, event_id: int
) -> None:
    room = make_room(None)
    users = await fill(room, event_id, 10)
    first = await room.admit(event_id, policy(cap=3), T0 + 1)
    assert first == users[:3]
    assert await room.admit(event_id, policy(cap=3), T0 + 2) == []
    assert (await room.stats(event_id)).active == 3
    assert not await room.used(event_id, users[0])
    await room.complete(event_id, users[0])
    assert await room.used(event_id, users[0]) and not await room.used(event_id, users[1])
    assert await room.admit(event_id, policy(cap=3), T0 + 3) == [users[3]]


async def test_the_estimate_counts_the_shopper_cap_not_only_the_rate(
    make_room: RoomFactory, event_id: int
) -> None:
    """A fast rate behind a full cap of shoppers is not "under a minute": places free only as
    admissions are used or lapse, so the estimate grows with the admission's lifetime."""
    room = make_room(None)
    users = await fill(room, event_id, 12)
    capped = policy(rate=100, cap=2, ttl=600)
    assert await room.admit(event_id, capped, T0 + 1) == users[:2]
    last = await room.position(event_id, users[-1], capped)
    assert last is not None and last.ahead == 9
    # Nine ahead, two places recycling at worst every 600 s: at least 2,700 s, not 1 s.
    assert last.eta_seconds is not None and last.eta_seconds >= 9 * 600 // 2
    # With the cap out of the way the same queue moves at the rate.
    free = await room.position(event_id, users[-1], policy(rate=100, cap=10**6))
    assert free is not None and free.eta_seconds == 1
    paused = await room.position(event_id, users[-1], policy(paused=True))
    assert paused is not None and paused.eta_seconds is None
    # Closed (by an admin, or past its closing time): nobody is admitted, so no wait is known.
    closed = await room.position(event_id, users[-1], policy(open=False))
    assert closed is not None and closed.eta_seconds is None


async def test_the_estimate_counts_the_users_own_admission(
    make_room: RoomFactory, event_id: int
) -> None:
    """Next in line is not "0 s" when the cap is full or the rate slow: the user waits for a
    place to free (a lapse, at worst) or for the next admission the rate allows."""
    room = make_room(None)
    users = await fill(room, event_id, 3)
    capped = policy(rate=10, cap=1, ttl=10)
    assert await room.admit(event_id, capped, T0 + 1) == users[:1]
    etas = [(await room.position(event_id, user, capped)) for user in users[1:]]
    assert [(p.position, p.eta_seconds) for p in etas if p is not None] == [(1, 10), (2, 20)]
    slow = policy(rate=0.1, cap=100)
    etas = [(await room.position(event_id, user, slow)) for user in users[1:]]
    assert [(p.position, p.eta_seconds) for p in etas if p is not None] == [(1, 10), (2, 20)]


async def test_an_unused_admission_expires_and_makes_room(
    make_room: RoomFactory, event_id: int
) -> None:
    room = make_room(None)
    users = await fill(room, event_id, 3)
    assert await room.admit(event_id, policy(cap=1, ttl=30), T0 + 1) == [users[0]]
    assert await room.admit(event_id, policy(cap=1, ttl=30), T0 + 20) == []
    assert await room.admit(event_id, policy(cap=1, ttl=30), T0 + 32) == [users[1]]
    lapsed = await room.position(event_id, users[0], policy())
    assert lapsed is not None and lapsed.state == EXPIRED


async def test_paused_admits_nobody(make_room: RoomFactory, event_id: int) -> None:
    room = make_room(None)
    await fill(room, event_id, 5)
    assert await room.admit(event_id, policy(paused=True), T0 + 10) == []
    assert len(await room.admit(event_id, policy(), T0 + 11)) == 5


async def test_concurrent_joins_and_admissions_never_exceed_the_cap(
    make_room: RoomFactory, event_id: int
) -> None:
    room = make_room(None)
    await room.admit(event_id, policy(), T0)
    admitted: list[str] = []

    async def admit_loop() -> None:
        for tick in range(1, 60):
            admitted.extend(await room.admit(event_id, policy(rate=50, cap=20), T0 + tick / 10))
            assert (await room.stats(event_id)).active <= 20
            await asyncio.sleep(0)

    joins = [room.join(event_id, f"j{i:03d}", policy()) for i in range(300)]
    await asyncio.gather(admit_loop(), *joins)
    assert len(admitted) == len(set(admitted)) == 20  # each once, and the cap held


# -- tokens, end to end through the booking service ----------------------------------------


@pytest.fixture
async def booking(migrated_database: str) -> AsyncIterator[BookingCore]:
    engine = make_engine(migrated_database)
    await upgrade(engine)
    yield core.build(
        engine, TestGateway(engine), Keyring(SECRET), policy=BookingPolicy(admission_ttl_s=60)
    )
    await engine.dispose()


async def waiting_room_event(booking: BookingCore) -> int:
    now = utcnow()
    spec = EventSpec(
        name="Queue test", venue="Hall", starts_at=now + timedelta(days=1),
        sale_opens_at=now - timedelta(minutes=1), sale_closes_at=now + timedelta(hours=1),
        status="on_sale", waiting_room=True, admission_rate=100, max_active_shoppers=10,
        layout=LayoutSpec(tiers=[TierSpec(name="A", price_cents=1000)],
                          sections=[SectionSpec(name="S", rows=2, seats_per_row=5, tier="A")]),
    )  # fmt: skip
    return (await booking.inventory.create_event(spec)).id


async def test_admission_token_lets_the_admitted_user_hold_and_no_one_else(
    booking: BookingCore,
) -> None:
    event_id = await waiting_room_event(booking)
    other_event = await waiting_room_event(booking)
    with pytest.raises(AdmissionRequired):
        await booking.holds.hold(event_id, "ann", ["S-A-1"])
    await booking.admissions.join(event_id, "ann")
    await booking.admissions.join(event_id, "bob")
    info = await booking.inventory.event(event_id)
    admitted = await booking.admissions.room.admit(
        event_id, booking.admissions.policy(info), time.time()
    )
    assert admitted[0] == "ann"
    ann = await booking.admissions.standing(event_id, "ann")
    assert ann.state == ADMITTED and ann.admitted_until is not None
    token = booking.admissions.signer.issue(event_id, "ann", ann.admitted_until)

    for user, event in [("bob", event_id), ("ann", other_event)]:  # another user; another event
        with pytest.raises(AdmissionRequired):
            await booking.holds.hold(event, user, ["S-A-1"], token)
    with pytest.raises(AdmissionRequired):
        await booking.holds.hold(event_id, "ann", ["S-A-1"], token + "x")  # forged
    stale = booking.admissions.signer.issue(event_id, "ann", time.time() - 1)
    with pytest.raises(AdmissionRequired):
        await booking.holds.hold(event_id, "ann", ["S-A-1"], stale)  # expired

    hold = await booking.holds.hold(event_id, "ann", ["S-A-1"], token)
    assert hold.seat_ids == ["S-A-1"]


async def test_a_purchase_uses_the_admission_up(booking: BookingCore) -> None:
    """After paying, the buyer's token holds no more seats (their place under the cap went to
    the next in line); a hold placed before the purchase stays payable."""
    event_id = await waiting_room_event(booking)
    await booking.admissions.join(event_id, "ann")
    info = await booking.inventory.event(event_id)
    await booking.admissions.room.admit(event_id, booking.admissions.policy(info), time.time())
    ann = await booking.admissions.standing(event_id, "ann")
    assert ann.admission_token is not None
    first = await booking.holds.hold(event_id, "ann", ["S-A-1"], ann.admission_token)
    second = await booking.holds.hold(event_id, "ann", ["S-A-2"], ann.admission_token)
    paid = await booking.checkout.run(
        user="ann", hold_id=first.id, key="k1", payment={"method": "card", "token": "tok_visa"}
    )
    assert paid.order is not None
    assert (await booking.admissions.standing(event_id, "ann")).state == "closed"

    with pytest.raises(AdmissionRequired, match="used up"):
        await booking.holds.hold(event_id, "ann", ["S-A-3"], ann.admission_token)
    again = await booking.checkout.run(
        user="ann", hold_id=second.id, key="k2", payment={"method": "card", "token": "tok_visa"}
    )
    assert again.order is not None
