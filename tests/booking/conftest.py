"""Fixtures for the booking core, run in-process against a real database on both backends,
and helpers for tests that drive a real server through the REST API.

``service`` is a :class:`BookingCore` built the way ``server/app.py`` builds one, over a fresh
database migrated with ``concert-hub migrate`` (SQLite and MariaDB: ``migrated_database``).
Helpers create events from layouts, read the tables directly, and move a hold's expiry into the
past in the database (EventSpec forbids a hold TTL short enough to wait for).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from booking import core
from booking.catalog import EventInfo, EventSpec
from booking.checkout import Outcome
from booking.clock import utcnow
from booking.core import BookingCore, BookingPolicy
from booking.holds import Hold
from booking.hooks import BookingHooks, HoldDecision
from booking.keyring import Keyring
from booking.layout import LayoutSpec, SectionSpec, TierSpec
from booking.orders import Order
from booking.payments import ChargeOutcome, PaymentProvider, TestGateway
from booking.schema import holds, orders, payments, seats, test_gateway_charges, tickets
from booking.seatmap import HELD, SeatChange
from server.bodies import order_out
from server.database import make_engine
from tests.conftest import SECRET, rest

VISA = {"method": "card", "token": "tok_visa"}

#: The REST call the booking suites (and the cluster's) make.
call = rest


def card(token: str) -> dict[str, str]:
    return {"method": "card", "token": token}


def event_spec(**overrides: Any) -> EventSpec:
    """An event on sale now: section A (2 rows x 5, tier Gold 5000) and B (1 x 4, Silver 2500)."""
    now = utcnow()
    values: dict[str, Any] = {
        "name": "Test Night",
        "venue": "Test Hall",
        "starts_at": now + timedelta(days=7),
        "sale_opens_at": now - timedelta(hours=1),
        "sale_closes_at": now + timedelta(days=6),
        "status": "on_sale",
        "layout": LayoutSpec(
            tiers=[
                TierSpec(name="Gold", price_cents=5000, currency="EUR"),
                TierSpec(name="Silver", price_cents=2500, currency="EUR"),
            ],
            sections=[
                SectionSpec(name="A", rows=2, seats_per_row=5, tier="Gold"),
                SectionSpec(name="B", rows=1, seats_per_row=4, tier="Silver"),
            ],
        ),
    }
    values.update(overrides)
    return EventSpec(**values)


@dataclass
class CountingHooks(BookingHooks):
    """Hooks that count where hold requests were decided (``memory`` / ``database``)."""

    decisions: dict[str, int] = field(default_factory=lambda: {"memory": 0, "database": 0})

    def __post_init__(self) -> None:
        self.hold_decided = self._count

    def _count(self, where: HoldDecision) -> None:
        self.decisions[where.value] += 1


def decisions(booking: BookingCore) -> dict[str, int]:
    """Where ``booking``'s hold requests were decided (``build_service`` counts them)."""
    assert isinstance(booking.hooks, CountingHooks)
    return booking.hooks.decisions


def build_service(
    engine: AsyncEngine, provider: PaymentProvider | None = None, **policy: Any
) -> BookingCore:
    """A booking core built the way ``server.app`` builds one (another node, when called twice
    over one database), counting its hold decisions in ``.hooks.decisions``."""
    return core.build(
        engine,
        provider if provider is not None else TestGateway(engine),
        Keyring(SECRET),
        # 2 s: the test gateway's ledger is in the database, and on a test machine loaded by
        # parallel workers 0.3 s was sometimes too short for it (PaymentTimedOut in tests that
        # expect a payment); the timeout test waits this long once.
        policy=BookingPolicy(**{"payment_timeout_s": 2.0, **policy}),
        hooks=CountingHooks(),
    )


async def buy(
    booking: BookingCore, user: str, hold_id: str, key: str, payment: dict[str, Any]
) -> Outcome:
    return await booking.checkout.run(user=user, hold_id=hold_id, key=key, payment=payment)


def rendered(found: Outcome | Order) -> dict[str, Any]:
    """What the REST API answers for a checkout outcome or an order: the order's body, or the
    error's ``kind``, ``detail`` and extra members."""
    order = found if isinstance(found, Order) else found.order
    if order is not None:
        return order_out(order).model_dump(mode="json")
    assert isinstance(found, Outcome) and found.error is not None
    return {"kind": found.error.kind, "detail": found.error.detail, **found.error.extra}


@pytest.fixture
async def engine(migrated_database: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(migrated_database)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def service(engine: AsyncEngine) -> BookingCore:
    return build_service(engine)


@pytest.fixture
async def event(service: BookingCore) -> EventInfo:
    return await service.inventory.create_event(event_spec())


# -- reading the record ------------------------------------------------------------------------


async def rows(engine: AsyncEngine, table: Any, *where: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(table).where(*where))).all())


