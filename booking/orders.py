"""Orders after checkout: what they are, reading them, cancelling them, verifying their tickets.

Who may see an order: its buyer (the user who paid), a customer signed in with the address the
order was bought for (:class:`Owner`), whoever holds the key of the order's e-mailed link
(:class:`OrderKeys`), and staff. Cancelling is bound by the event's refund policy for buyers,
and audited for staff (:class:`Staff`); its refund is retried until it succeeds
(:mod:`booking.refunds`).

:class:`Order` and :class:`TicketCheck` are domain values; the edges render them (REST bodies,
STOMP replies). An order is stored as rows, and also as data (:meth:`Order.record`) where it must
be replayed exactly as it was first answered (a checkout's idempotency outcome).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking import audit, integration
from booking.audit import Staff
from booking.clock import iso, utcnow
from booking.errors import CancellationRefused, HoldNotActive, NotFound
from booking.hooks import BookingHooks
from booking.inventory import Inventory
from booking.keyring import Keyring, mac, signed_by_any
from booking.outbox import Outbox, enqueue
from booking.refunds import Refunds, open_refund
from booking.schema import events, orders, refunds, seats, tickets
from booking.seatmap import AVAILABLE, SeatChange
from booking.ticket_keys import CodeClaim, TicketCodes
from booking.transactions import in_transaction

#: Outbox kinds of the messages about orders (the server e-mails them).
ORDER_CONFIRMATION = "order_confirmation"
ORDER_CANCELLED = "order_cancelled"


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
    #: Where the confirmation goes (None: bought without an address).
    email: str | None = None
    #: Until when the buyer may cancel (the event's refund policy); None: not at all.
    cancellable_until: datetime | None = None
    #: The refund of a cancelled order: pending | refunded | manual.
    refund: str | None = None

    def require_valid_tickets(self) -> None:
        """Before printing or sending the tickets: a cancelled order's are void (409)."""
        if self.status != "paid":
            raise HoldNotActive(f"order {self.id} is {self.status}: its tickets are void")

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
            "email": self.email,
            "cancellable_until": _iso_or_none(self.cancellable_until),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> Order:
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            event_id=int(data["event_id"]),
            amount_cents=int(data["amount_cents"]),
            currency=str(data["currency"]),
            created_at=_instant(data["created_at"]),
            tickets=tuple(IssuedTicket(str(c), str(s), str(st)) for c, s, st in data["tickets"]),
            email=data.get("email"),
            cancellable_until=(
                _instant(data["cancellable_until"]) if data.get("cancellable_until") else None
            ),
        )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).replace(tzinfo=None)


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def cancellable_until(starts_at: datetime, refund_cutoff_hours: int | None) -> datetime | None:
    """The end of the buyer's right to cancel under an event's refund policy."""
    if refund_cutoff_hours is None:
        return None
    return starts_at - timedelta(hours=refund_cutoff_hours)


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose orders a caller may see: those bought by ``user``, and (a signed-in customer)
    those bought for ``email``."""

    user: str
    email: str | None = None

    def matches(self) -> ColumnElement[bool]:
        if self.email is None:
            return orders.c.user_id == self.user
        return or_(orders.c.user_id == self.user, orders.c.email == self.email)


#: Who reads or changes an order: an owner, a bare user name (an owner without an address), or
#: ``None`` for anyone's order (staff, or a caller holding the order's key).
Reader = Owner | str | None


def _owner(reader: Reader) -> Owner | None:
    return Owner(reader) if isinstance(reader, str) else reader


class OrderKeys:
    """The key in an order's e-mailed link: whoever holds it may see and cancel that order
    (as with the order links of pretix), without signing in.

    The key is a MAC of the order id and the order's ``link_nonce``: an order the desk sent to a
    corrected address gets a new nonce, so the link the mistyped address received stops opening
    it. Without a nonce (every order until then) the key is the MAC of the order id alone.
    """

    def __init__(self, keyring: Keyring) -> None:
        self._keys = keyring.keys("order link v1")

    def key(self, order_id: str, nonce: str | None = None) -> str:
        return _link_key(self._keys[0], order_id, nonce)

    def opens(self, order_id: str, key: str, nonce: str | None = None) -> bool:
        """Whether ``key`` is this order's, under the secret or a previous one."""
        return signed_by_any(self._keys, lambda k: _link_key(k, order_id, nonce).encode(), key)


