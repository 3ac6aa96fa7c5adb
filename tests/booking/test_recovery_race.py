"""Payment recovery racing a checkout that is still alive (SPEC §5: a paid order always has its
charge; a charge without an order is refunded).

Recovery refunds payments left ``pending`` for longer than any gateway call could take; a node
whose commit is merely slow (a busy database, a long pause) may still be about to commit one. Of
the two, exactly one may win: either the order commits and the charge stands, or the charge is
refunded and no order exists. These tests run another node's recovery sweep at the two worst
moments, with a grace of zero so that the payment counts as stale.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.catalog import EventInfo
from booking.checkout import recover_payments
from booking.clock import utcnow
from booking.core import BookingCore
from booking.payments import ChargeOutcome
from booking.payments import TestGateway as Gateway
from booking.schema import orders, payments
from tests.booking.conftest import VISA, build_service, buy, ledger, rows, valid_tickets


async def assert_one_winner(engine: AsyncEngine, event_id: int, ok: bool) -> None:
    charges = await ledger(engine)
    paid = await rows(engine, orders, orders.c.status == "paid")
    assert len(charges) == 1
    if paid:
        assert ok
        assert charges[0].status == "charged", "a paid order whose charge was refunded"
        assert len(await valid_tickets(engine, event_id)) == 1
    else:
        assert not ok
        assert charges[0].status == "refunded", "a charge without an order"
        assert await valid_tickets(engine, event_id) == []


class RecoveredAfterCharge(Gateway):
    """Another node's recovery sweep runs between the charge and the order's commit."""

    async def charge(self, **kwargs: object) -> ChargeOutcome:
        result = await super().charge(**kwargs)  # type: ignore[arg-type]
        await recover_payments(self._engine, Gateway(self._engine), timedelta(0))
        return result


async def test_recovery_between_charge_and_commit(service: BookingCore, event: EventInfo) -> None:
    node = build_service(service.engine, RecoveredAfterCharge(service.engine))
    hold = await node.holds.hold(event.id, "alice", ["A-A-1"])
    outcome = await buy(node, "alice", hold.id, "k", VISA)
    await assert_one_winner(service.engine, event.id, outcome.ok)


class SlowRefund(Gateway):
    """A gateway whose refund call returns only after ``released`` is set."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.refunded = asyncio.Event()
        self.released = asyncio.Event()

    async def refund(self, payment_id: str) -> bool:
        done = await super().refund(payment_id)
        self.refunded.set()
        await self.released.wait()
        return done


class PausedCharge(Gateway):
    """A gateway whose approval reaches the caller only after ``resume`` is set."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.charged = asyncio.Event()
        self.resume = asyncio.Event()

    async def charge(self, **kwargs: object) -> ChargeOutcome:
        result = await super().charge(**kwargs)  # type: ignore[arg-type]
        self.charged.set()
        await self.resume.wait()
        return result


async def test_commit_while_recovery_is_refunding(service: BookingCore, event: EventInfo) -> None:
    """Recovery has refunded at the gateway but not yet recorded it when the order commits."""
    gateway = PausedCharge(service.engine)
    node = build_service(service.engine, gateway, payment_timeout_s=30)
    hold = await node.holds.hold(event.id, "alice", ["A-A-1"])
    checkout = asyncio.ensure_future(buy(node, "alice", hold.id, "k", VISA))
    await asyncio.wait_for(gateway.charged.wait(), 10)
    refunder = SlowRefund(service.engine)
    recovery = asyncio.ensure_future(recover_payments(service.engine, refunder, timedelta(0)))
    await asyncio.wait_for(refunder.refunded.wait(), 10)
    gateway.resume.set()  # the checkout goes on to commit while recovery is mid-way
    outcome = await asyncio.wait_for(checkout, 10)
    refunder.released.set()
    await asyncio.wait_for(recovery, 10)
    await assert_one_winner(service.engine, event.id, outcome.ok)


async def test_a_recovery_that_died_midway_is_finished(
    service: BookingCore, event: EventInfo
) -> None:
    """A payment left ``refunding`` (a recovery died after claiming it) is refunded later."""
    engine = service.engine
    hold = await service.holds.hold(event.id, "alice", ["A-A-1"])
    old = utcnow() - timedelta(seconds=30)
    async with engine.begin() as conn:
        await conn.execute(
            insert(payments).values(
                id="pay_midway", user_id="alice", hold_id=hold.id, amount_cents=5000,
                currency="EUR", provider="test", status="refunding", created_at=old,
                updated_at=old,
            )
        )  # fmt: skip
    await Gateway(engine).charge(payment_id="pay_midway", amount_cents=5000, currency="EUR",
                                 token="tok_visa")  # fmt: skip
    assert await service.checkout.recover() == 1
    assert [c.status for c in await ledger(engine)] == ["refunded"]
    (pay,) = await rows(engine, payments, payments.c.id == "pay_midway")
    assert pay.status == "refunded"
    assert await service.checkout.recover() == 0
