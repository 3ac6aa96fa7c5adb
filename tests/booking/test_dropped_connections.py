"""The pool does not ping a connection before handing it out (``server/database.py``): when the
database has dropped the node's connections (a restart, a failover, an idle cut), the next hold
and the next checkout must still succeed, on fresh connections, and nothing be done twice."""

from __future__ import annotations

import asyncio

import pymysql
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.catalog import EventInfo
from booking.core import BookingCore
from booking.schema import holds, orders
from tests.booking.conftest import VISA, buy, count, ledger, payment_rows
from tests.conftest import MARIADB


async def _open_connections(engine: AsyncEngine, how_many: int) -> None:
    """Fill the pool with idle connections."""

    async def one() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(0.05)

    await asyncio.gather(*(one() for _ in range(how_many)))


def _drop_connections(engine: AsyncEngine) -> int:
    """Kill every server connection to the engine's database, as a restart would."""
    database = engine.url.database
    admin = pymysql.connect(**MARIADB)
    killed = 0
    try:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT id FROM information_schema.PROCESSLIST WHERE db = %s AND id <> "
                "CONNECTION_ID()",
                (database,),
            )
            for (thread,) in cur.fetchall():
                try:
                    cur.execute(f"KILL CONNECTION {int(thread)}")
                    killed += 1
                except pymysql.err.OperationalError:
                    pass  # gone already
    finally:
        admin.close()
    return killed


async def test_hold_and_checkout_after_the_database_dropped_the_connections(
    service: BookingCore, event: EventInfo
) -> None:
    engine = service.engine
    if engine.dialect.name != "mysql":
        pytest.skip("SQLite has no connections to drop")
    await _open_connections(engine, 5)
    assert _drop_connections(engine) >= 1

    hold = await service.holds.hold(event.id, "alice", ["A-A-1", "A-A-2"])
    assert await count(engine, holds, holds.c.user_id == "alice") == 1

    await _open_connections(engine, 5)
    assert _drop_connections(engine) >= 1
    outcome = await buy(service, "alice", hold.id, "k-1", VISA)
    assert outcome.order is not None, outcome.error
    assert sorted(t.seat_id for t in outcome.order.tickets) == ["A-A-1", "A-A-2"]
    assert await count(engine, orders) == 1
    assert len(await payment_rows(engine, hold.id)) == 1
    assert len(await ledger(engine)) == 1
    # The same key answers with the same order.
    again = await buy(service, "alice", hold.id, "k-1", VISA)
    assert again.replayed and again.order is not None and again.order.id == outcome.order.id