def _link_key(key: bytes, order_id: str, nonce: str | None) -> str:
    signed = order_id if nonce is None else f"{order_id}|{nonce}"
    return base64.urlsafe_b64encode(mac(key, signed.encode(), 18)).decode()


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


_ORDER_COLUMNS = (
    orders,
    events.c.starts_at,
    events.c.refund_cutoff_hours,
    refunds.c.status.label("refund_status"),
)


def select_orders() -> Select[Any]:
    return select(*_ORDER_COLUMNS).select_from(
        orders.join(events, events.c.id == orders.c.event_id).outerjoin(
            refunds, refunds.c.order_id == orders.c.id
        )
    )


async def _tickets_by_order(
    conn: AsyncConnection, order_ids: list[str]
) -> dict[str, list[IssuedTicket]]:
    found: dict[str, list[IssuedTicket]] = {order_id: [] for order_id in order_ids}
    if not order_ids:
        return found
    issued = await conn.execute(
        select(tickets.c.order_id, tickets.c.code, tickets.c.seat_id, tickets.c.status)
        .join(seats, (seats.c.event_id == tickets.c.event_id)
              & (seats.c.seat_id == tickets.c.seat_id))
        # A replaced ticket is void, and its successor stands in the order in its place.
        .where(tickets.c.order_id.in_(order_ids), tickets.c.replaced_by.is_(None))
        .order_by(seats.c.ordinal, tickets.c.seat_id)  # as the layout has them
    )  # fmt: skip
    for t in issued:
        found[t.order_id].append(IssuedTicket(t.code, t.seat_id, t.status))
    return found


def _order(row: Any, issued: list[IssuedTicket]) -> Order:
    return Order(
        id=row.id,
        status=row.status,
        event_id=row.event_id,
        amount_cents=row.amount_cents,
        currency=row.currency,
        created_at=row.created_at,
        tickets=tuple(issued),
        email=row.email,
        cancellable_until=cancellable_until(row.starts_at, row.refund_cutoff_hours),
        refund=row.refund_status,
    )


async def _order_row(conn: AsyncConnection, order_id: str, reader: Reader) -> Any:
    """The order's row if ``reader`` may see it (``None``: anyone's), else :class:`NotFound`."""
    owner = _owner(reader)
    query = select_orders().where(orders.c.id == order_id)
    if owner is not None:
        query = query.where(owner.matches())
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"no order {order_id}")
    return row


async def get_order(conn: AsyncConnection, order_id: str, reader: Reader) -> Order:
    """The order as its owner sees it; ``reader=None`` reads any order (staff)."""
    row = await _order_row(conn, order_id, reader)
    return _order(row, (await _tickets_by_order(conn, [order_id]))[order_id])


async def list_orders_where(
    conn: AsyncConnection, condition: ColumnElement[bool], limit: int = 200
) -> list[Order]:
    """The orders matching ``condition``, newest first."""
    query = select_orders().where(condition).order_by(orders.c.created_at.desc()).limit(limit)
    found = (await conn.execute(query)).all()
    issued = await _tickets_by_order(conn, [row.id for row in found])
    return [_order(row, issued[row.id]) for row in found]


#: A cancelled order's seats on a sale with a waiting room stay held this long for the queue
#: (were the node to stop before offering them, they free themselves after it).
RETURNING = timedelta(seconds=10)


