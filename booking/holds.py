"""Seat holds: all-or-nothing, expiring, counted against a per-user limit.

The decision is one conditional ``UPDATE`` (see :mod:`booking.schema`): it claims every requested
seat that is not blocked, not sold, and not held by an unexpired hold, and the hold exists only if
it claimed them all. An expired hold's seats are thereby free the moment it expires, whether or not
the reaper (:func:`reap_expired`) has marked it yet.

The per-user limit (holds plus valid tickets) and the per-client caps on seats held at once
(per client IP and per verified e-mail address, :class:`HoldCaps`) are checked inside the same
transaction, after its seats are claimed and it has locked the holder's rows in ``hold_locks``
(one upsert: user, address, IP, in that order). Two holds by one holder therefore finish one
after the other, and the second counts the first's seats: neither limit can be passed by racing.
Holds of different holders never wait for each other there, and a hold refused for its seats
costs no more than before.

On a sale with a waiting room, seats that come back (a hold lapses or is released, an order is
cancelled) go to the queue first (:meth:`SeatHolds.offer_returned`; lapsed holds through
:meth:`SeatHolds.reap`): the hold is marked expired, the next users in line are admitted, one per
seat, and each gets one of its seats on a hold of their own (shown ``held`` on the seat map until
they buy it or it lapses in turn); seats nobody waits for are freed. So that no shopper admitted
earlier takes them meanwhile, such a lapsed hold keeps its seats for :data:`LAPSE_GRACE` after it
lapses (the reaper runs every second).

Best available (:meth:`SeatHolds.hold_best`) lets the node's seat map propose the block
(:mod:`booking.best_available`) and then decides it exactly like a hold of those seats.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking import integration
from booking.admissions import Admissions, AdmissionSigner
from booking.best_available import BlockRequest, resolve
from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.errors import (
    AdmissionRequired,
    HoldNotActive,
    InvalidRequest,
    LimitExceeded,
    NoBlockLeft,
    NotFound,
    SaleNotOpen,
    SeatsUnavailable,
)
from booking.hooks import BookingHooks, HoldDecision, HoldOutcome
from booking.inventory import Inventory
from booking.schema import events, hold_locks, holds, orders, seats, tickets
from booking.seatmap import AVAILABLE, HELD, SeatChange, SeatMap
from booking.transactions import in_transaction
from booking.waiting_room import Offer

#: On a sale with a waiting room, a lapsed hold's seats stay its own this long after it lapses,
#: so the reaper offers them to the queue before anyone else can take them.
LAPSE_GRACE = timedelta(seconds=5)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    event_id: int
    user_id: str
    seat_ids: list[str]
    amount_cents: int
    currency: str
    status: str
    created_at: datetime
    expires_at: datetime
    #: The order that bought it (a purchased hold, read by :meth:`SeatHolds.get`).
    order_id: str | None = None


_HOLD_FIELDS = tuple(f.name for f in fields(Hold) if f.name != "order_id")


@dataclass(frozen=True, slots=True)
class HoldClient:
    """Who places a hold besides the user, as the edge knows it: the client's IP address and
    the verified e-mail address of a signed-in customer (either may be unknown)."""

    ip: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class HoldCaps:
    """Seats one client may hold at once per event, however many user names it uses: per
    client IP and per verified e-mail address (0: no cap)."""

    per_ip: int = 0
    per_email: int = 0


#: Lock rows untouched for this long are deleted by the reaper (longer than any hold lives).
LOCKS_KEPT = timedelta(hours=2)

#: Best available: how many blocks one request may lose to other nodes' claims before it gives
#: up (with a 409 ``conflict``, not ``no_block``: blocks may be left).
_BEST_ROUNDS = 50


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def validate_request(event: EventInfo, seat_ids: list[str], now: datetime) -> None:
    """Checks that need no database: a public event, known seats, no duplicates, sale open,
    limit."""
    event.public()
    if not seat_ids:
        raise InvalidRequest("no seats requested")
    if len(set(seat_ids)) != len(seat_ids):
        raise InvalidRequest("a seat appears twice in the request")
    unknown = [s for s in seat_ids if s not in event.seats]
    if unknown:
        raise InvalidRequest("unknown seats", unknown=unknown[:20])
    if len(seat_ids) > event.max_seats_per_user:
        raise LimitExceeded(
            f"at most {event.max_seats_per_user} seats per user", limit=event.max_seats_per_user
        )
    if not event.on_sale(now):
        raise SaleNotOpen("this event is not on sale")


# The hold path's statements, built once: constructing SQLAlchemy statements (and their cache
# keys) on every call was a quarter of the hot-sale CPU profile. (Bind names in an UPDATE may not
# be column names, hence the b_/new_ prefixes.)
_CLAIM = (
    update(seats)
    .where(
        seats.c.event_id == bindparam("b_event"),
        seats.c.seat_id.in_(bindparam("b_seats", expanding=True)),
        seats.c.blocked.is_(False),
        seats.c.order_id.is_(None),
        or_(seats.c.hold_id.is_(None), seats.c.hold_expires_at <= bindparam("b_now")),
    )
    .values(
        hold_id=bindparam("new_hold"),
        hold_user=bindparam("new_user"),
        hold_expires_at=bindparam("new_expiry"),
    )
)
_CLAIMED = select(seats.c.seat_id).where(
    seats.c.event_id == bindparam("event_id"), seats.c.hold_id == bindparam("new_hold")
)
_INSERT_HOLD = insert(holds)


def _held(*who: Any) -> Any:
    """Seats held right now (active, unexpired holds) by ``who``, as a scalar subquery."""
    return (
        select(func.coalesce(func.sum(holds.c.seat_count), 0))
        .where(holds.c.event_id == bindparam("event_id"), *who, holds.c.status == "active",
               holds.c.expires_at > bindparam("now"))
        .scalar_subquery()
    )  # fmt: skip


_OWNED_BY_USER = (
    select(func.count())
    .select_from(tickets)
    .where(
        tickets.c.event_id == bindparam("event_id"),
        tickets.c.user_id == bindparam("user"),
        tickets.c.status == "valid",
    )
    .scalar_subquery()
)
#: Everything the limits count, in one statement: the user's seats (held, owned), and while
#: their cap is on the seats held by the client IP and by the e-mail address; by (ip, email).
_COUNTS = {
    (ip, email): select(
        _held(holds.c.user_id == bindparam("user")),
        _OWNED_BY_USER,
        *([_held(holds.c.client_ip == bindparam("ip"))] if ip else []),
        *([_held(holds.c.holder_email == bindparam("email"))] if email else []),
    )
    for ip in (False, True)
    for email in (False, True)
}


async def place_hold(
    engine: AsyncEngine,
    event: EventInfo,
    user: str,
    seat_ids: list[str],
    now: datetime,
    *,
    client: HoldClient = HoldClient(),
    caps: HoldCaps = HoldCaps(),
    delay: float = 0.0,
) -> Hold:
    """Claim ``seat_ids`` for ``user`` in one transaction, all or nothing (the request was
    validated by :meth:`SeatHolds.hold`), within the per-user limit and the client's caps."""
    amount, currency = event.price(seat_ids)
    hold = Hold(
        id=new_id("h"),
        event_id=event.id,
        user_id=user,
        seat_ids=event.in_layout_order(seat_ids),
        amount_cents=amount,
        currency=currency,
        status="active",
        created_at=now,
        expires_at=now + timedelta(seconds=event.hold_ttl_s),
    )

    async def work(conn: AsyncConnection) -> Hold:
        if delay > 0:
            await asyncio.sleep(delay)  # fault injection: a slow database (BookingHooks)
        # The seats first: most refusals in a hot sale are conflicts, decided by this one
        # statement. Then the holder's lock rows, and only then the counts (the first plain
        # read of the transaction, so its snapshot sees every hold the holder committed
        # before the lock was ours).
        claimed = await conn.execute(
            _CLAIM,
            {"b_event": event.id, "b_seats": hold.seat_ids,
             "b_now": now - LAPSE_GRACE if event.waiting_room else now,
             "new_hold": hold.id, "new_user": user, "new_expiry": hold.expires_at},
        )  # fmt: skip
        if claimed.rowcount != len(seat_ids):
            # Name the seats it could not claim from inside this transaction (they are taken:
            # the ids were validated), then roll the partial claim back by raising.
            got = {r.seat_id for r in await conn.execute(
                _CLAIMED, {"event_id": event.id, "new_hold": hold.id})}  # fmt: skip
            conflicts = event.in_layout_order(set(hold.seat_ids) - got)
            raise SeatsUnavailable("some seats are not available", conflicts=conflicts)
        await _lock_holder(conn, event.id, user, client, caps=caps, now=now)
        await _check_limits(conn, event, user, client, caps, wanted=len(seat_ids), now=now)
        await conn.execute(
            _INSERT_HOLD,
            {"id": hold.id, "event_id": event.id, "user_id": user,
             "seat_ids": json.dumps(hold.seat_ids), "seat_count": len(seat_ids),
             "amount_cents": amount, "currency": currency, "status": "active",
             "created_at": now, "expires_at": hold.expires_at, "client_ip": client.ip,
             "holder_email": client.email},
        )  # fmt: skip
        return hold

    return await in_transaction(engine, work)


