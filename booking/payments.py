"""Payment providers: the interface checkout relies on, and the built-in test gateway.

A provider charges under *our* payment id, so a charge can always be found and refunded by that
id, even after a crash that lost the provider's answer. The test gateway (SPEC §5) answers by card
token: ``tok_visa`` approves, ``tok_declined`` declines, ``tok_timeout`` charges and then never
answers (so a timed-out charge must be refunded), ``tok_error`` fails; any other token is declined
as an unknown card.
"""

from __future__ import annotations

import asyncio
import time
from enum import Enum
from typing import Protocol

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.clock import utcnow
from booking.hooks import BookingHooks, PaymentCall, RefundOutcome, RefundReason
from booking.schema import test_gateway_charges


class ChargeOutcome(Enum):
    APPROVED = "approved"
    DECLINED = "declined"


class GatewayError(Exception):
    """The gateway failed or its answer is unknown; a charge may or may not exist."""


class PaymentProvider(Protocol):
    name: str

    async def charge(
        self, *, payment_id: str, amount_cents: int, currency: str, token: str
    ) -> ChargeOutcome:
        """Charge once per ``payment_id`` (a retry with the same id must not charge twice)."""

    async def refund(self, payment_id: str) -> bool:
        """Refund or void the charge made under ``payment_id``; ``False`` if there was none."""


async def refund(
    provider: PaymentProvider, payment_id: str, reason: RefundReason, hooks: BookingHooks
) -> bool:
    """``provider.refund(payment_id)``, telling ``hooks`` how long it took and how it went (every
    refund goes through here: checkout, cancellation, recovery). A failed call is reported and
    raised again: the caller's payment row keeps saying what recovery needs."""
    started = time.perf_counter()
    try:
        refunded = await provider.refund(payment_id)
    except BaseException:
        hooks.payment_called(PaymentCall.REFUND, time.perf_counter() - started)
        hooks.refunded(reason, RefundOutcome.FAILED)
        raise
    hooks.payment_called(PaymentCall.REFUND, time.perf_counter() - started)
    hooks.refunded(reason, RefundOutcome.REFUNDED if refunded else RefundOutcome.NO_CHARGE)
    return refunded


class TestGateway:
    """The built-in simulated gateway; its ledger is the ``test_gateway_charges`` table."""

    name = "test"
    __test__ = False  # a payment gateway, not a pytest test class

    def __init__(
        self, engine: AsyncEngine, latency_s: float = 0.0, refund_failures: int = 0
    ) -> None:
        self._engine = engine
        self.latency_s = latency_s
        #: Testing only: the next this-many refunds fail (a gateway outage).
        self.refund_failures = refund_failures

    async def charge(
        self, *, payment_id: str, amount_cents: int, currency: str, token: str
    ) -> ChargeOutcome:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if token == "tok_error":
            raise GatewayError("the test gateway reported an error")
        if token not in ("tok_visa", "tok_timeout"):
            return ChargeOutcome.DECLINED
        await self._record(payment_id, amount_cents, currency)
        if token == "tok_timeout":
            await asyncio.Event().wait()  # never answers; the caller's timeout ends this
        return ChargeOutcome.APPROVED

    async def _record(self, payment_id: str, amount_cents: int, currency: str) -> None:
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(test_gateway_charges).values(
                        payment_id=payment_id,
                        amount_cents=amount_cents,
                        currency=currency,
                        status="charged",
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            pass  # the same payment id charged before: idempotent, as a real gateway is

    async def refund(self, payment_id: str) -> bool:
        if self.refund_failures > 0:
            self.refund_failures -= 1
            raise GatewayError("the test gateway failed the refund (injected)")
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(test_gateway_charges)
                .where(
                    test_gateway_charges.c.payment_id == payment_id,
                    test_gateway_charges.c.status == "charged",
                )
                .values(status="refunded")
            )
            return bool(result.rowcount)