async def cancel_order(
    conn: AsyncConnection,
    order_id: str,
    reader: Reader,
    staff: Staff | None,
    *,
    keep_queued: bool = False,
) -> tuple[int, list[str], str, str | None]:
    """Cancel a paid order in the caller's transaction: void its tickets, release its seats,
    open its refund, queue the e-mail saying so, and (staff) write the audit entry.

    Returns the event, the freed seats, the refund's id, and (``keep_queued`` on a sale with a
    waiting room) the hold the seats are kept on for the queue: they stay held, on the order's
    own hold, until the caller offers them (:meth:`booking.holds.SeatHolds.offer_returned`).
    The buyer is bound by the event's refund policy; staff are not.
    """
    row = await _order_row(conn, order_id, reader)
    if row.status != "paid":
        raise HoldNotActive(f"order {order_id} is {row.status}")
    now = utcnow()
    if staff is None:
        _check_policy(row, now)
    done = await conn.execute(
        update(orders)
        .where(orders.c.id == order_id, orders.c.status == "paid")
        .values(status="cancelled", cancelled_at=now)
    )
    if done.rowcount != 1:
        raise HoldNotActive(f"order {order_id} is no longer paid")
    seat_rows = await conn.execute(
        select(tickets.c.seat_id).where(tickets.c.order_id == order_id, tickets.c.status == "valid")
    )
    seat_ids = [r.seat_id for r in seat_rows]
    await conn.execute(
        update(tickets)
        .where(tickets.c.order_id == order_id)
        .values(status="void", active_seat_id=None)
    )
    returning = None
    if keep_queued:
        queued = select(events.c.waiting_room).where(events.c.id == row.event_id)
        if (await conn.execute(queued)).scalar_one():
            returning = row.hold_id
    kept = {} if returning is None else {
        "hold_id": returning, "hold_user": row.user_id, "hold_expires_at": now + RETURNING,
    }  # fmt: skip
    await conn.execute(
        update(seats)
        .where(seats.c.event_id == row.event_id, seats.c.order_id == order_id)
        .values(order_id=None, **kept)
    )
    refund_id = await open_refund(conn, row, staff.actor if staff else row.user_id)
    await integration.record(conn, integration.ORDER_CANCELLED, order_id, {
        "order_id": order_id, "event_id": row.event_id, "user_id": row.user_id,
        "seats": seat_ids, "refund_id": refund_id, "amount_cents": row.amount_cents,
        "currency": row.currency, "by_staff": staff is not None,
    })  # fmt: skip
    if row.email:
        await enqueue(conn, ORDER_CANCELLED, {"order_id": order_id, "email": row.email},
                      f"order:{order_id}:cancelled", ref=order_id)  # fmt: skip
    if staff is not None:
        spent = {"seats": seat_ids, "amount_cents": row.amount_cents, "currency": row.currency}
        await audit.record(
            conn, staff.actor, "order.cancel", order_id, reason=staff.reason, details=spent
        )
    return row.event_id, seat_ids, refund_id, returning


def _check_policy(row: Any, now: datetime) -> None:
    until = cancellable_until(row.starts_at, row.refund_cutoff_hours)
    if until is None:
        raise CancellationRefused(
            "this event's tickets cannot be cancelled or refunded; contact the box office"
        )
    if now >= until:
        raise CancellationRefused(
            f"cancellations for this event closed at {iso(until)} "
            f"({row.refund_cutoff_hours} hours before the start); contact the box office",
            cancellable_until=iso(until),
        )


async def check_ticket(conn: AsyncConnection, claim: CodeClaim, code: str) -> TicketCheck:
    """The issued ticket behind ``code``, whose ``claim`` its signature proved."""
    query = select(tickets.c.status, tickets.c.order_id).where(tickets.c.code == code)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound("not a genuine ticket code")
    return TicketCheck(code, row.status, claim.event_id, claim.seat_id, row.order_id)