async def _check_limits(
    conn: AsyncConnection,
    event: EventInfo,
    user: str,
    client: HoldClient,
    caps: HoldCaps,
    *,
    wanted: int,
    now: datetime,
) -> None:
    """Refuse a hold that would take the user past the per-user limit (seats held and owned),
    or the seats held at once by this client IP or this e-mail address (over all their user
    names) past its cap: one read for all of them."""
    by_ip = client.ip is not None and caps.per_ip > 0
    by_email = client.email is not None and caps.per_email > 0
    params = {"event_id": event.id, "user": user, "now": now, "ip": client.ip,
              "email": client.email}  # fmt: skip
    row = (await conn.execute(_COUNTS[by_ip, by_email], params)).one()
    have = int(row[0]) + int(row[1])
    if have + wanted > event.max_seats_per_user:
        raise LimitExceeded(
            f"at most {event.max_seats_per_user} seats per user; you have {have}",
            limit=event.max_seats_per_user,
            have=have,
        )
    held = iter(row[2:])
    checks = (
        (by_ip, caps.per_ip, "client IP address", "client_ip"),
        (by_email, caps.per_email, "e-mail address", "email"),
    )
    for counted, cap, words, scope in checks:
        if not counted:
            continue
        seats_held = int(next(held))
        if seats_held + wanted > cap:
            raise LimitExceeded(
                f"at most {cap} seats of this event held at once per {words}; "
                f"{seats_held} are held already",
                limit=cap,
                have=seats_held,
                scope=scope,
            )