async def count(engine: AsyncEngine, table: Any, *where: Any) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(table).where(*where)
        return int((await conn.execute(query)).scalar_one())


async def seat_row(engine: AsyncEngine, event_id: int, seat_id: str) -> Any:
    (row,) = await rows(engine, seats, seats.c.event_id == event_id, seats.c.seat_id == seat_id)
    return row


async def hold_status(engine: AsyncEngine, hold_id: str) -> str:
    (row,) = await rows(engine, holds, holds.c.id == hold_id)
    return str(row.status)


async def ledger(engine: AsyncEngine) -> list[Any]:
    """The test gateway's charges, oldest first."""
    async with engine.connect() as conn:
        query = select(test_gateway_charges).order_by(test_gateway_charges.c.id)
        return list((await conn.execute(query)).all())


async def payment_rows(engine: AsyncEngine, hold_id: str) -> list[Any]:
    return await rows(engine, payments, payments.c.hold_id == hold_id)


async def order_count(engine: AsyncEngine) -> int:
    return await count(engine, orders)


async def valid_tickets(engine: AsyncEngine, event_id: int) -> list[Any]:
    return await rows(engine, tickets, tickets.c.event_id == event_id, tickets.c.status == "valid")


# -- moving time -------------------------------------------------------------------------------


async def expire_in_db(engine: AsyncEngine, hold_id: str, ago: timedelta | None = None) -> datetime:
    """Make ``hold_id`` lapse in the database: its expiry (and its seats') moves into the past.

    Only the database learns it; a node's in-memory seat map still has the old expiry (see
    :func:`expire_hold` for both).
    """
    past = utcnow() - (ago or timedelta(seconds=1))
    async with engine.begin() as conn:
        await conn.execute(update(holds).where(holds.c.id == hold_id).values(expires_at=past))
        await conn.execute(
            update(seats).where(seats.c.hold_id == hold_id).values(hold_expires_at=past)
        )
    return past


async def expire_hold(service: BookingCore, hold: Hold) -> None:
    """Let ``hold`` lapse as if its TTL had passed: in the database and in the node's seat map."""
    past = await expire_in_db(service.engine, hold.id)
    seatmap = await service.inventory.seat_map(hold.event_id)
    seatmap.apply(SeatChange(hold.event_id, tuple((s, HELD) for s in hold.seat_ids), past))


# -- payment providers for fault injection ------------------------------------------------------


class ExpiringProvider:
    """A test gateway that lets the hold lapse in the database while the charge is under way."""

    name = "test"

    def __init__(self, engine: AsyncEngine) -> None:
        self.inner = TestGateway(engine)
        self.engine = engine
        self.hold_id: str | None = None

    async def charge(
        self, *, payment_id: str, amount_cents: int, currency: str, token: str
    ) -> ChargeOutcome:
        result = await self.inner.charge(
            payment_id=payment_id, amount_cents=amount_cents, currency=currency, token=token
        )
        (pay,) = await rows(self.engine, payments, payments.c.id == payment_id)
        await expire_in_db(self.engine, pay.hold_id)
        return result

    async def refund(self, payment_id: str) -> bool:
        return await self.inner.refund(payment_id)


def seat_ids_of(hold_row: Any) -> list[str]:
    return list(json.loads(hold_row.seat_ids))


# -- the REST API of a real server (SPEC §5), for the crash, race and seat-stream tests ----------


def sync_url(url: str) -> str:
    """The synchronous driver's URL for one of the fixtures' async database URLs."""
    return url.replace("sqlite+aiosqlite", "sqlite").replace("mysql+aiomysql", "mysql+pymysql")


def event_body(
    rows: int = 2, seats_per_row: int = 5, price_cents: int = 4000, **overrides: Any
) -> dict[str, Any]:
    """A ``POST /api/admin/events`` body: one section ``S`` of ``rows`` x ``seats_per_row``."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "name": "REST Night",
        "venue": "REST Hall",
        "starts_at": _iso(now + timedelta(days=7)),
        "sale_opens_at": _iso(now - timedelta(hours=1)),
        "sale_closes_at": _iso(now + timedelta(days=6)),
        "status": "on_sale",
        "layout": {
            "tiers": [{"name": "Main", "price_cents": price_cents, "currency": "EUR"}],
            "sections": [
                {"name": "S", "rows": rows, "seats_per_row": seats_per_row, "tier": "Main"}
            ],
        },
    }
    body.update(overrides)
    return body


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def create_event_via_api(server: Any, **kwargs: Any) -> dict[str, Any]:
    admin = server.token("root", "admin")
    status, body = call(server, "POST", "/api/admin/events", event_body(**kwargs), token=admin)
    assert status == 201, (status, body)
    return dict(body)
