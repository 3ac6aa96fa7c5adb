"""Issue 14: a hold is checked out (charged) once however many checkouts race for it, a hold
names the order that bought it, and the seats held at once are capped per user (race-free),
per client IP and per verified e-mail address, whichever way the hold is placed. On SQLite and
MariaDB (where the races are real: the pool has many connections)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.best_available import BlockRequest
from booking.catalog import EventInfo
from booking.core import BookingCore
from booking.errors import CheckoutInProgress, HoldNotActive, LimitExceeded
from booking.holds import Hold, HoldCaps, HoldClient
from booking.hooks import CheckoutOutcome
from booking.payments import ChargeOutcome, TestGateway
from booking.schema import hold_locks
from tests.booking.conftest import (
    VISA,
    build_service,
    buy,
    call,
    create_event_via_api,
    event_spec,
    ledger,
    order_count,
)
from tests.conftest import ServerProcess


class GatedGateway:
    """The test gateway, whose charges wait until every checkout of the race has either
    ended or reached the gateway too: so the race is real whatever the machine's speed."""

    name = "test"

    def __init__(self, engine: AsyncEngine, racers: int) -> None:
        self.inner = TestGateway(engine)
        self.racers = racers
        self.charging = 0
        self.ended = 0
        self.open = asyncio.Event()

    def checkout_ended(self, _: CheckoutOutcome) -> None:
        self.ended += 1
        self._check()

    def _check(self) -> None:
        if self.charging + self.ended >= self.racers:
            self.open.set()

    async def charge(
        self, *, payment_id: str, amount_cents: int, currency: str, token: str
    ) -> ChargeOutcome:
        self.charging += 1
        self._check()
        await self.open.wait()
        return await self.inner.charge(
            payment_id=payment_id, amount_cents=amount_cents, currency=currency, token=token
        )

    async def refund(self, payment_id: str) -> bool:
        return await self.inner.refund(payment_id)


async def test_concurrent_checkouts_of_one_hold_charge_the_card_once(engine: AsyncEngine) -> None:
    racers = 6
    gateway = GatedGateway(engine, racers)
    service = build_service(engine, gateway, payment_timeout_s=30)
    service.hooks.checkout_ended = gateway.checkout_ended
    event = await service.inventory.create_event(event_spec())
    hold = await service.holds.hold(event.id, "alice", ["A-A-1", "A-A-2"])

    outcomes = await asyncio.gather(
        *(buy(service, "alice", hold.id, f"key-{n}", VISA) for n in range(racers)),
        return_exceptions=True,
    )
    paid = [o for o in outcomes if not isinstance(o, BaseException) and o.ok]
    refused = [o for o in outcomes if isinstance(o, CheckoutInProgress)]
    assert len(paid) == 1 and len(refused) == racers - 1, outcomes
    charges = await ledger(engine)
    assert [c.status for c in charges] == ["charged"], "the card was charged more than once"
    assert await order_count(engine) == 1

    # a refused checkout's key was not spent on "in progress": its retry gets the hold's answer
    again = await buy(service, "alice", hold.id, "key-1" if paid[0] is not outcomes[1] else
                      "key-0", VISA)  # fmt: skip
    assert isinstance(again.error, HoldNotActive) and "purchased" in again.error.detail
    # and the hold names the order that bought it
    seen = await service.holds.get(hold.id, "alice")
    assert seen.status == "purchased" and seen.order_id == paid[0].order.id  # type: ignore[union-attr]


async def test_a_declined_checkout_gives_the_hold_back_for_another_card(
    service: BookingCore, event: EventInfo
) -> None:
    hold = await service.holds.hold(event.id, "bob", ["A-A-3"])
    declined = await buy(service, "bob", hold.id, "k-1", {"method": "card", "token": "tok_no"})
    assert declined.error is not None and declined.error.kind == "payment_declined"
    paid = await buy(service, "bob", hold.id, "k-2", VISA)
    assert paid.ok, paid


def _granted(results: Sequence[Hold | BaseException]) -> list[Hold]:
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, LimitExceeded):
            raise r
    return [r for r in results if isinstance(r, Hold)]


async def test_simultaneous_holds_of_one_user_cannot_pass_the_limit_together(
    service: BookingCore,
) -> None:
    # 2 x 5 + 1 x 4 seats; 4 per user: of two simultaneous 3-seat holds by one user, one fails
    for round_ in range(6):
        event = await service.inventory.create_event(event_spec(name=f"Race {round_}"))
        results = await asyncio.gather(
            service.holds.hold(event.id, "carol", ["A-A-1", "A-A-2", "A-A-3"]),
            service.holds.hold(event.id, "carol", ["A-B-1", "A-B-2", "A-B-3"]),
            return_exceptions=True,
        )
        assert len(_granted(results)) == 1, results