async def _lock_holder(
    conn: AsyncConnection,
    event_id: int,
    user: str,
    client: HoldClient,
    *,
    caps: HoldCaps,
    now: datetime,
) -> None:
    """Lock this holder's rows for the rest of the transaction (created on first use), always
    in the same order, before anything else is read: the counts that follow then see every
    hold of the holder that committed before.

    Only what a limit counts is locked: the user always, the e-mail address and the client
    address only while their cap is on. A lock on an address nobody counts would serialize every
    hold made through one proxy (all of a node's holds behind nginx) for nothing.
    """
    subjects = [f"u:{user}"]
    if client.email is not None and caps.per_email > 0:
        subjects.append(f"e:{client.email}")
    if client.ip is not None and caps.per_ip > 0:
        subjects.append(f"i:{client.ip}")
    params: dict[str, Any] = {"event_id": event_id, "touched_at": now}
    params.update((f"s{i}", s) for i, s in enumerate(subjects))
    await conn.execute(_lock_upsert(conn.dialect.name, len(subjects)), params)


_LOCK_UPSERTS: dict[tuple[str, int], Any] = {}


def _lock_upsert(dialect: str, subjects: int) -> Any:
    """The upsert of ``subjects`` lock rows (bind names ``event_id``, ``touched_at``, ``s0``…),
    built once per dialect and count."""
    found = _LOCK_UPSERTS.get((dialect, subjects))
    if found is not None:
        return found
    rows: list[dict[str, Any]] = [
        {"event_id": bindparam("event_id"), "subject": bindparam(f"s{i}"),
         "touched_at": bindparam("touched_at")}
        for i in range(subjects)
    ]  # fmt: skip
    if dialect == "sqlite":
        lite = sqlite.insert(hold_locks).values(rows)
        upsert: Any = lite.on_conflict_do_update(
            index_elements=["event_id", "subject"], set_={"touched_at": lite.excluded.touched_at}
        )
    else:
        my = mysql.insert(hold_locks).values(rows)
        upsert = my.on_duplicate_key_update(touched_at=my.inserted.touched_at)
    _LOCK_UPSERTS[dialect, subjects] = upsert
    return upsert


