"""Retention: the records a client can make the booking core write, forgotten when they are of
no more use, so that none of their tables grows without bound.

* a checkout's ``Idempotency-Key`` and its stored outcome: ``idempotency_ttl`` after the key
  was first used (24 h, as Stripe does). A retry is a client's, within seconds or minutes; after
  the TTL the same key is a new request, which finds the hold bought, expired or released, so it
  never pays twice.
* a sign-in request (its hashes) and its e-mail in the outbox: ``sign_in_kept`` after it expired
  (a used or dead request expires too). It can never sign anybody in again, and the per-address
  limit counts only the last hour.
* a hold that ended without an order (released or expired): ``holds_kept`` after it lapsed
  (7 days), with the declined payment attempts made on it (the gateway declined, so no money
  moved). Its seats went back long ago; only its owner could still read it
  (``GET /api/holds/{id}``, then 404). A guest may hold, be declined and release all day, so
  neither table may keep these for ever. A hold with an order, or with any other payment (the
  gateway failed, or a charge was refunded: money may have moved), is kept with that record.
* an outbox message that was sent and that nothing lists (no ``ref``: an integration event
  already handed on): ``outbox_kept`` after it was sent. It was delivered, and its change
  enqueued it once, so its dedupe key has nothing left to guard.

An order's e-mails and a webhook's deliveries (outbox rows with a ``ref``) are kept: the order
desk and the webhook's delivery log show them for as long as the order or the webhook exists,
and they grow with paid orders and registered webhooks, not with what a client merely asks for.
Unsent messages are kept whatever their age (they are retried until they go), except a sign-in
e-mail, which goes with its request. The ``.eml`` files of the embedded mail mode are the mail
itself, never touched here.

A sweep deletes in batches of at most ``batch`` rows, each in a transaction of its own, ordered by
an indexed time column, so a backlog never holds long locks on MariaDB; with nothing to delete it
costs one index probe per table. Deletes are idempotent: several nodes may sweep at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, delete, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.clock import utcnow
from booking.customers import sign_in_dedupe_key
from booking.schema import holds, idempotency_keys, outbox, payments, sign_ins
from booking.transactions import in_transaction

log = logging.getLogger(__name__)

#: The most rows one ``DELETE`` of a sweep removes.
BATCH = 1000
#: The statuses of a hold that ended without becoming an order.
ENDED_WITHOUT_ORDER = ("released", "expired")


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    #: How long a checkout's ``Idempotency-Key`` replays its first answer.
    idempotency_ttl: timedelta = timedelta(hours=24)
    #: How long a sign-in request (and its e-mail) is kept after it expired.
    sign_in_kept: timedelta = timedelta(days=1)
    #: How long a sent outbox message that nothing lists is kept.
    outbox_kept: timedelta = timedelta(days=7)
    #: How long a hold that ended without an order (and its declined payments) is kept after it
    #: lapsed.
    holds_kept: timedelta = timedelta(days=7)
    batch: int = BATCH


@dataclass(frozen=True, slots=True)
class Swept:
    """How many rows one sweep deleted, by table."""

    idempotency_keys: int = 0
    sign_ins: int = 0
    outbox: int = 0
    payments: int = 0
    holds: int = 0

    @property
    def total(self) -> int:
        return self.idempotency_keys + self.sign_ins + self.outbox + self.payments + self.holds


class Retention:
    """Forgetting what is of no more use (module docstring); :meth:`sweep` runs periodically."""

    def __init__(self, engine: AsyncEngine, policy: RetentionPolicy | None = None) -> None:
        self.engine = engine
        self.policy = policy or RetentionPolicy()

    async def sweep(self, now: datetime | None = None) -> Swept:
        """Delete what every rule lets go as of ``now`` (default: now)."""
        now = now or utcnow()
        swept = Swept(
            idempotency_keys=await self.forget_idempotency_keys(now),
            sign_ins=await self.forget_sign_ins(now),
            outbox=await self.forget_sent_messages(now),
            # Before the holds: a hold whose declined attempts go is then named by nothing.
            payments=await self.forget_declined_payments(now),
            holds=await self.forget_holds(now),
        )
        if swept.total:
            log.info(
                "retention: deleted %d idempotency keys, %d sign-in requests, %d sent messages, "
                "%d declined payments, %d holds",
                swept.idempotency_keys, swept.sign_ins, swept.outbox, swept.payments, swept.holds,
            )  # fmt: skip
        return swept

    async def forget_idempotency_keys(self, now: datetime) -> int:
        """Keys first used more than the TTL before ``now`` (done, or abandoned in progress)."""
        cutoff = now - self.policy.idempotency_ttl
        return await self._delete_before(idempotency_keys, idempotency_keys.c.created_at, cutoff)

    async def forget_sent_messages(self, now: datetime) -> int:
        """Outbox messages sent longer ago than the retention that nothing lists (no ``ref``)."""
        cutoff = now - self.policy.outbox_kept
        return await self._delete_before(outbox, outbox.c.sent_at, cutoff, outbox.c.ref.is_(None))

    async def forget_declined_payments(self, now: datetime) -> int:
        """Declined attempts older than the hold retention on holds that ended without an order
        (an attempt declined before a card that paid stays with the order's hold)."""
        cutoff = now - self.policy.holds_kept
        on_ended_hold = exists().where(
            holds.c.id == payments.c.hold_id, holds.c.status.in_(ENDED_WITHOUT_ORDER)
        )
        declined = payments.c.status == "declined"  # the statuses: booking.schema.payments
        return await self._delete_before(
            payments, payments.c.updated_at, cutoff, declined, on_ended_hold
        )

    async def forget_holds(self, now: datetime) -> int:
        """Holds released or expired longer ago than the retention that no payment names (an
        order's hold is ``purchased``, and its payment names it too)."""
        cutoff = now - self.policy.holds_kept
        paid_for = exists().where(payments.c.hold_id == holds.c.id)
        ended = holds.c.status.in_(ENDED_WITHOUT_ORDER)
        return await self._delete_before(holds, holds.c.expires_at, cutoff, ended, ~paid_for)

    async def forget_sign_ins(self, now: datetime) -> int:
        """Sign-in requests expired longer ago than the retention, with their e-mails."""
        cutoff = now - self.policy.sign_in_kept
        batch = self.policy.batch

        async def work(conn: AsyncConnection) -> int:
            oldest = select(sign_ins.c.id).where(sign_ins.c.expires_at < cutoff)
            ids = list(await conn.scalars(oldest.order_by(sign_ins.c.expires_at).limit(batch)))
            if not ids:
                return 0
            keys = [sign_in_dedupe_key(request_id) for request_id in ids]
            await conn.execute(delete(outbox).where(outbox.c.dedupe_key.in_(keys)))
            done = await conn.execute(
                delete(sign_ins).where(sign_ins.c.id.in_(ids), sign_ins.c.expires_at < cutoff)
            )
            return len(ids) if done.rowcount < 0 else int(done.rowcount)

        return await self._in_batches(work)

    async def _delete_before(
        self, table: Table, column: Column[Any], cutoff: datetime, *where: ColumnElement[bool]
    ) -> int:
        """Delete the rows whose ``column`` is before ``cutoff`` (and ``where``), oldest first,
        about :attr:`RetentionPolicy.batch` per transaction: each batch ends at the time of its
        last row (read from the index), so the ``DELETE`` is a range of the index on every
        backend (SQLite has no ``DELETE … LIMIT``, MariaDB no ``LIMIT`` in an ``IN``
        subquery)."""
        batch = self.policy.batch

        async def work(conn: AsyncConnection) -> int:
            edge = await conn.scalar(
                select(column)
                .where(column < cutoff, *where)
                .order_by(column)
                .offset(batch - 1)
                .limit(1)
            )
            upto = column < cutoff if edge is None else column <= edge
            done = await conn.execute(delete(table).where(upto, *where))
            return int(done.rowcount)

        return await self._in_batches(work)

    async def _in_batches(self, work: Callable[[AsyncConnection], Awaitable[int]]) -> int:
        """Run ``work`` (one batch's deletes: how many rows) in a transaction of its own until a
        batch deletes fewer than :attr:`RetentionPolicy.batch` rows; how many in all."""
        deleted = 0
        while True:
            found = await in_transaction(self.engine, work)
            deleted += found
            if found < self.policy.batch:
                return deleted
