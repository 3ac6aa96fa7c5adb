"""Refunds of cancelled orders, retried until the gateway confirms them.

Cancelling an order opens its refund in the cancelling transaction (:func:`open_refund`): a
``refunds`` row ``pending`` and the payment ``refund_pending``. The refund is then tried at once
(:meth:`Refunds.attempt`); if the gateway fails or does not answer, the background worker
(:meth:`Refunds.retry_due`) tries again with an exponential backoff, until the gateway confirms
(``refunded``, the payment too) or staff take it over (:meth:`Refunds.take_over`: ``manual``,
the payment ``refund_manual``). A refund is never left looking like a charge: whatever happens,
the payment says what is owed.

The gateway refunds under the payment id, idempotently, so trying twice never refunds twice; a
gateway answering "no such charge" means an earlier attempt went through and its answer was
lost. Like the outbox, an attempt first claims its refund by moving ``next_attempt_at`` past a
lease, so two nodes never try the same refund at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking import integration
from booking.clock import utcnow
from booking.errors import HoldNotActive, NotFound
from booking.holds import new_id
from booking.hooks import BookingHooks, RefundReason
from booking.outbox import LEASE, Retry
from booking.payments import PaymentProvider
from booking.payments import refund as refund_payment
from booking.rows import row_by_id
from booking.schema import payments, refunds

log = logging.getLogger(__name__)

PENDING = "pending"
REFUNDED = "refunded"
MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    order_id: str
    payment_id: str
    amount_cents: int
    currency: str
    status: str  # pending | refunded | manual
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime


def _refund(row: Any) -> Refund:
    return Refund(**{name: getattr(row, name) for name in Refund.__dataclass_fields__})


async def open_refund(conn: AsyncConnection, order: Any, requested_by: str) -> str:
    """Open the refund of a cancelled ``order`` row in the cancelling transaction."""
    now = utcnow()
    refund_id = new_id("ref")
    await conn.execute(
        insert(refunds).values(
            id=refund_id, order_id=order.id, payment_id=order.payment_id,
            amount_cents=order.amount_cents, currency=order.currency, status=PENDING,
            attempts=0, next_attempt_at=now, requested_by=requested_by, created_at=now,
            updated_at=now,
        )
    )  # fmt: skip
    await _set_payment(conn, order.payment_id, "refund_pending", now)
    return refund_id


async def refund_of(conn: AsyncConnection, order_id: str) -> Refund | None:
    row = (await conn.execute(select(refunds).where(refunds.c.order_id == order_id))).first()
    return None if row is None else _refund(row)


async def _set_payment(conn: AsyncConnection, payment_id: str, status: str, now: datetime) -> None:
    await conn.execute(
        update(payments).where(payments.c.id == payment_id).values(status=status, updated_at=now)
    )


class Refunds:
    def __init__(
        self,
        engine: AsyncEngine,
        provider: PaymentProvider,
        hooks: BookingHooks | None = None,
        timeout_s: float = 10.0,
        retry_max_s: float = 300.0,
    ) -> None:
        self.engine = engine
        self.provider = provider
        self.hooks = hooks or BookingHooks()
        self.timeout_s = timeout_s
        self.retry_max_s = retry_max_s

    async def attempt(self, refund_id: str) -> Refund:
        """Try the refund now if it is due and nobody else is trying it; its state after."""
        now = utcnow()
        due = (refunds.c.status == PENDING, refunds.c.next_attempt_at <= now)
        async with self.engine.begin() as conn:
            claimed = await conn.execute(
                update(refunds)
                .where(refunds.c.id == refund_id, *due)
                .values(next_attempt_at=now + LEASE)
            )
        if claimed.rowcount == 1:
            await self._try(refund_id)
        return await self.get(refund_id)

    async def retry_due(self) -> int:
        """Try every due pending refund (the background worker); how many were tried."""
        async with self.engine.connect() as conn:
            due = await conn.execute(
                select(refunds.c.id)
                .where(refunds.c.status == PENDING, refunds.c.next_attempt_at <= utcnow())
                .order_by(refunds.c.next_attempt_at)
                .limit(50)
            )
            ids = [row.id for row in due]
        for refund_id in ids:
            await self.attempt(refund_id)
        return len(ids)

    async def get(self, refund_id: str) -> Refund:
        async with self.engine.connect() as conn:
            row = await row_by_id(conn, refunds, refund_id, f"no refund {refund_id}")
        return _refund(row)

    async def take_over(self, conn: AsyncConnection, order_id: str) -> Refund:
        """Staff handle this order's pending refund outside the gateway: no more retries."""
        refund = await refund_of(conn, order_id)
        if refund is None:
            raise NotFound(f"order {order_id} has no refund")
        now = utcnow()
        done = await conn.execute(
            update(refunds)
            .where(refunds.c.id == refund.id, refunds.c.status == PENDING)
            .values(status=MANUAL, updated_at=now)
        )
        if done.rowcount != 1:
            raise HoldNotActive(f"the refund is {refund.status}, not pending")
        await _set_payment(conn, refund.payment_id, "refund_manual", now)
        found = await refund_of(conn, order_id)
        assert found is not None
        return found

    async def _try(self, refund_id: str) -> None:
        refund = await self.get(refund_id)
        try:
            async with asyncio.timeout(self.timeout_s):
                await refund_payment(
                    self.provider, refund.payment_id, RefundReason.ORDER_CANCELLED, self.hooks
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(refund, exc)
            return
        now = utcnow()
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(refunds)
                .where(refunds.c.id == refund.id, refunds.c.status == PENDING)
                .values(status=REFUNDED, attempts=refund.attempts + 1, updated_at=now)
            )
            if done.rowcount == 1:  # not taken over by staff meanwhile
                await _set_payment(conn, refund.payment_id, "refunded", now)
                await integration.record(conn, integration.ORDER_REFUNDED, refund.order_id, {
                    "order_id": refund.order_id, "refund_id": refund.id,
                    "amount_cents": refund.amount_cents, "currency": refund.currency,
                })  # fmt: skip

    async def _failed(self, refund: Refund, exc: Exception) -> None:
        retry = Retry.after(refund.attempts, exc, self.retry_max_s)
        log.warning("refund %s of order %s failed: %s", refund.id, refund.order_id, retry)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(refunds)
                .where(refunds.c.id == refund.id, refunds.c.status == PENDING)
                .values(**retry.values(), updated_at=utcnow())
            )
