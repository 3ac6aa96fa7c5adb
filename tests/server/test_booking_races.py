"""Double-selling under real concurrency, through the HTTP API (SPEC §5), on both backends.

300 users hold overlapping sets of 1-4 seats out of a 50-seat event all at once; then 300
checkouts race on the holds that succeeded: duplicates with the same Idempotency-Key, duplicates
with fresh keys, declined cards racing good ones, and strangers trying to pay for others' holds.
Afterwards the database itself is audited: no seat in two live holds or on two valid tickets,
every paid order has exactly its tickets, the gateway's ledger matches the paid orders, and every
success a client was told about is in the database (and every one in the database was told).
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from booking.clock import utcnow
from booking.schema import holds, orders, payments, seats, test_gateway_charges, tickets
from tests.booking.conftest import create_event_via_api
from tests.conftest import ServerProcess

CLIENTS = 300
CHECKOUTS = 300
ROWS, PER_ROW, PRICE = 5, 10, 4000
#: Generous bound for each phase; a healthy node finishes in a few seconds.
PHASE_TIMEOUT_S = 90


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield session


@pytest.fixture
async def db(booking_server: ServerProcess) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(str(booking_server.flags["database_url"]))
    try:
        yield engine
    finally:
        await engine.dispose()


async def request(
    http: aiohttp.ClientSession,
    server: ServerProcess,
    method: str,
    path: str,
    token: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
    async with http.request(
        method, f"{server.http_url}{path}", json=body, headers=all_headers
    ) as response:
        raw = await response.read()
        decoded = json.loads(raw) if raw else None
        return Reply(response.status, decoded, dict(response.headers))


async def fetch_all(db: AsyncEngine, query: Any) -> list[Any]:
    async with db.connect() as conn:
        return list((await conn.execute(query)).all())


async def test_no_double_selling_under_concurrent_holds_and_checkouts(
    booking_server: ServerProcess, http: aiohttp.ClientSession, db: AsyncEngine
) -> None:
    server = booking_server
    event = create_event_via_api(server, rows=ROWS, seats_per_row=PER_ROW, price_cents=PRICE)
    event_id = event["id"]
    seat_ids = [f"S-{row}-{n}" for row in "ABCDE" for n in range(1, PER_ROW + 1)]
    run = uuid.uuid4().hex[:8]
    rng = random.Random(20261124)
    users = [f"race-{run}-{i}" for i in range(CLIENTS)]
    tokens = {user: server.token(user) for user in users}
    wanted = {user: rng.sample(seat_ids, rng.randint(1, 4)) for user in users}

    # -- phase 1: every client holds at once ----------------------------------------------
    start = asyncio.Event()

    async def hold(user: str) -> Reply:
        await start.wait()
        return await request(http, server, "POST", f"/api/events/{event_id}/holds",
                             tokens[user], body={"seats": wanted[user]})  # fmt: skip

    tasks = [asyncio.ensure_future(hold(user)) for user in users]
    await asyncio.sleep(0)
    start.set()
    replies = await asyncio.wait_for(asyncio.gather(*tasks), PHASE_TIMEOUT_S)

    granted: dict[str, dict[str, Any]] = {}  # hold id → 201 body, with its user
    for user, reply in zip(users, replies, strict=True):
        assert reply.status in (201, 409), (user, reply)
        if reply.status == 201:
            assert sorted(reply.body["seats"]) == sorted(wanted[user]), reply.body
            granted[reply.body["hold_id"]] = {**reply.body, "user": user}
        else:
            conflicts = reply.body["conflicts"]
            assert conflicts and set(conflicts) <= set(wanted[user]), (wanted[user], reply.body)
    assert granted, "no hold succeeded"
    held = Counter(s for h in granted.values() for s in h["seats"])
    assert max(held.values()) == 1, "a seat in two granted holds"
    # every conflict named a seat that a granted hold took (nothing was sold yet)
    for user, reply in zip(users, replies, strict=True):
        if reply.status == 409:
            assert set(reply.body["conflicts"]) <= set(held), (user, reply.body)

    # -- phase 2: checkouts race on the granted holds ---------------------------------------
    hold_ids = list(granted)
    pattern = ["same", "fresh", "same", "stranger", "declined", "same", "fresh"]
    strangers = [u for u in users if u not in {h["user"] for h in granted.values()}] or users
    plan: list[tuple[str, str, str, str]] = []  # (hold id, user, key, card token)
    for j in range(CHECKOUTS):
        hold_id = hold_ids[j % len(hold_ids)]
        kind = pattern[(j // len(hold_ids)) % len(pattern)]
        owner = granted[hold_id]["user"]
        if kind == "same":
            plan.append((hold_id, owner, f"{hold_id}-same", "tok_visa"))
        elif kind == "fresh":
            plan.append((hold_id, owner, f"{hold_id}-fresh-{j}", "tok_visa"))
        elif kind == "declined":
            plan.append((hold_id, owner, f"{hold_id}-declined-{j}", "tok_declined"))
        else:
            plan.append((hold_id, rng.choice(strangers), f"{hold_id}-stranger-{j}", "tok_visa"))
    # every hold gets at least one good attempt by its owner
    assert {p[0] for p in plan if p[3] == "tok_visa" and "stranger" not in p[2]} == set(hold_ids)

    go = asyncio.Event()

    async def checkout(hold_id: str, user: str, key: str, card: str) -> Reply:
        await go.wait()
        return await request(
            http, server, "POST", f"/api/holds/{hold_id}/checkout", tokens[user],
            body={"payment": {"method": "card", "token": card}},
            headers={"Idempotency-Key": key},
        )  # fmt: skip

    tasks = [asyncio.ensure_future(checkout(*p)) for p in plan]
    await asyncio.sleep(0)
    go.set()
    paid_replies = await asyncio.wait_for(asyncio.gather(*tasks), PHASE_TIMEOUT_S)

    told: dict[str, set[str]] = defaultdict(set)  # hold id → order ids the clients were given
    told_bodies: dict[str, dict[str, Any]] = {}
    for (hold_id, user, key, card), reply in zip(plan, paid_replies, strict=True):
        where = (hold_id, user, key, card, reply)
        if "stranger" in key:
            assert reply.status == 409, where
        elif card == "tok_declined":
            assert reply.status in (402, 409), where
        else:
            assert reply.status in (201, 409), where
        if reply.status == 201:
            assert reply.body["status"] == "paid", where
            told[hold_id].add(reply.body["order_id"])
            told_bodies[reply.body["order_id"]] = reply.body
    assert all(len(ids) == 1 for ids in told.values()), told

    # -- the audit, from the database ---------------------------------------------------------
    await asyncio.sleep(0.5)  # let the node's tick publish; nothing is in flight any more
    now = utcnow()
    hold_rows = await fetch_all(db, select(holds).where(holds.c.event_id == event_id))
    order_rows = await fetch_all(db, select(orders).where(orders.c.event_id == event_id))
    ticket_rows = await fetch_all(db, select(tickets).where(tickets.c.event_id == event_id))
    seat_rows = await fetch_all(db, select(seats).where(seats.c.event_id == event_id))
    hold_by_id = {h.id: h for h in hold_rows}
    payment_rows = await fetch_all(
        db, select(payments).where(payments.c.hold_id.in_(list(hold_by_id)))
    )
    ledger = await fetch_all(
        db,
        select(test_gateway_charges).where(
            test_gateway_charges.c.payment_id.in_([p.id for p in payment_rows])
        ),
    )

    # holds: exactly the granted ones exist, and no seat is in two live holds
    assert set(hold_by_id) == set(granted)
    for hold_id, body in granted.items():
        row = hold_by_id[hold_id]
        assert row.user_id == body["user"]
        assert sorted(json.loads(row.seat_ids)) == sorted(body["seats"])
        assert row.amount_cents == PRICE * len(body["seats"])
    live = Counter(
        s
        for h in hold_rows
        if h.status == "active" and h.expires_at > now
        for s in json.loads(h.seat_ids)
    )
    assert not live or max(live.values()) == 1

    # tickets: at most one valid ticket per seat
    valid = [t for t in ticket_rows if t.status == "valid"]
    per_seat = Counter(t.seat_id for t in valid)
    assert not per_seat or max(per_seat.values()) == 1, per_seat.most_common(3)

    # orders: one per granted hold (each had a good attempt), each with exactly its tickets
    assert len(order_rows) == len({o.hold_id for o in order_rows}) == len(granted)
    tickets_of: dict[str, list[Any]] = defaultdict(list)
    for t in ticket_rows:
        tickets_of[t.order_id].append(t)
    for order in order_rows:
        assert order.status == "paid"
        hold_row = hold_by_id[order.hold_id]
        assert hold_row.status == "purchased" and order.user_id == hold_row.user_id
        mine = tickets_of[order.id]
        assert sorted(t.seat_id for t in mine) == sorted(json.loads(hold_row.seat_ids))
        assert all(t.status == "valid" and t.active_seat_id == t.seat_id for t in mine)
        assert order.amount_cents == hold_row.amount_cents
    assert sum(len(v) for v in tickets_of.values()) == len(ticket_rows)

    # seats: sold exactly when a paid order's valid ticket says so
    sold = {s.seat_id: s.order_id for s in seat_rows if s.order_id is not None}
    assert sold == {t.seat_id: t.order_id for t in valid}

    # money: charged ledger rows are exactly the paid orders' payments, to the cent
    paid_payments = {o.payment_id for o in order_rows if o.status == "paid"}
    charged = {c.payment_id: c for c in ledger if c.status == "charged"}
    assert set(charged) == paid_payments
    assert {p.id for p in payment_rows if p.status == "charged"} == paid_payments
    assert all(p.status != "pending" for p in payment_rows), "a payment left pending"
    assert sum(o.amount_cents for o in order_rows if o.status == "paid") == sum(
        c.amount_cents for c in charged.values()
    )
    refunded = [c for c in ledger if c.status == "refunded"]
    assert all(c.status in ("charged", "refunded") for c in ledger)
    # strangers and declined cards never reached the ledger
    stranger_holds = {p.hold_id for p in payment_rows if not p.user_id.startswith(f"race-{run}")}
    assert not stranger_holds
    assert len(charged) + len(refunded) == len(ledger)

    # every success a client saw is in the database, and every order was told to someone
    order_by_id = {o.id: o for o in order_rows}
    for hold_id, ids in told.items():
        (order_id,) = ids
        order = order_by_id[order_id]
        assert order.hold_id == hold_id
        body = told_bodies[order_id]
        assert body["amount_cents"] == order.amount_cents and body["event_id"] == event_id
        assert {(t["code"], t["seat_id"]) for t in body["tickets"]} == {
            (t.code, t.seat_id) for t in tickets_of[order_id]
        }
    assert set(told) == {o.hold_id for o in order_rows}

    # the live seat map agrees with the database
    reply = await request(http, server, "GET", f"/api/events/{event_id}/seats",
                          tokens[users[0]])  # fmt: skip
    assert reply.status == 200
    shown = dict(map(tuple, reply.body["seats"]))
    expected = {
        s.seat_id: "sold"
        if s.order_id is not None
        else "held"
        if s.hold_id is not None and s.hold_expires_at > now
        else "available"
        for s in seat_rows
    }
    assert shown == expected