def _hold_from_row(row: Row[Any]) -> Hold:
    values = dict(row._mapping)
    values["seat_ids"] = json.loads(values["seat_ids"])
    return Hold(**{name: values[name] for name in _HOLD_FIELDS})


_HOLD_BY_ID = select(holds).where(holds.c.id == bindparam("b_hold"))


async def find_hold(conn: AsyncConnection, hold_id: str) -> Hold | None:
    row = (await conn.execute(_HOLD_BY_ID, {"b_hold": hold_id})).first()
    return None if row is None else _hold_from_row(row)


async def get_hold(conn: AsyncConnection, hold_id: str) -> Hold:
    hold = await find_hold(conn, hold_id)
    if hold is None:
        raise NotFound(f"no hold {hold_id}")
    return hold


async def _free_seats(conn: AsyncConnection, hold_id: str) -> list[str]:
    """Free the seats still this hold's (a lapsed hold's seats may be someone else's now)."""
    freed = await conn.execute(
        select(seats.c.seat_id)
        .where(seats.c.hold_id == hold_id, seats.c.order_id.is_(None))
        .with_for_update()  # a locking read: seats claimed meanwhile are not ours
    )
    seat_ids = [r.seat_id for r in freed]
    if seat_ids:
        await conn.execute(
            update(seats)
            .where(seats.c.hold_id == hold_id, seats.c.order_id.is_(None))
            .values(hold_id=None, hold_user=None, hold_expires_at=None)
        )
    return seat_ids


async def release_hold(
    engine: AsyncEngine, hold_id: str, user: str, *, keep_queued: bool = False
) -> tuple[Hold, list[str] | None]:
    """Release the user's own active hold; returns it and the seats it freed. With
    ``keep_queued``, on a sale with a waiting room the seats stay on the released hold (held,
    so nobody takes them meanwhile) and ``None`` is returned: the caller offers them to the
    queue (:meth:`SeatHolds.offer_returned`), which hands them over or frees them."""

    async def work(conn: AsyncConnection) -> tuple[Hold, list[str] | None]:
        hold = await get_hold(conn, hold_id)
        if hold.user_id != user:
            raise NotFound(f"no hold {hold_id}")  # another's hold: do not confirm it exists
        done = await conn.execute(
            update(holds)
            .where(holds.c.id == hold_id, holds.c.status == "active")
            .values(status="released")
        )
        if done.rowcount != 1:
            raise HoldNotActive(f"hold {hold_id} is {hold.status}")
        if keep_queued:
            queued = select(events.c.waiting_room).where(events.c.id == hold.event_id)
            if (await conn.execute(queued)).scalar_one():
                return hold, None
        return hold, await _free_seats(conn, hold_id)

    return await in_transaction(engine, work)


