"""Checkout: reservation → payment → issuance, atomic as SPEC §5 requires.

1. The ``Idempotency-Key`` is claimed (user, key, request hash). A replay gets the stored outcome;
   the same key with another request → :class:`IdempotencyMismatch`; a duplicate arriving while
   the first is still running → :class:`RequestInProgress`, so only one of them ever pays.
2. The hold is checked (active, unexpired, this user's) and *claimed* for this checkout (a
   conditional ``UPDATE`` of its ``checkout_until``), with a ``pending`` payment recorded in the
   same transaction *before* the gateway is called: whatever happens next, the payment id is on
   record, and a concurrent checkout of the same hold under another key is refused
   (:class:`CheckoutInProgress`, not stored with its key) instead of charging the card a second
   time. A decline or a failure gives the claim back; a crash leaves it to lapse with the grace
   payment recovery waits for.
3. The gateway charges under that payment id, with a timeout. A decline leaves no order and no
   charge. An error or a timeout may have charged, so the charge is refunded (voided) at once.
4. One transaction converts the hold (only if still active and unexpired), marks the seats sold
   (only if still this hold's), inserts the order, its tickets (a unique index forbids a second
   valid ticket for a seat), and the payment's new status. If it fails, the charge is refunded.
5. A crash between 3 and 4 leaves a ``pending`` payment: :func:`recover_payments` refunds it.
   Step 4 commits only a payment still ``pending`` and recovery first moves it to ``refunding``,
   so a slow commit and a recovery never both win.
6. The order's transaction also stores the key's outcome: a node that dies after that commit
   but before it answered leaves the key ``done``, and the client's retry with the same key
   gets the order. (A key abandoned ``in_progress`` by a node that died earlier is taken over;
   if its hold has an order of this user by then, that order is the answer.)

Outcomes (the order, or the domain error) are stored with the key as domain data and replayed as
they were; the edges render them, so a response body can change without breaking stored replays.
A successful checkout records the sold seats with the inventory and uses up the buyer's admission.
Every request ends in one :class:`~booking.hooks.CheckoutOutcome`, told to the hooks; every call
to the provider is timed, every refund reported with its reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking import integration
from booking.admissions import Admissions
from booking.clock import utcnow
from booking.customers import normalize_email
from booking.errors import (
    BookingError,
    CheckoutInProgress,
    HoldLost,
    HoldNotActive,
    IdempotencyMismatch,
    PaymentDeclined,
    PaymentFailed,
    PaymentTimedOut,
    RequestInProgress,
    Unavailable,
)
from booking.holds import Hold, find_hold, new_id
from booking.hooks import BookingHooks, CheckoutOutcome, PaymentCall, RefundReason
from booking.inventory import Inventory
from booking.orders import ORDER_CONFIRMATION, IssuedTicket, Order, cancellable_until, get_order
from booking.outbox import Outbox, enqueue
from booking.payments import ChargeOutcome, GatewayError, PaymentProvider, refund
from booking.schema import holds, idempotency_keys, orders, payments, seats, tickets
from booking.seatmap import SOLD, SeatChange
from booking.ticket_keys import TicketCodes
from booking.transactions import in_transaction

log = logging.getLogger(__name__)

#: An in-progress key older than this is taken as abandoned (its node died mid-request).
ABANDONED_AFTER = timedelta(minutes=2)

# Checkout's statements, built once (building them, and their cache keys, on every call costs
# more CPU than running them). Bind names in an UPDATE may not be column names: b_/new_.
_INSERT_KEY = insert(idempotency_keys)
_STORE_OUTCOME = (
    update(idempotency_keys)
    .where(idempotency_keys.c.user_id == bindparam("b_user"),
           idempotency_keys.c.key == bindparam("b_key"))
    .values(status="done", response_status=None, response_body=bindparam("body"))
)  # fmt: skip
#: Claims the user's active, unexpired hold for this checkout (no other checkout under way).
_CLAIM_HOLD = (
    update(holds)
    .where(
        holds.c.id == bindparam("b_hold"), holds.c.user_id == bindparam("b_user"),
        holds.c.status == "active", holds.c.expires_at > bindparam("b_now"),
        or_(holds.c.checkout_until.is_(None), holds.c.checkout_until <= bindparam("b_now")),
    )
    .values(checkout_until=bindparam("new_until"))
)  # fmt: skip
_INSERT_PAYMENT = insert(payments)
_CONVERT_HOLD = (
    update(holds)
    .where(holds.c.id == bindparam("b_hold"), holds.c.status == "active",
           holds.c.expires_at > bindparam("b_now"))
    .values(status="purchased")
)  # fmt: skip
_SELL_SEATS = (
    update(seats)
    .where(seats.c.hold_id == bindparam("b_hold"), seats.c.order_id.is_(None))
    .values(order_id=bindparam("new_order"), hold_id=None, hold_user=None, hold_expires_at=None)
)
_INSERT_ORDER = insert(orders)
_INSERT_TICKETS = insert(tickets)
_PAYMENT_CHARGED = (
    update(payments)
    .where(payments.c.id == bindparam("b_payment"), payments.c.status == "pending")
    .values(status="charged", order_id=bindparam("new_order"), updated_at=bindparam("b_now"))
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a checkout answered: the paid ``order``, or the domain ``error``."""

    order: Order | None
    error: BookingError | None = None
    #: The stored outcome of an earlier request with the same key.
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.order is not None

    def record(self) -> str:
        """The outcome as stored with its idempotency key (domain data, not a response)."""
        if self.order is not None:
            return json.dumps({"order": self.order.record()})
        assert self.error is not None
        return json.dumps({"error": self.error.record()})

    @classmethod
    def restore(cls, text: str) -> Outcome:
        data = json.loads(text)
        if "order" in data:
            return cls(Order.restore(data["order"]), replayed=True)
        return cls(None, BookingError.restore(data["error"]), replayed=True)