@dataclass
class OrderDesk:
    """Orders after checkout, as their buyers see them: reading, listing, cancelling, the
    order's link key, verifying tickets."""

    engine: AsyncEngine
    inventory: Inventory
    refunds: Refunds
    outbox: Outbox
    signer: TicketCodes
    keys: OrderKeys
    hooks: BookingHooks = field(default_factory=BookingHooks)
    #: Offers seats that came back to the waiting room's queue (event, hold, count): set, a
    #: cancelled order's seats on a sale with a waiting room go to the next in line first.
    returns: Callable[[int, str, int], Awaitable[int]] | None = None

    async def get(self, order_id: str, reader: Reader) -> Order:
        async with self.engine.connect() as conn:
            return await get_order(conn, order_id, reader)

    async def for_owner(self, owner: Owner) -> list[Order]:
        async with self.engine.connect() as conn:
            return await list_orders_where(conn, owner.matches())

    async def cancel(self, order_id: str, reader: Reader, staff: Staff | None = None) -> Order:
        """Cancel a paid order: the seats are free at once, and its refund is tried at once
        (and retried in the background until it succeeds, if it fails)."""

        async def work(conn: AsyncConnection) -> tuple[int, list[str], str, str | None]:
            return await cancel_order(
                conn, order_id, reader, staff, keep_queued=self.returns is not None
            )

        event_id, freed, refund_id, returning = await in_transaction(self.engine, work)
        if returning is not None and self.returns is not None:
            await self.returns(event_id, returning, len(freed))
        else:
            self.inventory.record(SeatChange(event_id, tuple((s, AVAILABLE) for s in freed)))
        self.hooks.order_cancelled(event_id)
        await self.refunds.attempt(refund_id)
        return await self.get(order_id, None)

    async def link_key(self, order_id: str) -> str:
        """The key of the order's e-mailed link, as it is now (:class:`OrderKeys`)."""
        row = await self._link_row(order_id)
        return self.keys.key(order_id, None if row is None else row.link_nonce)

    async def opened_by(self, order_id: str, key: str) -> bool:
        """Whether ``key`` opens the order: it is the order's current link key."""
        row = await self._link_row(order_id)
        return row is not None and self.keys.opens(order_id, key, row.link_nonce)

    async def _link_row(self, order_id: str) -> Any:
        """The order's ``link_nonce`` (in a row: ``None`` when there is no such order)."""
        async with self.engine.connect() as conn:
            found = await conn.execute(select(orders.c.link_nonce).where(orders.c.id == order_id))
            return found.first()

    async def verify(self, code: str) -> TicketCheck:
        # The signature before the connection: a code naming a key this node does not know
        # reloads the keys from the database, which must not wait behind a connection held
        # here (the embedded SQLite pool has one: every such code froze the node's database
        # for the pool timeout).
        claim = await self.signer.verify(code)
        if claim is None:
            raise NotFound("not a genuine ticket code")
        async with self.engine.connect() as conn:
            return await check_ticket(conn, claim, code)


async def reissue_tickets(conn: AsyncConnection, order_id: str, signer: TicketCodes) -> int:
    """Replace the order's valid tickets with new codes and renew its link key, in the caller's
    transaction (the order desk, sending the order to a corrected address): the old codes are
    void from then on, so tickets e-mailed to a mistyped address no longer let anyone in, and
    the old link opens nothing. An admitted ticket's successor is admitted too (its holder is
    inside). Returns how many tickets were replaced; ``signer`` must be ready.
    """
    await conn.execute(
        update(orders).where(orders.c.id == order_id).values(link_nonce=secrets.token_hex(16))
    )
    # Locked: a door admitting one of them meanwhile must be copied to its successor.
    current = select(tickets).where(tickets.c.order_id == order_id, tickets.c.status == "valid")
    valid = (await conn.execute(current.with_for_update())).all()
    now = utcnow()
    for old in valid:
        code = signer.issue(old.event_id, old.seat_id, order_id)
        await conn.execute(
            update(tickets)
            .where(tickets.c.code == old.code)
            .values(status="void", active_seat_id=None, replaced_by=code)
        )
        await conn.execute(
            insert(tickets).values(
                code=code, order_id=order_id, event_id=old.event_id, seat_id=old.seat_id,
                user_id=old.user_id, active_seat_id=old.seat_id, status="valid", issued_at=now,
                admitted_at=old.admitted_at, admitted_gate=old.admitted_gate,
                rearmed_at=old.rearmed_at,
            )
        )  # fmt: skip
    return len(valid)
