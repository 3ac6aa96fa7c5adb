"""The Alembic migrations build exactly the schema booking/schema.py declares, on both backends.

A change to the tables without a migration (or a migration that drifts) fails here, not in
production.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, column, create_engine, insert, inspect, select, table

from booking.checkout import Outcome
from booking.migrate import alembic_config
from booking.schema import metadata
from server.bodies import order_out
from server.errors import Problem
from tests.conftest import migrate


@contextlib.contextmanager
def sync_engine(database_url: str) -> Iterator[Engine]:
    """A synchronous engine on the test database: Alembic's commands and inspection are sync."""
    engine = create_engine(database_url.replace("+aiosqlite", "").replace("+aiomysql", "+pymysql"))
    try:
        yield engine
    finally:
        engine.dispose()


def test_migrations_match_the_declared_schema(database_url: str) -> None:
    migrate(database_url)
    with sync_engine(database_url) as engine, engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_downgrade_to_base_leaves_no_table_behind(database_url: str) -> None:
    migrate(database_url)
    with sync_engine(database_url) as engine:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}


OLD_PAID: dict[str, Any] = {
    "ok": True,
    "body": {
        "order_id": "ord_1", "status": "paid", "event_id": 7, "amount_cents": 5000,
        "currency": "EUR", "created_at": "2026-11-30T20:00:00.123456Z",
        "tickets": [{"code": "c1.m1", "seat_id": "A-A-1", "status": "valid"}],
    },
}  # fmt: skip
OLD_DECLINED: dict[str, Any] = {
    "ok": False,
    "body": {"kind": "payment_declined", "detail": "declined"},
}
OLD_CONFLICT: dict[str, Any] = {
    "ok": False,
    "body": {"kind": "conflict", "detail": "taken", "conflicts": ["A-A-2"]},
}


def test_stored_checkout_outcomes_are_converted_to_domain_data(database_url: str) -> None:
    """Revision 0003 turns the REST bodies stored with idempotency keys into domain outcomes
    that replay as they were, and turns them back on downgrade."""
    keys = table(
        "idempotency_keys", column("user_id"), column("key"), column("request_hash"),
        column("status"), column("response_body"), column("created_at"),
    )  # fmt: skip
    stored = {"paid": OLD_PAID, "declined": OLD_DECLINED, "conflict": OLD_CONFLICT}
    with sync_engine(database_url) as engine:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0002")
            for key, outcome in stored.items():
                conn.execute(insert(keys).values(
                    user_id="alice", key=key, request_hash="h", status="done",
                    response_body=json.dumps(outcome), created_at=datetime(2026, 11, 30),
                ))  # fmt: skip
            command.upgrade(alembic_config(conn), "head")
            rows = dict(conn.execute(select(keys.c.key, keys.c.response_body)).all())
        replayed = {key: Outcome.restore(text) for key, text in rows.items()}
        paid = replayed["paid"].order
        assert paid is not None and replayed["paid"].replayed
        # (the members orders gained later are empty for them)
        later = {"email": None, "cancellable_until": None, "refund": None}
        assert order_out(paid).model_dump(mode="json") == OLD_PAID["body"] | later
        for key in ("declined", "conflict"):
            error = replayed[key].error
            assert error is not None and replayed[key].order is None
            body = stored[key]["body"]
            assert Problem.from_booking(error).body() | body == Problem.from_booking(error).body()
            assert (error.kind, error.detail) == (body["kind"], body["detail"])
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0002")
            back = dict(conn.execute(select(keys.c.key, keys.c.response_body)).all())
        assert {key: json.loads(text) for key, text in back.items()} == stored