def request_hash(hold_id: str, payment: dict[str, Any], email: str | None = None) -> str:
    wanted: dict[str, Any] = {"hold": hold_id, "payment": payment}
    if email is not None:  # (so keys stored before e-mail existed still match their requests)
        wanted["email"] = email
    canonical = json.dumps(wanted, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Checkout:
    engine: AsyncEngine
    provider: PaymentProvider
    signer: TicketCodes
    inventory: Inventory
    admissions: Admissions
    hooks: BookingHooks
    outbox: Outbox
    payment_timeout_s: float = 10.0

    async def run(
        self,
        *,
        user: str,
        hold_id: str,
        key: str,
        payment: dict[str, Any],
        email: str | None = None,
    ) -> Outcome:
        """Pay for a hold; with ``email``, the order's confirmation (tickets, PDF, link) is
        queued in the outbox in the order's own transaction."""
        try:
            outcome = await self._run(user, hold_id, key, payment, email)
        except Exception as error:
            self.hooks.checkout_ended(CheckoutOutcome.of(error))
            raise
        if outcome.replayed:
            self.hooks.checkout_ended(CheckoutOutcome.REPLAYED)
        elif outcome.error is not None:
            self.hooks.checkout_ended(CheckoutOutcome.of(outcome.error))
        else:
            self.hooks.checkout_ended(CheckoutOutcome.PAID)
        return outcome

    async def _run(
        self, user: str, hold_id: str, key: str, payment: dict[str, Any], email: str | None
    ) -> Outcome:
        if email is not None:
            email = normalize_email(email)
        digest = request_hash(hold_id, payment, email)
        started = await self._start(user, hold_id, key, digest)
        if isinstance(started, Outcome):
            return started  # a replay, or a refusal stored with the key
        hold, payment_id = started
        try:
            outcome = await self._pay(hold, payment_id, payment, email, key)
        except BaseException:
            await self._forget_key(user, key)  # an internal fault: let the client retry
            raise
        if outcome.order is not None:  # (every outcome is stored with the key by now)
            self.hooks.order_committed(outcome.order.id)
            await self._sold(outcome.order, user)
        return outcome

    async def _sold(self, order: Order, user: str) -> None:
        self.inventory.record(
            SeatChange(order.event_id, tuple((t.seat_id, SOLD) for t in order.tickets))
        )
        # A purchase uses the admission up: make room for the next in line. Best effort: the
        # order is committed, and an admission left unmarked expires by itself.
        try:
            await self.admissions.complete(order.event_id, user)
        except Unavailable:
            log.warning("could not mark %s's admission used: the waiting room is unavailable", user)
        except Exception:
            log.warning("could not mark %s's admission used", user, exc_info=True)

    @property
    def grace(self) -> timedelta:
        """Longer than any checkout's gateway calls may take (its charge and its refund)."""
        return timedelta(seconds=2 * self.payment_timeout_s + 1)

    async def recover(self) -> int:
        """Refund charges abandoned by a crash (at start-up and every 30 s)."""
        return await recover_payments(self.engine, self.provider, self.grace, self.hooks)

    # -- the key, the hold and the pending payment ------------------------------------------

    async def _start(
        self, user: str, hold_id: str, key: str, digest: str
    ) -> Outcome | tuple[Hold, str]:
        """Steps 1 and 2 in one transaction: claim the key, claim the hold, record the
        ``pending`` payment; returns the hold and the payment id, or the outcome to answer (a
        replay, or a refusal stored with the key). A key already on record is looked at in a
        transaction of its own (:meth:`_existing_key`)."""
        fresh = True
        for _ in range(3):
            try:
                return await in_transaction(
                    self.engine, partial(self._open, user, hold_id, key, digest, fresh=fresh)
                )
            except IntegrityError:
                if not fresh:
                    raise
            except BaseException:
                if not fresh:
                    # A key taken over and no payment under way: not an answer to keep.
                    await self._forget_key(user, key)
                raise
            found = await self._existing_key(user, key, digest, hold_id)
            if isinstance(found, Outcome):
                return found
            fresh = not found
        raise RequestInProgress("a request with this Idempotency-Key is in progress")

    async def _open(
        self, user: str, hold_id: str, key: str, digest: str, conn: AsyncConnection, *, fresh: bool
    ) -> Outcome | tuple[Hold, str]:
        """Claim the key, then the hold. A refusal is stored with the key like any outcome, also
        "no such hold of yours" (a hold unknown or another user's), as Stripe stores a 404 of a
        request that started executing: the key is bound to its request from then on, so a
        replay is flagged ``Idempotent-Replayed`` and the same key with another body is a 422
        whatever the hold was. (Only a concurrent checkout of the hold, which will have an
        answer, is not stored.) What bounds these rows is their TTL (:mod:`booking.retention`)
        and the REST rate limits, not who owns the hold."""
        now = utcnow()
        if fresh:  # (a key on record already: IntegrityError, and nothing of this is kept)
            await conn.execute(
                _INSERT_KEY,
                {"user_id": user, "key": key, "request_hash": digest, "status": "in_progress",
                 "created_at": now},
            )  # fmt: skip
        claimed = await conn.execute(
            _CLAIM_HOLD,
            {"b_hold": hold_id, "b_user": user, "b_now": now, "new_until": now + self.grace},
        )
        # Read after the claim: the transaction's snapshot then sees its own claim, and a hold
        # it could not claim as it is now.
        hold = await find_hold(conn, hold_id)
        if claimed.rowcount != 1:
            if hold is None or hold.user_id != user:
                error: BookingError = HoldNotActive("no such hold of yours")
            elif hold.status == "active" and hold.expires_at > now:
                # Not an answer to keep with the key: the hold will have one.
                raise CheckoutInProgress(
                    "another checkout of this hold is in progress; nothing was charged"
                )
            else:
                error = HoldNotActive(f"the hold is {_hold_state(hold, now)}")
            outcome = Outcome(None, error)
            await conn.execute(
                _STORE_OUTCOME, {"b_user": user, "b_key": key, "body": outcome.record()}
            )
            return outcome
        assert hold is not None
        payment_id = new_id("pay")
        await conn.execute(
            _INSERT_PAYMENT,
            {"id": payment_id, "user_id": user, "hold_id": hold.id,
             "amount_cents": hold.amount_cents, "currency": hold.currency,
             "provider": self.provider.name, "status": "pending", "created_at": now,
             "updated_at": now},
        )  # fmt: skip
        return hold, payment_id

    async def _existing_key(self, user: str, key: str, digest: str, hold_id: str) -> Outcome | bool:
        """A key on record: its stored outcome (a replay); ``True`` if it was abandoned and
        is now this request's; ``False`` if it is gone (its request failed), to claim afresh."""
        now = utcnow()
        async with self.engine.begin() as conn:
            where = (idempotency_keys.c.user_id == user, idempotency_keys.c.key == key)
            row = (await conn.execute(select(idempotency_keys).where(*where))).first()
            if row is None:
                return False  # deleted meanwhile (its request failed): claim it afresh
            if row.request_hash != digest:
                raise IdempotencyMismatch("this Idempotency-Key was used with a different request")
            if row.status == "done":
                return Outcome.restore(row.response_body)
            if now - row.created_at < ABANDONED_AFTER:
                raise RequestInProgress("a request with this Idempotency-Key is in progress")
            # Abandoned by a node that died mid-request: take it over. Had its order
            # committed, that order is the answer (and is stored as the key's outcome).
            found = await conn.execute(
                select(orders.c.id).where(orders.c.hold_id == hold_id, orders.c.user_id == user)
            )
            order_id = found.scalar_one_or_none()
            if order_id is not None:
                order = await get_order(conn, order_id, None)
                await conn.execute(
                    update(idempotency_keys)
                    .where(*where)
                    .values(status="done", response_body=Outcome(order).record())
                )
                return Outcome(order, replayed=True)
            await conn.execute(update(idempotency_keys).where(*where).values(created_at=now))
            return True

    async def _forget_key(self, user: str, key: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.user_id == user, idempotency_keys.c.key == key
                )
            )

    # -- payment -----------------------------------------------------------------------------

    async def _pay(
        self, hold: Hold, payment_id: str, payment: dict[str, Any], email: str | None, key: str
    ) -> Outcome:
        """Steps 3 and 4: charge, then issue. A payment that made no order is settled with the
        outcome stored under its key in one transaction (:meth:`_settle`)."""
        try:
            result = await self._charge(payment_id, hold, str(payment.get("token", "")))
        except (GatewayError, TimeoutError) as exc:
            await refund(self.provider, payment_id, RefundReason.PAYMENT_ERROR, self.hooks)
            if isinstance(exc, TimeoutError):
                error: BookingError = PaymentTimedOut(
                    "the payment gateway did not answer in time; anything it charged is refunded"
                )
            else:
                error = PaymentFailed("the payment gateway failed; anything it charged is refunded")
            return await self._settle(payment_id, "failed", hold, key, error)
        if result is ChargeOutcome.DECLINED:
            declined = PaymentDeclined("the payment was declined")
            return await self._settle(payment_id, "declined", hold, key, declined)
        self.hooks.charged(payment_id)
        try:
            return Outcome(await self._issue(hold, payment_id, email, key))
        except BaseException as exc:
            refunded = await refund(
                self.provider, payment_id, RefundReason.NOT_COMMITTED, self.hooks
            )
            status = "refunded" if refunded else "failed"
            if isinstance(exc, BookingError):
                return await self._settle(payment_id, status, hold, key, exc)
            await self._settle(payment_id, status, hold, None, None)
            raise

    async def _charge(self, payment_id: str, hold: Hold, token: str) -> ChargeOutcome:
        """The provider's charge under ``payment_id``, bounded by the payment timeout, timed."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.payment_timeout_s):
                return await self.provider.charge(
                    payment_id=payment_id,
                    amount_cents=hold.amount_cents,
                    currency=hold.currency,
                    token=token,
                )
        finally:
            self.hooks.payment_called(PaymentCall.CHARGE, time.perf_counter() - started)

    async def _settle(
        self,
        payment_id: str,
        status: str,
        hold: Hold,
        key: str | None,
        error: BookingError | None,
    ) -> Outcome:
        """Record how a payment that made no order ended, give its hold's claim back, and store
        the request's outcome (``error``) with its ``key``: one transaction."""
        outcome = Outcome(None, error)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(payments)
                .where(payments.c.id == payment_id)
                .values(status=status, updated_at=utcnow())
            )
            await conn.execute(
                update(holds)
                .where(holds.c.id == hold.id, holds.c.status == "active")
                .values(checkout_until=None)
            )
            if key is not None:
                await conn.execute(
                    _STORE_OUTCOME, {"b_user": hold.user_id, "b_key": key,
                                     "body": outcome.record()}
                )  # fmt: skip
        return outcome

    async def _issue(self, hold: Hold, payment_id: str, email: str | None, key: str) -> Order:
        order_id = new_id("ord")
        await self.signer.ready()  # the signing key, loaded (or made) outside the transaction
        event = await self.inventory.event(hold.event_id)

        async def work(conn: AsyncConnection) -> Order:
            now = utcnow()
            converted = await conn.execute(_CONVERT_HOLD, {"b_hold": hold.id, "b_now": now})
            if converted.rowcount != 1:
                raise HoldLost("the hold expired while paying; the charge was refunded")
            sold = await conn.execute(_SELL_SEATS, {"b_hold": hold.id, "new_order": order_id})
            if sold.rowcount != len(hold.seat_ids):
                raise HoldLost("the hold lost its seats; the charge was refunded")
            await conn.execute(
                _INSERT_ORDER,
                {"id": order_id, "event_id": hold.event_id, "user_id": hold.user_id,
                 "hold_id": hold.id, "status": "paid", "amount_cents": hold.amount_cents,
                 "currency": hold.currency, "payment_id": payment_id, "created_at": now,
                 "email": email},
            )  # fmt: skip
            if email is not None:
                await enqueue(conn, ORDER_CONFIRMATION, {"order_id": order_id, "email": email},
                              f"order:{order_id}:confirmation", ref=order_id)  # fmt: skip
            issued = [
                {
                    "code": self.signer.issue(hold.event_id, seat_id, order_id),
                    "order_id": order_id,
                    "event_id": hold.event_id,
                    "seat_id": seat_id,
                    "user_id": hold.user_id,
                    "active_seat_id": seat_id,
                    "status": "valid",
                    "issued_at": now,
                }
                for seat_id in hold.seat_ids
            ]
            await conn.execute(_INSERT_TICKETS, issued)
            await integration.record(conn, integration.ORDER_PAID, order_id, {
                "order_id": order_id, "event_id": hold.event_id, "user_id": hold.user_id,
                "hold_id": hold.id, "seats": [t["seat_id"] for t in issued],
                "amount_cents": hold.amount_cents, "currency": hold.currency,
            })  # fmt: skip
            charged = await conn.execute(
                _PAYMENT_CHARGED, {"b_payment": payment_id, "new_order": order_id, "b_now": now}
            )
            if charged.rowcount != 1:
                # Recovery took this payment for abandoned (we were that slow) and refunds it.
                raise PaymentTimedOut("the payment was refunded before the order could commit")
            order = Order(
                id=order_id,
                status="paid",
                event_id=hold.event_id,
                amount_cents=hold.amount_cents,
                currency=hold.currency,
                created_at=now,
                tickets=tuple(IssuedTicket(str(t["code"]), str(t["seat_id"]), "valid")
                              for t in issued),
                email=email,
                cancellable_until=cancellable_until(event.starts_at, event.refund_cutoff_hours),
            )  # fmt: skip
            # The key's outcome commits with the order: a retry after a crash finds it.
            await conn.execute(
                _STORE_OUTCOME,
                {"b_user": hold.user_id, "b_key": key, "body": Outcome(order).record()},
            )
            return order

        return await in_transaction(self.engine, work)