async def reap_expired(
    engine: AsyncEngine, now: datetime, limit: int = 500
) -> tuple[int, dict[int, list[str]]]:
    """Mark lapsed holds expired and free their seats; returns how many holds it expired and
    the seats it freed per event (a lapsed hold's seats may have been claimed by then)."""

    async def work(conn: AsyncConnection) -> tuple[int, dict[int, list[str]]]:
        rows = (
            await conn.execute(
                select(holds.c.id, holds.c.event_id, holds.c.user_id)
                .where(holds.c.status == "active", holds.c.expires_at <= now)
                .limit(limit)
            )
        ).all()
        expired = 0
        freed: dict[int, list[str]] = {}
        for hold_id, event_id, user_id in rows:
            done = await conn.execute(
                update(holds)
                .where(holds.c.id == hold_id, holds.c.status == "active")
                .values(status="expired")
            )
            if done.rowcount == 1:
                expired += 1
                seat_ids = await _free_seats(conn, hold_id)
                freed.setdefault(event_id, []).extend(seat_ids)
                await integration.record(conn, integration.HOLD_EXPIRED, hold_id, {
                    "hold_id": hold_id, "event_id": event_id, "user_id": user_id,
                    "seats": seat_ids,
                })  # fmt: skip
        if len(rows) < limit:  # not behind: forget lock rows no hold needs any more
            await conn.execute(delete(hold_locks).where(hold_locks.c.touched_at < now - LOCKS_KEPT))
        return expired, freed

    return await in_transaction(engine, work)


_LAPSED = (
    select(holds.c.id, holds.c.event_id, holds.c.seat_count)
    .where(holds.c.status == "active", holds.c.expires_at <= bindparam("now"))
    .limit(500)
)


async def lapse_hold(engine: AsyncEngine, hold_id: str) -> bool:
    """Mark a lapsed hold expired, its seats still its own; ``False`` if another node did.

    It expired like any other, so integrations hear ``hold.expired`` as from
    :func:`reap_expired`; what the queue is offered next is a new hold of its own."""

    async def work(conn: AsyncConnection) -> bool:
        done = await conn.execute(
            update(holds)
            .where(holds.c.id == hold_id, holds.c.status == "active")
            .values(status="expired")
        )
        if done.rowcount != 1:
            return False
        hold = await get_hold(conn, hold_id)
        kept = await conn.execute(
            select(seats.c.seat_id).where(seats.c.hold_id == hold_id, seats.c.order_id.is_(None))
        )
        await integration.record(conn, integration.HOLD_EXPIRED, hold_id, {
            "hold_id": hold_id, "event_id": hold.event_id, "user_id": hold.user_id,
            "seats": [r.seat_id for r in kept],
        })  # fmt: skip
        return True

    return await in_transaction(engine, work)


