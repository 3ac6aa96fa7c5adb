"""Orders after checkout: reading them, cancelling them, verifying their tickets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.checkout import order_body
from booking.clock import utcnow
from booking.errors import HoldNotActive, NotFound
from booking.payments import PaymentProvider
from booking.schema import orders, payments, seats, tickets
from booking.seatmap import AVAILABLE
from booking.tickets import TicketSigner
from booking.transactions import in_transaction


async def get_order(conn: AsyncConnection, order_id: str, user: str | None) -> dict[str, Any]:
    """The order as its owner sees it; ``user=None`` reads any order (admins)."""
    row = (await conn.execute(select(orders).where(orders.c.id == order_id))).first()
    if row is None or (user is not None and row.user_id != user):
        raise NotFound(f"no order {order_id}")
    issued = await conn.execute(
        select(tickets.c.code, tickets.c.seat_id, tickets.c.status)
        .where(tickets.c.order_id == order_id)
        .order_by(tickets.c.seat_id)
    )
    return order_body(
        row.id,
        status=row.status,
        event_id=row.event_id,
        amount_cents=row.amount_cents,
        currency=row.currency,
        created_at=row.created_at,
        issued=[(t.code, t.seat_id, t.status) for t in issued],
    )


async def cancel_order(
    engine: AsyncEngine, provider: PaymentProvider, order_id: str, user: str | None
) -> tuple[dict[str, Any], int, list[tuple[str, str]]]:
    """Cancel a paid order: void its tickets, release its seats, refund its payment.

    The database change commits first (the seats are free again at once); the refund follows
    under the payment's id, which the gateway treats idempotently, and the payment row records
    the outcome.
    """

    async def work(conn: AsyncConnection) -> tuple[int, str, list[str]]:
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
        return row.event_id, row.payment_id, seat_ids

    event_id, payment_id, seat_ids = await in_transaction(engine, work)
    refunded = await provider.refund(payment_id)
    async with engine.begin() as conn:
        await conn.execute(
            update(payments)
            .where(payments.c.id == payment_id)
            .values(status="refunded" if refunded else "charged", updated_at=utcnow())
        )
        body = await get_order(conn, order_id, None)
    return body, event_id, [(s, AVAILABLE) for s in seat_ids]


async def verify_ticket(conn: AsyncConnection, signer: TicketSigner, code: str) -> dict[str, Any]:
    claim = signer.verify(code)
    if claim is None:
        raise NotFound("not a genuine ticket code")
    row = (await conn.execute(select(tickets).where(tickets.c.code == code))).first()
    if row is None:
        raise NotFound("not a genuine ticket code")
    return {
        "code": code,
        "valid": row.status == "valid",
        "status": row.status,
        "event_id": claim.event_id,
        "seat_id": claim.seat_id,
        "order_id": claim.order_id,
    }
