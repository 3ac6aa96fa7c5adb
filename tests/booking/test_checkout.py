"""Checkout: payment by each test card, idempotency, holds lapsing mid-payment, cancellation and
ticket verification (SPEC §5)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlalchemy import insert

from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.core import BookingCore
from booking.errors import HoldNotActive, IdempotencyMismatch, NotFound, RequestInProgress
from booking.holds import Hold
from booking.keyring import Keyring
from booking.payments import ChargeOutcome
from booking.payments import TestGateway as Gateway
from booking.schema import holds, orders, payments, tickets
from booking.tickets import TicketSigner
from server.bodies import ticket_check_out
from tests.booking.conftest import (
    VISA,
    ExpiringProvider,
    build_service,
    buy,
    card,
    count,
    hold_status,
    ledger,
    order_count,
    payment_rows,
    rendered,
    rows,
    seat_row,
    valid_tickets,
)


@pytest.fixture
async def hold(service: BookingCore, event: EventInfo) -> Hold:
    return await service.holds.hold(event.id, "alice", ["A-A-1", "B-A-2"])


async def test_visa_pays_and_issues_tickets(
    service: BookingCore, event: EventInfo, hold: Hold
) -> None:
    outcome = await buy(service, "alice", hold.id, "key-1", VISA)
    assert outcome.ok and not outcome.replayed
    body = rendered(outcome)
    assert body["status"] == "paid" and body["event_id"] == event.id
    assert (body["amount_cents"], body["currency"]) == (7500, "EUR")
    assert body["created_at"].endswith("Z")
    assert [t["seat_id"] for t in body["tickets"]] == ["A-A-1", "B-A-2"]
    assert all(t["status"] == "valid" for t in body["tickets"])
    order_id = body["order_id"]

    engine = service.engine
    (order,) = await rows(engine, orders)
    assert (order.id, order.status, order.hold_id, order.user_id) == (
        order_id, "paid", hold.id, "alice",
    )  # fmt: skip
    issued = await valid_tickets(engine, event.id)
    assert sorted((t.seat_id, t.active_seat_id, t.order_id) for t in issued) == [
        ("A-A-1", "A-A-1", order_id),
        ("B-A-2", "B-A-2", order_id),
    ]
    assert {t.code for t in issued} == {t["code"] for t in body["tickets"]}
    (pay,) = await payment_rows(engine, hold.id)
    assert (pay.status, pay.order_id, pay.amount_cents) == ("charged", order_id, 7500)
    (charge,) = await ledger(engine)
    assert (charge.payment_id, charge.status, charge.amount_cents) == (pay.id, "charged", 7500)
    assert await hold_status(engine, hold.id) == "purchased"
    for seat_id in hold.seat_ids:
        row = await seat_row(engine, event.id, seat_id)
        assert row.order_id == order_id and row.hold_id is None
    seatmap = await service.inventory.seat_map(event.id)
    assert seatmap.status("A-A-1", utcnow()) == "sold"

    assert rendered(await service.orders.get(order_id, "alice")) == body
    assert rendered(await service.orders.get(order_id, None)) == body
    with pytest.raises(NotFound):
        await service.orders.get(order_id, "mallory")
    # the hold is spent
    again = await buy(service, "alice", hold.id, "key-2", VISA)
    assert not again.ok and rendered(again)["kind"] == "conflict"
    assert len(await ledger(engine)) == 1


@pytest.mark.parametrize("token", ["tok_declined", "tok_unknown_card", ""])
async def test_declined_leaves_no_order_and_no_charge(
    service: BookingCore, event: EventInfo, hold: Hold, token: str
) -> None:
    outcome = await buy(service, "alice", hold.id, "key-1", card(token))
    assert not outcome.ok
    assert rendered(outcome)["kind"] == "payment_declined"
    assert await order_count(service.engine) == 0
    assert await ledger(service.engine) == []
    assert [p.status for p in await payment_rows(service.engine, hold.id)] == ["declined"]
    assert await valid_tickets(service.engine, event.id) == []
    # the hold is untouched: paying again with a good card works
    assert await hold_status(service.engine, hold.id) == "active"
    assert (await buy(service, "alice", hold.id, "key-2", VISA)).ok


async def test_gateway_error_fails_without_charge(
    service: BookingCore, event: EventInfo, hold: Hold
) -> None:
    outcome = await buy(service, "alice", hold.id, "key-1", card("tok_error"))
    assert not outcome.ok and rendered(outcome)["kind"] == "payment_failed"
    assert await order_count(service.engine) == 0
    assert await ledger(service.engine) == []
    assert [p.status for p in await payment_rows(service.engine, hold.id)] == ["failed"]
    assert await hold_status(service.engine, hold.id) == "active"
    assert (await buy(service, "alice", hold.id, "key-2", VISA)).ok


async def test_timeout_refunds_the_charge(
    service: BookingCore, event: EventInfo, hold: Hold
) -> None:
    started = time.monotonic()
    outcome = await asyncio.wait_for(
        buy(service, "alice", hold.id, "key-1", card("tok_timeout")), 10
    )
    assert time.monotonic() - started < 8  # payment_timeout_s is 2
    assert not outcome.ok and rendered(outcome)["kind"] == "payment_failed"
    assert "in time" in rendered(outcome)["detail"]
    assert await order_count(service.engine) == 0
    (charge,) = await ledger(service.engine)
    assert charge.status == "refunded"
    (pay,) = await payment_rows(service.engine, hold.id)
    assert pay.status == "failed" and pay.id == charge.payment_id
    assert await valid_tickets(service.engine, event.id) == []
    assert await hold_status(service.engine, hold.id) == "active"


async def test_replay_returns_the_first_outcome_and_charges_once(
    service: BookingCore, event: EventInfo, hold: Hold
) -> None:
    first = await buy(service, "alice", hold.id, "key-1", VISA)
    second = await buy(service, "alice", hold.id, "key-1", VISA)
    assert first.ok and second.ok and second.replayed
    assert rendered(second) == rendered(first)
    assert len(await ledger(service.engine)) == 1
    assert len(await payment_rows(service.engine, hold.id)) == 1
    assert await order_count(service.engine) == 1
    # a fresh node replays it too (the outcome is in the database)
    other = build_service(service.engine)
    third = await buy(other, "alice", hold.id, "key-1", VISA)
    assert third.replayed and rendered(third) == rendered(first)
    # the key is per user: bob's "key-1" is his own (and the hold is not his)
    bobs = await buy(service, "bob", hold.id, "key-1", VISA)
    assert not bobs.ok and rendered(bobs)["kind"] == "conflict"
    assert len(await ledger(service.engine)) == 1


async def test_replay_of_a_failure(service: BookingCore, event: EventInfo, hold: Hold) -> None:
    first = await buy(service, "alice", hold.id, "key-1", card("tok_declined"))
    second = await buy(service, "alice", hold.id, "key-1", card("tok_declined"))
    assert not first.ok and second.replayed and rendered(second) == rendered(first)
    assert len(await payment_rows(service.engine, hold.id)) == 1


async def test_same_key_with_another_request_is_a_mismatch(
    service: BookingCore, event: EventInfo, hold: Hold
) -> None:
    other_hold = await service.holds.hold(event.id, "alice", ["B-A-3"])
    assert (await buy(service, "alice", hold.id, "key-1", VISA)).ok
    with pytest.raises(IdempotencyMismatch):
        await buy(service, "alice", hold.id, "key-1", card("tok_declined"))
    with pytest.raises(IdempotencyMismatch):
        await buy(service, "alice", other_hold.id, "key-1", VISA)
    assert len(await ledger(service.engine)) == 1
    assert await hold_status(service.engine, other_hold.id) == "active"


async def test_concurrent_duplicates_pay_once(service: BookingCore, event: EventInfo) -> None:
    """The same hold checked out at once with one key and with several keys: one order."""
    # The latency makes the calls overlap; a generous payment timeout keeps a busy machine
    # (parallel test workers) from turning that latency into "the gateway did not answer".
    slow = build_service(
        service.engine, Gateway(service.engine, latency_s=0.2), payment_timeout_s=10
    )
    hold = await slow.holds.hold(event.id, "alice", ["A-B-1", "A-B-2"])
    calls = [buy(slow, "alice", hold.id, "same", VISA) for _ in range(3)]
    calls += [buy(slow, "alice", hold.id, f"key-{i}", VISA) for i in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)
    paid = [r for r in results if not isinstance(r, BaseException) and r.ok]
    order_ids = {rendered(r)["order_id"] for r in paid}
    assert len(order_ids) == 1, results
    for r in results:
        if isinstance(r, BaseException):
            assert isinstance(r, RequestInProgress), r
        elif not r.ok:
            assert rendered(r)["kind"] == "conflict", rendered(r)
    assert await order_count(service.engine) == 1
    assert len(await valid_tickets(service.engine, event.id)) == 2
    charges = await ledger(service.engine)
    assert [c.status for c in charges].count("charged") == 1
    assert all(c.status == "refunded" for c in charges if c.status != "charged")
    (order,) = await rows(service.engine, orders)
    (charged,) = await rows(service.engine, payments, payments.c.status == "charged")
    assert charged.order_id == order.id and order.payment_id == charged.id


async def test_hold_lapsing_while_paying_is_refunded(
    service: BookingCore, event: EventInfo
) -> None:
    provider = ExpiringProvider(service.engine)
    node = build_service(service.engine, provider)
    hold = await node.holds.hold(event.id, "alice", ["A-A-5"])
    outcome = await buy(node, "alice", hold.id, "key-1", VISA)
    assert not outcome.ok and rendered(outcome)["kind"] == "conflict"
    assert "refunded" in rendered(outcome)["detail"]
    assert await order_count(service.engine) == 0
    assert await valid_tickets(service.engine, event.id) == []
    (charge,) = await ledger(service.engine)
    assert charge.status == "refunded"
    (pay,) = await payment_rows(service.engine, hold.id)
    assert pay.status == "refunded" and pay.order_id is None
    assert (await seat_row(service.engine, event.id, "A-A-5")).order_id is None
    # the seat is free for someone else
    await node.holds.reap()
    await node.holds.hold(event.id, "bob", ["A-A-5"])


async def test_seats_taken_while_paying_are_refunded(
    service: BookingCore, event: EventInfo
) -> None:
    """The hold lapses during payment and another user takes the seat before the commit."""
    engine = service.engine
    thief = build_service(engine)

    class StealingGateway(ExpiringProvider):
        async def charge(
            self, *, payment_id: str, amount_cents: int, currency: str, token: str
        ) -> ChargeOutcome:
            result = await super().charge(
                payment_id=payment_id, amount_cents=amount_cents, currency=currency, token=token
            )
            await thief.holds.hold(event.id, "bob", ["A-A-4"])
            return result

    node = build_service(engine, StealingGateway(engine))
    hold = await node.holds.hold(event.id, "alice", ["A-A-4"])
    outcome = await buy(node, "alice", hold.id, "key-1", VISA)
    assert not outcome.ok and rendered(outcome)["kind"] == "conflict"
    assert [c.status for c in await ledger(engine)] == ["refunded"]
    assert await order_count(engine) == 0
    row = await seat_row(engine, event.id, "A-A-4")
    assert row.hold_user == "bob" and row.order_id is None


async def test_checkout_of_a_hold_not_yours(
    service: BookingCore, event: EventInfo, hold: Hold
) -> None:
    for user, hold_id in (("mallory", hold.id), ("alice", "h_doesnotexist")):
        outcome = await buy(service, user, hold_id, "key-1", VISA)
        assert not outcome.ok and rendered(outcome)["kind"] == "conflict"
    assert await ledger(service.engine) == []
    assert await count(service.engine, payments) == 0


async def test_cancel_refunds_and_frees_the_seats(
    service: BookingCore, event: EventInfo, hold: Hold
) -> None:
    paid = await buy(service, "alice", hold.id, "key-1", VISA)
    order_id = rendered(paid)["order_id"]
    with pytest.raises(NotFound):
        await service.orders.cancel(order_id, "mallory")
    body = rendered(await service.orders.cancel(order_id, "alice"))
    assert body["status"] == "cancelled"
    assert all(t["status"] == "void" for t in body["tickets"])
    engine = service.engine
    assert [c.status for c in await ledger(engine)] == ["refunded"]
    assert [p.status for p in await payment_rows(engine, hold.id)] == ["refunded"]
    assert await valid_tickets(engine, event.id) == []
    voided = await rows(engine, tickets, tickets.c.order_id == order_id)
    assert {(t.status, t.active_seat_id) for t in voided} == {("void", None)}
    for seat_id in hold.seat_ids:
        assert (await seat_row(engine, event.id, seat_id)).order_id is None
        assert (await service.inventory.seat_map(event.id)).status(seat_id, utcnow()) == "available"
    with pytest.raises(HoldNotActive):
        await service.orders.cancel(order_id, "alice")
    assert len(await ledger(engine)) == 1
    # the seats sell again, with new valid tickets beside the void ones
    again = await service.holds.hold(event.id, "bob", hold.seat_ids)
    resold = await buy(service, "bob", again.id, "key-1", VISA)
    assert resold.ok
    assert len(await valid_tickets(engine, event.id)) == 2
    # alice's limit no longer counts the cancelled tickets
    await service.holds.hold(event.id, "alice", ["A-A-2", "A-A-3", "A-A-4", "A-A-5"])
    # an admin (user None) may cancel any order
    cancelled = await service.orders.cancel(rendered(resold)["order_id"], None)
    assert cancelled.status == "cancelled"


async def test_ticket_verification(service: BookingCore, event: EventInfo, hold: Hold) -> None:
    paid = await buy(service, "alice", hold.id, "key-1", VISA)
    code = rendered(paid)["tickets"][0]["code"]
    seen = ticket_check_out(await service.orders.verify(code)).model_dump(mode="json")
    assert seen == {
        "code": code,
        "valid": True,
        "status": "valid",
        "event_id": event.id,
        "seat_id": "A-A-1",
        "order_id": rendered(paid)["order_id"],
    }
    # an Ed25519 code: T2.<kid>.<payload>.<signature>
    version, kid, payload, signature = code.split(".")
    tampered = f"{version}.{kid}.{payload}." + ("A" if signature[0] != "A" else "B") + signature[1:]
    order_id = rendered(paid)["order_id"]
    other_payload = service.codes.issue(event.id, "A-A-9", order_id).split(".")[2]
    forged = [
        tampered,
        f"{version}.{kid}.{other_payload}.{signature}",
        f"{version}.nokey.{payload}.{signature}",
        # legacy HMAC codes under another secret
        TicketSigner(Keyring("another secret")).issue(
            event.id, "A-A-1", rendered(paid)["order_id"]
        ),
        # genuinely signed but never issued
        service.orders.signer.issue(event.id, "A-A-2", rendered(paid)["order_id"]),
        "garbage",
        "a.b.c",
        "",
    ]
    for bad in forged:
        with pytest.raises(NotFound):
            await service.orders.verify(bad)
    await service.orders.cancel(rendered(paid)["order_id"], "alice")
    voided = await service.orders.verify(code)
    assert voided.valid is False and voided.status == "void"


async def test_recover_refunds_stale_pending_payments(
    service: BookingCore, event: EventInfo, hold: Hold
) -> None:
    """What a crash between charge and commit leaves behind, and how start-up cleans it."""
    engine = service.engine
    gateway = Gateway(engine)
    long_ago = utcnow() - timedelta(seconds=30)
    async with engine.begin() as conn:
        for payment_id, when in (("pay_stale", long_ago), ("pay_recent", utcnow())):
            await conn.execute(
                insert(payments).values(
                    id=payment_id, user_id="alice", hold_id=hold.id, amount_cents=7500,
                    currency="EUR", provider="test", status="pending", created_at=when,
                    updated_at=when,
                )
            )  # fmt: skip
    await gateway.charge(payment_id="pay_stale", amount_cents=7500, currency="EUR",
                         token="tok_visa")  # fmt: skip
    await gateway.charge(payment_id="pay_recent", amount_cents=7500, currency="EUR",
                         token="tok_visa")  # fmt: skip
    assert await service.checkout.recover() == 1  # grace is 2 x 2 s + 1 s
    statuses = {c.payment_id: c.status for c in await ledger(engine)}
    assert statuses == {"pay_stale": "refunded", "pay_recent": "charged"}
    (stale,) = await rows(engine, payments, payments.c.id == "pay_stale")
    assert stale.status == "refunded"
    assert await order_count(engine) == 0
    assert await hold_status(engine, hold.id) == "active"
    assert await count(engine, holds) == 1