async def hand_over(
    engine: AsyncEngine, event: EventInfo, hold_id: str, users: list[str], now: datetime
) -> tuple[list[Hold], list[str]]:
    """Put the seats of lapsed hold ``hold_id`` on hold for ``users``, one seat each in layout
    order, and free the seats left over; returns the new holds and the freed seats."""

    async def work(conn: AsyncConnection) -> tuple[list[Hold], list[str]]:
        rows = await conn.execute(
            select(seats.c.seat_id)
            .where(
                seats.c.event_id == event.id,
                seats.c.hold_id == hold_id,
                seats.c.order_id.is_(None),
            )
            .order_by(seats.c.ordinal, seats.c.seat_id)
            .with_for_update()  # a locking read: seats claimed meanwhile are not ours
        )
        seat_ids = [r.seat_id for r in rows]
        given: list[Hold] = []
        for user, seat_id in zip(users, seat_ids, strict=False):
            amount, currency = event.price([seat_id])
            hold = Hold(new_id("h"), event.id, user, [seat_id], amount, currency, "active",
                        now, now + timedelta(seconds=event.hold_ttl_s))  # fmt: skip
            await conn.execute(
                update(seats)
                .where(seats.c.event_id == event.id)
                .where(seats.c.seat_id == seat_id, seats.c.hold_id == hold_id)
                .values(hold_id=hold.id, hold_user=user, hold_expires_at=hold.expires_at)
            )
            await conn.execute(
                _INSERT_HOLD,
                {"id": hold.id, "event_id": event.id, "user_id": user,
                 "seat_ids": json.dumps(hold.seat_ids), "seat_count": 1,
                 "amount_cents": amount, "currency": currency, "status": "active",
                 "created_at": now, "expires_at": hold.expires_at},
            )  # fmt: skip
            given.append(hold)
        rest = seat_ids[len(given) :]
        if rest:
            await conn.execute(
                update(seats)
                .where(seats.c.event_id == event.id)
                .where(seats.c.seat_id.in_(rest), seats.c.hold_id == hold_id)
                .values(hold_id=None, hold_user=None, hold_expires_at=None)
            )
        return given, rest

    return await in_transaction(engine, work)