def _hold_state(hold: Hold, now: datetime) -> str:
    if hold.status == "active" and hold.expires_at <= now:
        return "expired"
    return hold.status


async def recover_payments(
    engine: AsyncEngine,
    provider: PaymentProvider,
    older_than: timedelta,
    hooks: BookingHooks | None = None,
) -> int:
    """Refund charges whose order never committed (a crash between charge and commit).

    A payment still ``pending`` well after any gateway call would have timed out has no order
    and never will; whatever the gateway charged under its id is refunded.
    """
    hooks = hooks or BookingHooks()
    cutoff = utcnow() - older_than
    # ``refunding``: a recovery that died between claiming a payment and recording its refund.
    abandoned = (
        payments.c.status.in_(("pending", "refunding")),
        payments.c.updated_at <= cutoff,
    )
    async with engine.connect() as conn:
        stale = (await conn.execute(select(payments.c.id).where(*abandoned))).all()
    recovered = 0
    for (payment_id,) in stale:
        # Claim the payment before refunding it, so that a slow checkout still about to commit
        # its order (which requires ``pending``) and this refund exclude each other.
        async with engine.begin() as conn:
            claimed = await conn.execute(
                update(payments)
                .where(payments.c.id == payment_id, *abandoned)
                .values(status="refunding", updated_at=utcnow())
            )
        if claimed.rowcount != 1:
            continue  # its order committed meanwhile, or another node recovers it
        refunded = await refund(provider, payment_id, RefundReason.RECOVERY, hooks)
        async with engine.begin() as conn:
            await conn.execute(
                update(payments)
                .where(payments.c.id == payment_id, payments.c.status == "refunding")
                .values(status="refunded" if refunded else "failed", updated_at=utcnow())
            )
        recovered += 1
        log.warning("recovered payment %s: %s", payment_id, "refunded" if refunded else "no charge")
    return recovered
