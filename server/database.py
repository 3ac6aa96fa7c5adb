"""The node's SQLAlchemy async engine and its readiness probe."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def make_engine(url: str) -> AsyncEngine:
    """An engine tuned for the backend.

    SQLite (embedded mode) gets one connection: SQLite admits one writer at a time anyway, and
    queueing for the connection is kinder than failing with "database is locked". WAL lets
    readers proceed beside that writer. MariaDB/MySQL gets a pool sized for a 2-core node.
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, pool_size=1, max_overflow=0, pool_timeout=60, connect_args={"timeout": 30}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url, pool_pre_ping=True, pool_size=20, max_overflow=10, pool_recycle=1800
    )


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


async def check_database(engine: AsyncEngine, limit_s: float = 2.0) -> str | None:
    """``None`` when the database answers ``SELECT 1`` in time, else why not."""
    try:
        async with asyncio.timeout(limit_s):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready; say which
        return f"{type(exc).__name__}: {exc}"[:200]
    return None
