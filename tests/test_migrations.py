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
from sqlalchemy import (
    Connection,
    Engine,
    column,
    create_engine,
    delete,
    insert,
    inspect,
    select,
    table,
    text,
)

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


def test_queue_message_ids_are_never_reused(database_url: str) -> None:
    """Revision 1801 rebuilds ``queue_messages`` with AUTOINCREMENT on SQLite, keeping its rows
    and ids: a message's id is its STOMP message-id, so the id of a deleted (acknowledged) newest
    row must not come back. MariaDB's AUTO_INCREMENT never goes back anyway."""
    messages = table(
        "queue_messages", column("id"), column("queue"), column("headers"), column("body"),
        column("dedupe_key"), column("created_at"),
    )  # fmt: skip

    def send(conn: Connection, key: str | None = None) -> int:
        row = {"queue": "q", "headers": "[]", "body": "", "created_at": datetime(2026, 12, 7)}
        result = conn.execute(insert(messages).values(**row, dedupe_key=key))
        return int(result.lastrowid)

    def stored(conn: Connection) -> list[tuple[int, str | None]]:
        query = select(messages.c.id, messages.c.dedupe_key).order_by(messages.c.id)
        return [(int(id_), key) for id_, key in conn.execute(query).all()]

    with sync_engine(database_url) as engine, engine.begin() as conn:
        command.upgrade(alembic_config(conn), "1202")
        ids = [send(conn, key) for key in ("a", "b", "c")]
        conn.execute(delete(messages).where(messages.c.id == ids[1]))
        command.upgrade(alembic_config(conn), "head")
        assert stored(conn) == [(ids[0], "a"), (ids[2], "c")]
        conn.execute(delete(messages).where(messages.c.id == ids[2]))  # the newest, ACKed
        again = send(conn)
        assert again > ids[2]
        if engine.dialect.name == "sqlite":
            ddl = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'queue_messages'")
            ).scalar_one()
            assert "AUTOINCREMENT" in ddl
        command.downgrade(alembic_config(conn), "1202")
        assert stored(conn) == [(ids[0], "a"), (again, None)]


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
