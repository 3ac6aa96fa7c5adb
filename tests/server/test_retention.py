"""A node forgets what its retention lets go (booking.retention), from its start and then every
minute: an Idempotency-Key older than ``--idempotency-ttl-s`` and a sign-in request expired
longer ago than ``--sign-in-retention-s`` are gone, while fresh ones stay."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, select

from booking.clock import utcnow
from booking.schema import idempotency_keys, sign_ins
from tests.conftest import ServerProcess, migrate


def test_a_node_sweeps_old_keys_and_sign_ins_and_keeps_fresh_ones(
    tmp_path: Path, make_server: Callable[..., ServerProcess]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'retention.db'}"
    migrate(url)
    now = utcnow()
    engine = create_engine(url.replace("+aiosqlite", ""))
    with engine.begin() as conn:
        conn.execute(insert(idempotency_keys), [
            {"user_id": "alice", "key": key, "request_hash": "h", "status": "done",
             "response_body": "{}", "created_at": now - age}
            for key, age in (("old", timedelta(hours=3)), ("fresh", timedelta(minutes=30)))
        ])  # fmt: skip
        conn.execute(insert(sign_ins), [
            {"id": f"sgn_{name}", "email": f"{name}@example.com", "link_hash": name,
             "code_hash": name, "attempts": 0, "client_ip": "127.0.0.1",
             "created_at": expired - timedelta(minutes=15), "expires_at": expired}
            for name, expired in (("old", now - timedelta(hours=3)),
                                  ("live", now + timedelta(minutes=10)))
        ])  # fmt: skip

    def left() -> tuple[list[str], list[str]]:
        with engine.connect() as conn:
            keys = conn.scalars(select(idempotency_keys.c.key).order_by(idempotency_keys.c.key))
            ids = conn.scalars(select(sign_ins.c.id).order_by(sign_ins.c.id))
            return list(keys), list(ids)

    try:
        make_server(database_url=url, idempotency_ttl_s=3600, sign_in_retention_s=3600)
        deadline = time.monotonic() + 30  # (the sweep runs as the node starts)
        while left() != (["fresh"], ["sgn_live"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert left() == (["fresh"], ["sgn_live"])
    finally:
        engine.dispose()