@pytest.mark.parametrize("scope", ["client_ip", "email"])
async def test_one_client_may_hold_only_so_many_seats_at_once_whatever_its_user_names(
    engine: AsyncEngine, scope: str
) -> None:
    caps = HoldCaps(per_ip=5) if scope == "client_ip" else HoldCaps(per_email=5)
    service = build_service(engine, hold_caps=caps)
    event = await service.inventory.create_event(event_spec())

    def client(n: int = 0) -> HoldClient:
        if scope == "client_ip":
            return HoldClient(ip=f"203.0.113.{7 + n}")
        return HoldClient(ip="198.51.100.1", email=f"hoarder{n}@example.com")

    first = await service.holds.hold(event.id, "guest-1", ["A-A-1", "A-A-2"], client=client())
    await service.holds.hold_best(event.id, "guest-2", BlockRequest(2), client=client())
    for attempt in (
        service.holds.hold(event.id, "guest-3", ["B-A-1", "B-A-2"], client=client()),
        service.holds.hold_best(event.id, "guest-4", BlockRequest(2), client=client()),
    ):
        with pytest.raises(LimitExceeded) as refused:
            await attempt
        assert refused.value.extra == {"limit": 5, "have": 4, "scope": scope}
    # one more seat fits; another client is not concerned
    await service.holds.hold(event.id, "guest-5", ["B-A-1"], client=client())
    await service.holds.hold(event.id, "guest-6", ["B-A-2", "B-A-3"], client=client(1))
    # released seats no longer count
    await service.holds.release(first.id, "guest-1")
    await service.holds.hold(event.id, "guest-7", ["A-B-5", "A-B-4"], client=client())


async def test_simultaneous_holds_from_one_address_cannot_pass_its_cap_together(
    engine: AsyncEngine,
) -> None:
    service = build_service(engine, hold_caps=HoldCaps(per_ip=5))
    event = await service.inventory.create_event(event_spec())
    here = HoldClient(ip="192.0.2.1")
    wanted = [["A-A-1", "A-A-2"], ["A-A-3", "A-A-4"], ["A-B-1", "A-B-2"], ["A-B-3", "A-B-4"]]
    results = await asyncio.gather(
        *(service.holds.hold(event.id, f"guest-{n}", seats, client=here)
          for n, seats in enumerate(wanted)),
        service.holds.hold_best(event.id, "guest-x", BlockRequest(2), client=here),
        return_exceptions=True,
    )  # fmt: skip
    assert sum(len(h.seat_ids) for h in _granted(results)) == 4, results


async def test_an_address_without_a_cap_is_not_locked(engine: AsyncEngine) -> None:
    """Behind a proxy every hold comes from one address: with the per-address cap off (as compose
    and Kubernetes run it), holds must not queue up on that address's lock row."""
    service = build_service(engine, hold_caps=HoldCaps(per_ip=0))
    event = await service.inventory.create_event(event_spec())
    proxy = HoldClient(ip="10.0.0.2", email="someone@example.com")
    await service.holds.hold(event.id, "guest-1", ["A-A-1"], client=proxy)
    async with engine.connect() as conn:
        locked = set((await conn.execute(select(hold_locks.c.subject))).scalars())
    assert locked == {"u:guest-1"}, locked


def test_guests_from_one_address_cannot_hoard_a_sale_through_the_api(
    migrated_database: str, make_server: Callable[..., ServerProcess]
) -> None:
    """The probe's attack through a real node: fresh guest identities from one client IP hold
    two seats each until the per-IP cap, by named seats and by best available alike."""
    node = make_server(database_url=migrated_database, max_held_seats_per_ip=5,
                       guest_rate_per_ip=1000, rest_rate_per_ip=100000)  # fmt: skip
    event = create_event_via_api(node, rows=4)

    def guest() -> str:
        status, body = call(node, "POST", "/api/auth/guest")
        assert status == 201, body
        return str(body["token"])

    path = f"/api/events/{event['id']}/holds"
    assert call(node, "POST", path, {"seats": ["S-A-1", "S-A-2"]}, token=guest())[0] == 201
    assert call(node, "POST", path, {"best_available": {"count": 2}}, token=guest())[0] == 201
    for wanted in ({"seats": ["S-D-1", "S-D-2"]}, {"best_available": {"count": 2}}):
        status, problem = call(node, "POST", path, wanted, token=guest())
        assert status == 422, problem
        assert (problem["kind"], problem["scope"], problem["limit"]) == ("limit", "client_ip", 5)
    assert call(node, "POST", path, {"seats": ["S-D-1"]}, token=guest())[0] == 201
