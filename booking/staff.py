"""The box office's order desk: what staff do with orders, each action audited.

Staff find orders (by e-mail, order id, ticket code or seat), read an order's whole file
(payments, refund, e-mail deliveries, what staff did to it), cancel it whatever the refund
policy says, resend its confirmation (to a corrected address if need be), and take a refund that
keeps failing out of the gateway's hands. Every action names its actor and reason and is written
to the audit log in the transaction that makes the change (:mod:`booking.audit`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking import audit
from booking.audit import AuditEntry, Staff
from booking.customers import normalize_email
from booking.errors import InvalidRequest
from booking.orders import (
    ORDER_CONFIRMATION,
    Order,
    OrderDesk,
    get_order,
    list_orders_where,
    reissue_tickets,
)
from booking.outbox import Delivery, Outbox, enqueue
from booking.refunds import Refund, Refunds, refund_of
from booking.schema import orders, payments, tickets
from booking.transactions import in_transaction


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    id: str
    status: str
    amount_cents: int
    currency: str
    provider: str
    created_at: datetime
    updated_at: datetime


_PAYMENT = tuple(PaymentRecord.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class OrderFile:
    """Everything the record says about one order."""

    order: Order
    user_id: str
    payments: list[PaymentRecord]
    refund: Refund | None
    deliveries: list[Delivery]
    audit: list[AuditEntry]


@dataclass
class BoxOffice:
    engine: AsyncEngine
    orders: OrderDesk
    refunds: Refunds
    outbox: Outbox

    async def search(self, query: str, event_id: int | None = None, limit: int = 50) -> list[Order]:
        """Orders whose id, address, ticket code or seat (in ``event_id``, if given) is
        ``query``, newest first."""
        query = query.strip()
        if not query:
            raise InvalidRequest("say what to search for")
        by_ticket = select(tickets.c.order_id).where(
            or_(tickets.c.code == query, tickets.c.seat_id == query.upper())
        )
        if event_id is not None:
            by_ticket = by_ticket.where(tickets.c.event_id == event_id)
        matches = or_(
            orders.c.id == query, orders.c.email == query.lower(), orders.c.id.in_(by_ticket)
        )
        async with self.engine.connect() as conn:
            return await list_orders_where(conn, matches, limit)

    async def file(self, order_id: str) -> OrderFile:
        async with self.engine.connect() as conn:
            order = await get_order(conn, order_id, None)
            user_id = await conn.scalar(select(orders.c.user_id).where(orders.c.id == order_id))
            paid = await conn.execute(
                select(payments)
                .where(payments.c.order_id == order_id)
                .order_by(payments.c.created_at)
            )
            records = [PaymentRecord(**{f: getattr(p, f) for f in _PAYMENT}) for p in paid]
            refund = await refund_of(conn, order_id)
            done = await audit.entries(conn, target=order_id)
        return OrderFile(
            order=order,
            user_id=str(user_id),
            payments=records,
            refund=refund,
            deliveries=await self.outbox.deliveries(order_id),
            audit=done,
        )

    async def cancel(self, order_id: str, staff: Staff) -> Order:
        """Cancel and refund, whatever the event's refund policy says."""
        return await self.orders.cancel(order_id, None, staff)

    async def resend_confirmation(
        self, order_id: str, staff: Staff, email: str | None = None
    ) -> Order:
        """Queue the order's confirmation again, to ``email`` (which becomes the order's
        address) or to the address it has.

        A corrected address replaces one the order had: the old address holds the order's link
        and its tickets, so the tickets are reissued under new codes (the old ones are void) and
        the link key is renewed (:func:`~booking.orders.reissue_tickets`); what was queued for
        the old address and is still unsent is not sent (the mail sender skips it). The
        confirmation to the new address carries the new tickets and link.
        """
        await self.orders.signer.ready()  # the signing key, loaded outside the transaction

        async def work(conn: AsyncConnection) -> None:
            order = await get_order(conn, order_id, None)
            order.require_valid_tickets()  # a cancelled order's tickets are not sent as valid ones
            to = order.email if email is None else normalize_email(email)
            if to is None:
                raise InvalidRequest("the order has no e-mail address: give one")
            details: dict[str, Any] = {"email": to}
            if to != order.email:
                await conn.execute(update(orders).where(orders.c.id == order_id).values(email=to))
                details["previous_email"] = order.email
                if order.email is not None:
                    replaced = await reissue_tickets(conn, order_id, self.orders.signer)
                    details["tickets_reissued"] = replaced
            again = f"order:{order_id}:resend:{secrets.token_hex(8)}"
            payload = {"order_id": order_id, "email": to}
            await enqueue(conn, ORDER_CONFIRMATION, payload, again, ref=order_id)
            await audit.record(
                conn, staff.actor, "order.resend", order_id, reason=staff.reason, details=details
            )

        await in_transaction(self.engine, work)
        return await self.orders.get(order_id, None)

    async def refund_manually(self, order_id: str, staff: Staff) -> Refund:
        """Stop retrying the order's refund: staff settle it outside the gateway."""

        async def work(conn: AsyncConnection) -> Refund:
            refund = await self.refunds.take_over(conn, order_id)
            tried = {"refund_id": refund.id, "attempts": refund.attempts,
                     "last_error": refund.last_error}  # fmt: skip
            await audit.record(
                conn, staff.actor, "refund.manual", order_id, reason=staff.reason, details=tried
            )
            return refund

        return await in_transaction(self.engine, work)

    async def note(self, staff: Staff, action: str, target: str, details: dict[str, Any]) -> None:
        """Record a staff action that changes nothing here (an announcement pushed to buyers),
        before the caller carries it out: should the record fail, the action is not taken, so
        the log never misses one."""

        async def work(conn: AsyncConnection) -> None:
            await audit.record(
                conn, staff.actor, action, target, reason=staff.reason, details=details
            )

        await in_transaction(self.engine, work)

    async def audit_log(self, target: str | None = None, limit: int = 100) -> list[AuditEntry]:
        async with self.engine.connect() as conn:
            return await audit.entries(conn, target, limit)
