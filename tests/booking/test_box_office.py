"""The box office's domain on both backends: the outbox delivers each message once (also with
two senders racing, and after failures), sign-in requests expire and are limited per address,
refunds are retried until the gateway confirms them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.core import BookingCore
from booking.customers import SIGN_IN
from booking.errors import SignInFailed, SignInLimited
from booking.outbox import Outbox, OutboxMessage, enqueue
from booking.payments import GatewayError, TestGateway
from booking.schema import outbox, payments, refunds, sign_ins
from tests.booking.conftest import VISA, build_service, buy, ledger, rendered, rows


async def make_due(engine: AsyncEngine, table: Any) -> None:
    """Move every retry of ``table`` to now (instead of waiting out the backoff)."""
    async with engine.begin() as conn:
        await conn.execute(update(table).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


async def test_enqueue_keeps_the_first_message_of_a_dedupe_key(engine: AsyncEngine) -> None:
    for payload in ({"n": 1}, {"n": 2}):
        async with engine.begin() as conn:
            await enqueue(conn, "note", payload, "note:1", ref="r1")
    sent: list[dict[str, Any]] = []

    async def handler(message: OutboxMessage) -> None:
        sent.append(message.payload)

    box = Outbox(engine)
    assert await box.deliver_due({"note": handler}) == 1
    assert await box.deliver_due({"note": handler}) == 0
    assert sent == [{"n": 1}]
    (delivery,) = await box.deliveries("r1")
    assert delivery.sent_at is not None and delivery.attempts == 1


async def test_a_failing_message_is_retried_until_it_is_sent_once(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await enqueue(conn, "note", {"email": "a@example.com"}, "note:2", ref="r2")
    failures = 3
    sent = 0

    async def flaky(_: OutboxMessage) -> None:
        nonlocal failures, sent
        if failures:
            failures -= 1
            raise ConnectionRefusedError("smtp is down")
        sent += 1

    box = Outbox(engine, retry_max_s=60)
    for attempt in range(1, 4):
        assert await box.deliver_due({"note": flaky}) == 0
        (delivery,) = await box.deliveries("r2")
        assert delivery.attempts == attempt and "smtp is down" in (delivery.last_error or "")
        assert delivery.sent_at is None and delivery.next_attempt_at > utcnow()
        assert await box.deliver_due({"note": flaky}) == 0  # not due yet: backing off
        await make_due(engine, outbox)
    assert await box.deliver_due({"note": flaky}) == 1
    await make_due(engine, outbox)
    assert await box.deliver_due({"note": flaky}) == 0
    assert sent == 1


async def test_two_senders_never_send_one_message_twice(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for n in range(20):
            await enqueue(conn, "note", {"n": n}, f"race:{n}")
    seen: list[int] = []

    async def slow(message: OutboxMessage) -> None:
        await asyncio.sleep(0.001)
        seen.append(int(message.payload["n"]))

    nodes = [Outbox(engine, batch=50), Outbox(engine, batch=50)]
    await asyncio.gather(*(node.deliver_due({"note": slow}) for node in nodes))
    assert sorted(seen) == list(range(20))


async def test_sign_in_requests_expire_are_single_use_and_limited_per_address(
    service: BookingCore,
) -> None:
    customers = service.customers
    messages: list[OutboxMessage] = []

    async def keep(message: OutboxMessage) -> None:
        messages.append(message)

    await customers.request_sign_in("Ada@Example.com", "127.0.0.1")
    await service.outbox.deliver_due({SIGN_IN: keep})
    (first,) = messages
    assert first.payload["email"] == "ada@example.com"
    # Expired: neither the link nor the code works.
    async with service.engine.begin() as conn:
        await conn.execute(update(sign_ins).values(expires_at=utcnow() - timedelta(seconds=1)))
    with pytest.raises(SignInFailed):
        await customers.redeem_link(first.payload["link"])
    with pytest.raises(SignInFailed):
        await customers.redeem_code("ada@example.com", first.payload["code"])
    # A fresh one works once; the same customer every time.
    await customers.request_sign_in("ada@example.com", "127.0.0.1")
    await service.outbox.deliver_due({SIGN_IN: keep})
    fresh = messages[-1].payload
    ada = await customers.redeem_code("ada@example.com", fresh["code"])
    with pytest.raises(SignInFailed):
        await customers.redeem_link(fresh["link"])
    await customers.request_sign_in("ada@example.com", "127.0.0.1")
    await service.outbox.deliver_due({SIGN_IN: keep})
    assert (await customers.redeem_link(messages[-1].payload["link"])).id == ada.id
    # Five requests an hour per address (three made so far), whatever the address's case.
    for _ in range(2):
        await customers.request_sign_in("ADA@example.com", "10.0.0.1")
    with pytest.raises(SignInLimited):
        await customers.request_sign_in("ada@example.com", "10.0.0.2")
    await customers.request_sign_in("bob@example.com", "10.0.0.1")  # others unaffected


async def test_racing_redemptions_of_one_link_yield_one_token(service: BookingCore) -> None:
    got: list[OutboxMessage] = []

    async def keep(message: OutboxMessage) -> None:
        got.append(message)

    await service.customers.request_sign_in("race@example.com", "127.0.0.1")
    await service.outbox.deliver_due({SIGN_IN: keep})
    link = got[0].payload["link"]
    results = await asyncio.gather(
        *(service.customers.redeem_link(link) for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, SignInFailed) for r in results if isinstance(r, BaseException))


class FlakyRefunds(TestGateway):
    """The test gateway, whose refunds fail ``failures`` times first (an outage)."""

    def __init__(self, engine: AsyncEngine, failures: int) -> None:
        super().__init__(engine)
        self.failures = failures

    async def refund(self, payment_id: str) -> bool:
        if self.failures:
            self.failures -= 1
            raise GatewayError("gateway unavailable")
        return await super().refund(payment_id)


async def test_a_failed_refund_is_retried_until_it_succeeds(
    engine: AsyncEngine, event: EventInfo
) -> None:
    gateway = FlakyRefunds(engine, failures=2)
    service = build_service(engine, gateway)
    hold = await service.holds.hold(event.id, "alice", ["A-A-1"])
    order_id = rendered(await buy(service, "alice", hold.id, "k1", VISA))["order_id"]
    cancelled = await service.orders.cancel(order_id, "alice")
    assert cancelled.status == "cancelled" and cancelled.refund == "pending"
    (payment,) = await rows(engine, payments, payments.c.order_id == order_id)
    assert payment.status == "refund_pending"  # owed, not "charged"
    assert [c.status for c in await ledger(engine)] == ["charged"]
    assert await service.refunds.retry_due() == 0  # backing off
    await make_due(engine, refunds)
    await service.refunds.retry_due()  # the second failure
    (refund,) = await rows(engine, refunds, refunds.c.order_id == order_id)
    assert refund.status == "pending" and refund.attempts == 2
    await make_due(engine, refunds)
    await service.refunds.retry_due()
    (refund,) = await rows(engine, refunds, refunds.c.order_id == order_id)
    assert refund.status == "refunded" and refund.attempts == 3
    (payment,) = await rows(engine, payments, payments.c.order_id == order_id)
    assert payment.status == "refunded"
    assert [c.status for c in await ledger(engine)] == ["refunded"]
    assert (await service.orders.get(order_id, "alice")).refund == "refunded"
