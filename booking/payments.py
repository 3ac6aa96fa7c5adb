"""Payment providers: the interface checkout relies on, and the built-in test gateway.

A provider charges under *our* payment id, so a charge can always be found and refunded by that
id, even after a crash that lost the provider's answer. The test gateway (SPEC §5) answers by card
token: ``tok_visa`` approves, ``tok_declined`` declines, ``tok_timeout`` charges and then never
answers (so a timed-out charge must be refunded), ``tok_error`` fails; any other token is declined
as an unknown card.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from enum import Enum
from typing import Protocol

from sqlalchemy import event, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from booking.clock import utcnow
from booking.hooks import BookingHooks, PaymentCall, RefundOutcome, RefundReason
from booking.schema import test_gateway_charges
from booking.transactions import in_transaction, skip_reset_after_commit


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


#: Connections of the test gateway's own pool (MariaDB/MySQL).
LEDGER_POOL_SIZE = 4
_CHARGE = insert(test_gateway_charges)


class TestGateway:
    """The built-in simulated gateway; its ledger is the ``test_gateway_charges`` table.

    A real gateway is another system: a charge does not wait for the node's database pool. So
    on MariaDB/MySQL the ledger is written through a small pool of the gateway's own (opened at
    the first charge, closed when ``engine`` is disposed; like the node's, it does not ping its
    connections, see :func:`booking.transactions.in_transaction`), not ``engine``'s: under load
    a charge queued behind the node's requests for a connection would time out (a 502) although
    nothing about the gateway was slow. SQLite (one writer at a time) shares ``engine``.
    """

    name = "test"
    __test__ = False  # a payment gateway, not a pytest test class

    def __init__(
        self, engine: AsyncEngine, latency_s: float = 0.0, refund_failures: int = 0
    ) -> None:
        self._engine = engine
        self._own: AsyncEngine | None = None
        self.latency_s = latency_s
        #: Testing only: the next this-many refunds fail (a gateway outage).
        self.refund_failures = refund_failures

    @property
    def _ledger(self) -> AsyncEngine:
        if self._engine.dialect.name == "sqlite":
            return self._engine
        if self._own is None:
            own = create_async_engine(
                self._engine.url, pool_size=LEDGER_POOL_SIZE, max_overflow=LEDGER_POOL_SIZE,
                pool_recycle=1800, pool_reset_on_return=None,
            )  # fmt: skip
            skip_reset_after_commit(own)
            self._own = own

            def close(_: object) -> None:
                # (inside the node engine's ``dispose()``, on its greenlet: the pool's
                # connections close the way that engine's do)
                own.sync_engine.dispose()

            event.listen(self._engine.sync_engine, "engine_disposed", close, once=True)
        return self._own

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
        async def work(conn: AsyncConnection) -> None:
            await conn.execute(
                _CHARGE,
                {"payment_id": payment_id, "amount_cents": amount_cents, "currency": currency,
                 "status": "charged", "created_at": utcnow()},
            )  # fmt: skip

        # the same payment id charged before: idempotent, as a real gateway is
        with contextlib.suppress(IntegrityError):
            await in_transaction(self._ledger, work)

    async def refund(self, payment_id: str) -> bool:
        if self.refund_failures > 0:
            self.refund_failures -= 1
            raise GatewayError("the test gateway failed the refund (injected)")

        async def work(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                update(test_gateway_charges)
                .where(
                    test_gateway_charges.c.payment_id == payment_id,
                    test_gateway_charges.c.status == "charged",
                )
                .values(status="refunded")
            )
            return bool(result.rowcount)

        return await in_transaction(self._ledger, work)
