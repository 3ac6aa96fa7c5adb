"""Running a unit of work in one database transaction, retried when the database asks.

Under contention InnoDB may pick a transaction as a deadlock victim (1213) or time out a lock
wait (1205), and SQLite may report itself busy; each means "nothing happened, try again". So does
a connection found dead before the commit (the server restarted, or dropped it): the pool does
not ping connections before handing them out (``server/database.py``), the transaction never
committed, and the next attempt gets a fresh connection. A connection lost *during* the commit
is not retried: whether that commit happened is unknown. Domain errors are not retried: they are
answers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")

_RETRYABLE_MYSQL = {1205, 1213}
ATTEMPTS = 6


def is_retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = orig.args[0] if orig is not None and orig.args else None
    if code in _RETRYABLE_MYSQL:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(orig)


async def in_transaction(engine: AsyncEngine, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """Run ``work`` in a transaction; commit if it returns, roll back if it raises."""
    for attempt in range(ATTEMPTS):
        committing = False
        try:
            async with engine.begin() as conn:
                result = await work(conn)
                committing = True
            return result
        except DBAPIError as exc:
            if attempt == ATTEMPTS - 1:
                raise
            if exc.connection_invalidated:
                if committing:
                    raise
                continue  # a dead connection, nothing committed: again, on a fresh one
            if not is_retryable(exc):
                raise
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
    raise AssertionError("unreachable")