@dataclass
class SeatHolds:
    """Placing, releasing and expiring holds, with this node's seat maps in front.

    A request for seats this node already knows to be taken is refused from memory; one for seats
    this node is claiming right now waits for that claim's outcome (which decides it more cheaply
    than a round trip doomed to conflict); everything else is decided by :func:`place_hold` in the
    database. Every grant is the database's.
    """

    engine: AsyncEngine
    inventory: Inventory
    admissions: AdmissionSigner
    hooks: BookingHooks
    caps: HoldCaps = HoldCaps()
    #: The waiting rooms, to offer seats that come back to the users in line.
    queue: Admissions | None = None
    #: Seat claims under way on this node, by (event, seat).
    _claims: dict[tuple[int, str], asyncio.Future[None]] = field(default_factory=dict, init=False)

    async def hold(
        self,
        event_id: int,
        user: str,
        seat_ids: list[str],
        admission_token: str | None = None,
        client: HoldClient = HoldClient(),
    ) -> Hold:
        """Hold ``seat_ids`` for ``user``, all or nothing; tells the hooks how it ended."""
        return await self._reported(self._hold(event_id, user, seat_ids, admission_token, client))

    async def _reported(self, request: Awaitable[Hold]) -> Hold:
        """``request``'s hold, telling the hooks how the request ended and how long it took."""
        started = time.perf_counter()
        try:
            hold = await request
        except Exception as error:
            self.hooks.hold_ended(HoldOutcome.of(error), time.perf_counter() - started)
            raise
        self.hooks.hold_ended(HoldOutcome.GRANTED, time.perf_counter() - started)
        return hold

    async def _hold(
        self,
        event_id: int,
        user: str,
        seat_ids: list[str],
        admission_token: str | None,
        client: HoldClient,
    ) -> Hold:
        info, seatmap = await self.inventory.load(event_id)
        now = utcnow()
        validate_request(info, seat_ids, now)
        await self._admitted(info, user, admission_token)
        while True:
            taken = seatmap.unavailable(seat_ids, now)
            if taken:
                # Known taken on this node: answer without a round trip. (The database would
                # say the same; a stale "available" here is harmless, the database decides.)
                self.hooks.hold_decided(HoldDecision.MEMORY)
                raise SeatsUnavailable(
                    "some seats are not available", conflicts=info.in_layout_order(taken)
                )
            claims = {c for s in seat_ids if (c := self._claims.get((event_id, s))) is not None}
            if not claims:
                break
            await asyncio.wait(claims)
            now = utcnow()
        self.hooks.hold_decided(HoldDecision.DATABASE)
        return await self._claim(info, seatmap, user, seat_ids, now, client=client)

    async def hold_best(
        self,
        event_id: int,
        user: str,
        request: BlockRequest,
        admission_token: str | None = None,
        client: HoldClient = HoldClient(),
    ) -> Hold:
        """Hold the best ``request.count`` adjacent seats (:mod:`booking.best_available`), all
        or nothing, through the same claim as :meth:`hold`. A block lost to a race is
        believed taken and the next best is tried; :class:`NoBlockLeft` only when no block
        is left. Tells the hooks how it ended, as :meth:`hold` does."""
        return await self._reported(
            self._hold_best(event_id, user, request, admission_token, client)
        )

    async def _hold_best(
        self,
        event_id: int,
        user: str,
        request: BlockRequest,
        admission_token: str | None,
        client: HoldClient,
    ) -> Hold:
        info, seatmap = await self.inventory.load(event_id)
        info.public()
        finder = self.inventory.block_finder(event_id)
        wanted = resolve(info, finder.rows, request)
        now = utcnow()
        if not info.on_sale(now):
            raise SaleNotOpen("this event is not on sale")
        await self._admitted(info, user, admission_token)
        decided = False
        lost = 0
        while True:
            block = finder.find(wanted, now)
            if block is None:
                # Seats this node is claiming right now count as taken. Were those claims to
                # fail, would there be a block? Then wait for them to end and look again,
                # rather than say none is left while that is not known yet.
                if finder.find(wanted, now, through_claims=True) is None:
                    if not decided:
                        self.hooks.hold_decided(HoldDecision.MEMORY)
                    raise NoBlockLeft(f"no {wanted.words()} left", count=wanted.count)
                await finder.settled()
                now = utcnow()
                continue
            if not decided:
                self.hooks.hold_decided(HoldDecision.DATABASE)
                decided = True
            try:
                return await self._claim(info, seatmap, user, block, now, client=client)
            except SeatsUnavailable:
                # Taken on another node: believed taken now (a hint), so the next round
                # tries the next block; many such losses in a row mean the seats are going
                # faster than this request can follow.
                lost += 1
                if lost >= _BEST_ROUNDS:
                    raise SeatsUnavailable(
                        "the seats kept being taken while we tried: try again", conflicts=[]
                    ) from None
            now = utcnow()

    async def _admitted(self, info: EventInfo, user: str, admission_token: str | None) -> None:
        """A sale with a waiting room sells to admitted users only: a valid admission token for
        this event and user, whose admission no purchase has used up yet (else a buyer would
        go on shopping outside the cap on active shoppers, beside the next in line)."""
        if not info.waiting_room:
            return
        self.admissions.verify(admission_token, info.id, user)
        if self.queue is not None and await self.queue.used_up(info.id, user):
            raise AdmissionRequired("this admission was used up by a purchase")

    async def _claim(
        self,
        info: EventInfo,
        seatmap: SeatMap,
        user: str,
        seat_ids: list[str],
        now: datetime,
        *,
        client: HoldClient,
    ) -> Hold:
        """Decide a hold in the database (:func:`place_hold`), known on this node as under
        way meanwhile; a refusal is remembered for a moment, a grant recorded."""
        event_id = info.id
        claim: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = [(event_id, s) for s in seat_ids]
        for key in keys:
            self._claims[key] = claim
        finder = self.inventory.block_finder(event_id)
        ticket = finder.claiming(seat_ids)  # best available offers these seats to nobody else
        try:
            delay = self.hooks.hold_delay()
            hold = await place_hold(
                self.engine, info, user, seat_ids, now, client=client, caps=self.caps, delay=delay
            )
        except SeatsUnavailable as exc:
            # Taken by another node whose news has not arrived yet: believe it for a moment,
            # without publishing the guess, so the next request is answered from memory.
            seatmap.hint_taken(exc.extra.get("conflicts", []), now, now + timedelta(seconds=1))
            raise
        finally:
            for key in keys:
                if self._claims.get(key) is claim:
                    del self._claims[key]
            claim.set_result(None)
            finder.claimed(seat_ids, ticket)
        self.inventory.record(
            SeatChange(event_id, tuple((s, HELD) for s in hold.seat_ids), hold.expires_at)
        )
        return hold

    async def release(self, hold_id: str, user: str) -> Hold:
        """Release the user's hold; on a sale with a waiting room its seats are offered to the
        queue first (:meth:`offer_returned`), as a lapsed hold's are."""
        hold, freed = await release_hold(
            self.engine, hold_id, user, keep_queued=self.queue is not None
        )
        if freed is None:
            await self.offer_returned(hold.event_id, hold_id, len(hold.seat_ids))
        else:
            self.inventory.record(SeatChange(hold.event_id, tuple((s, AVAILABLE) for s in freed)))
        return hold

    async def get(self, hold_id: str, user: str) -> Hold:
        """The user's hold; a purchased one names the order that bought it."""
        async with self.engine.connect() as conn:
            hold = await get_hold(conn, hold_id)
            if hold.user_id != user:
                raise NotFound(f"no hold {hold_id}")
            if hold.status == "purchased":
                found = await conn.execute(select(orders.c.id).where(orders.c.hold_id == hold_id))
                hold = replace(hold, order_id=found.scalar_one_or_none())
        return hold

    async def reap(self) -> int:
        """Free lapsed holds (a background task calls this every second); returns how many
        seats it freed."""
        now = utcnow()
        returned = await self._offer_lapsed(now)
        expired, freed = await reap_expired(self.engine, now)
        if expired:
            self.hooks.holds_expired(expired)
        for event_id, seat_ids in freed.items():
            self.inventory.record(SeatChange(event_id, tuple((s, AVAILABLE) for s in seat_ids)))
        return returned + sum(len(s) for s in freed.values())

    async def _offer_lapsed(self, now: datetime) -> int:
        """Lapsed holds of sales with a waiting room: their seats to the next users in line
        (module docstring); returns how many seats came back."""
        if self.queue is None:
            return 0
        async with self.engine.connect() as conn:
            lapsed = (await conn.execute(_LAPSED, {"now": now})).all()
        returned = 0
        for hold_id, event_id, count in lapsed:
            info = await self.inventory.event(event_id)
            if not info.waiting_room or not await lapse_hold(self.engine, hold_id):
                continue
            self.hooks.holds_expired(1)
            returned += await self.offer_returned(event_id, hold_id, int(count))
        return returned

    async def offer_returned(self, event_id: int, hold_id: str, count: int) -> int:
        """Seats that came back on a sale with a waiting room, still on hold ``hold_id`` (it
        lapsed, its holder released it, or its order was cancelled): admit the next ``count``
        users in line, one per seat, put one seat on hold for each, and free the rest. The one
        path for every returning seat; returns how many seats came back."""
        info = await self.inventory.event(event_id)
        users: list[str] = []
        if self.queue is not None and info.waiting_room:
            try:
                users = await self.queue.admit_for_seats(info, count)
            except Exception:
                log.exception("offering the seats of hold %s to the queue failed", hold_id)
        given, freed = await hand_over(self.engine, info, hold_id, users, utcnow())
        for hold in given:
            self.inventory.record(
                SeatChange(event_id, tuple((s, HELD) for s in hold.seat_ids), hold.expires_at)
            )
        if freed:
            self.inventory.record(SeatChange(event_id, tuple((s, AVAILABLE) for s in freed)))
        if self.queue is not None:
            offers = [Offer(event_id, h.user_id, h.id, tuple(h.seat_ids),
                            h.expires_at.replace(tzinfo=UTC).timestamp())
                      for h in given]  # fmt: skip
            self.queue.offered(event_id, users, offers)
        return len(given) + len(freed)
