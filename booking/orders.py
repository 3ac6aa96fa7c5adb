"""Orders after checkout: what they are, reading them, cancelling them, verifying their tickets.

:class:`Order` and :class:`TicketCheck` are domain values; the edges render them (REST bodies,
STOMP replies). An order is stored as rows, and also as data (:meth:`Order.record`) where it must
be replayed exactly as it was first answered (a checkout's idempotency outcome).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.clock import iso, utcnow
from booking.errors import HoldNotActive, NotFound
from booking.hooks import BookingHooks, RefundReason
from booking.inventory import Inventory
from booking.payments import PaymentProvider, refund
from booking.schema import orders, payments, seats, tickets
from booking.seatmap import AVAILABLE, SeatChange
from booking.tickets import TicketSigner
from booking.transactions import in_transaction


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    code: str
    seat_id: str
    status: str  # valid | void


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    status: str  # paid | cancelled
    event_id: int
    amount_cents: int
    currency: str
    created_at: datetime
    tickets: tuple[IssuedTicket, ...]

    def record(self) -> dict[str, Any]:
        """This order as data (JSON-ready), as :meth:`restore` reads it back."""
        return {
            "id": self.id,
            "status": self.status,
            "event_id": self.event_id,
            "amount_cents": self.amount_cents,
            "currency": self.currency,
            "created_at": iso(self.created_at),
            "tickets": [[t.code, t.seat_id, t.status] for t in self.tickets],
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Order:
        created = datetime.fromisoformat(str(data["created_at"]).replace("Z", "+00:00"))
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            event_id=int(data["event_id"]),
            amount_cents=int(data["amount_cents"]),
            currency=str(data["currency"]),
            created_at=created.replace(tzinfo=None),
            tickets=tuple(IssuedTicket(str(c), str(s), str(st)) for c, s, st in data["tickets"]),
        )


@dataclass(frozen=True, slots=True)
class TicketCheck:
    """What verifying a ticket code found: genuine, and whether it is still valid."""

    code: str
    status: str  # valid | void
    event_id: int
    seat_id: str
    order_id: str

    @property
    def valid(self) -> bool:
        return self.status == "valid"


async def get_order(conn: AsyncConnection, order_id: str, user: str | None) -> Order:
    """The order as its owner sees it; ``user=None`` reads any order (admins)."""
    row = (await conn.execute(select(orders).where(orders.c.id == order_id))).first()
    if row is None or (user is not None and row.user_id != user):
        raise NotFound(f"no order {order_id}")
    issued = await conn.execute(
        select(tickets.c.code, tickets.c.seat_id, tickets.c.status)
        .where(tickets.c.order_id == order_id)
        .order_by(tickets.c.seat_id)
    )
    return Order(
        id=row.id,
        status=row.status,
        event_id=row.event_id,
        amount_cents=row.amount_cents,
        currency=row.currency,
        created_at=row.created_at,
        tickets=tuple(IssuedTicket(t.code, t.seat_id, t.status) for t in issued),
    )


async def cancel_order(
    engine: AsyncEngine,
    provider: PaymentProvider,
    order_id: str,
    user: str | None,
    hooks: BookingHooks | None = None,
) -> tuple[Order, list[str]]:
    """Cancel a paid order: void its tickets, release its seats, refund its payment.

    The database change commits first (the seats are free again at once); the refund follows
    under the payment's id, which the gateway treats idempotently, and the payment row records
    the outcome. Returns the cancelled order and the seats it freed.
    """

    async def work(conn: AsyncConnection) -> tuple[str, list[str]]:
        row = (await conn.execute(select(orders).where(orders.c.id == order_id))).first()
        if row is None or (user is not None and row.user_id != user):
            raise NotFound(f"no order {order_id}")
        done = await conn.execute(
            update(orders)
            .where(orders.c.id == order_id, orders.c.status == "paid")
            .values(status="cancelled", cancelled_at=utcnow())
        )
        if done.rowcount != 1:
            raise HoldNotActive(f"order {order_id} is {row.status}")
        seat_rows = await conn.execute(
            select(tickets.c.seat_id).where(
                tickets.c.order_id == order_id, tickets.c.status == "valid"
            )
        )
        seat_ids = [r.seat_id for r in seat_rows]
        await conn.execute(
            update(tickets)
            .where(tickets.c.order_id == order_id)
            .values(status="void", active_seat_id=None)
        )
        await conn.execute(
            update(seats)
            .where(seats.c.event_id == row.event_id, seats.c.order_id == order_id)
            .values(order_id=None)
        )
        return row.payment_id, seat_ids

    payment_id, seat_ids = await in_transaction(engine, work)
    refunded = await refund(
        provider, payment_id, RefundReason.ORDER_CANCELLED, hooks or BookingHooks()
    )
    async with engine.begin() as conn:
        await conn.execute(
            update(payments)
            .where(payments.c.id == payment_id)
            .values(status="refunded" if refunded else "charged", updated_at=utcnow())
        )
        order = await get_order(conn, order_id, None)
    return order, seat_ids


async def verify_ticket(conn: AsyncConnection, signer: TicketSigner, code: str) -> TicketCheck:
    claim = signer.verify(code)
    if claim is None:
        raise NotFound("not a genuine ticket code")
    row = (await conn.execute(select(tickets.c.status).where(tickets.c.code == code))).first()
    if row is None:
        raise NotFound("not a genuine ticket code")
    return TicketCheck(code, row.status, claim.event_id, claim.seat_id, claim.order_id)


@dataclass
class OrderDesk:
    """Reading and cancelling orders, verifying tickets."""

    engine: AsyncEngine
    inventory: Inventory
    provider: PaymentProvider
    signer: TicketSigner
    hooks: BookingHooks = field(default_factory=BookingHooks)

    async def get(self, order_id: str, user: str | None) -> Order:
        async with self.engine.connect() as conn:
            return await get_order(conn, order_id, user)

    async def cancel(self, order_id: str, user: str | None) -> Order:
        order, freed = await cancel_order(self.engine, self.provider, order_id, user, self.hooks)
        self.inventory.record(SeatChange(order.event_id, tuple((s, AVAILABLE) for s in freed)))
        self.hooks.order_cancelled(order.event_id)
        return order

    async def verify(self, code: str) -> TicketCheck:
        async with self.engine.connect() as conn:
            return await verify_ticket(conn, self.signer, code)
