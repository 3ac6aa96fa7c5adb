"""The node's SQLAlchemy async engine and its readiness probe."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def make_engine(url: str) -> AsyncEngine:
    kwargs: dict[str, object] = {"pool_pre_ping": True}
    if not url.startswith("sqlite"):
        kwargs.update(pool_size=10, max_overflow=20, pool_recycle=1800)
    return create_async_engine(url, **kwargs)


async def check_database(engine: AsyncEngine, limit_s: float = 2.0) -> str | None:
    """``None`` when the database answers ``SELECT 1`` in time, else why not."""
    try:
        async with asyncio.timeout(limit_s):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means not ready; say which
        return f"{type(exc).__name__}: {exc}"[:200]
    return None
