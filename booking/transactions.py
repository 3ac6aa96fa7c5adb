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
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event
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


#: In a pooled connection's ``info``: its last transaction ended (committed or rolled back, the
#: server said so), and nothing ran since.
COMMITTED = "concert_hub_transaction_ended"


def skip_reset_after_commit(engine: AsyncEngine) -> None:
    """The pool's reset on return, without a needless ``ROLLBACK``, for an engine made with
    ``pool_reset_on_return=None``.

    SQLAlchemy's reset rolls back every connection that comes back unless the ``Connection``
    said it just rolled back by itself when it closed: after ``engine.begin()`` committed, or
    rolled back on an exception (a refused hold), it sends one more ``ROLLBACK``, a round trip
    each time. Here the dialect's commit and rollback mark the connection once the server has
    acknowledged them, any later transaction unmarks it, and the reset rolls back every
    connection that is not marked (as SQLAlchemy's would).
    """
    sync = engine.sync_engine
    dialect = sync.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def mark(dbapi_connection: Any) -> None:
        # (the first connect's ad-hoc proxy has no pool record to mark)
        with contextlib.suppress(NotImplementedError):
            dbapi_connection.info[COMMITTED] = True

    def do_commit(dbapi_connection: Any) -> None:
        commit(dbapi_connection)
        mark(dbapi_connection)  # (only once the commit succeeded)

    def do_rollback(dbapi_connection: Any) -> None:
        rollback(dbapi_connection)
        mark(dbapi_connection)

    def began(connection: Any) -> None:
        connection.connection.info.pop(COMMITTED, None)

    def reset(dbapi_connection: Any, record: Any, state: Any) -> None:
        ended = record.info.get(COMMITTED, False)
        if state.transaction_was_reset or ended or not state.asyncio_safe:
            return  # (not asyncio-safe: the pool terminates the connection instead)
        dbapi_connection.rollback()

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
    event.listen(sync, "begin", began)
    event.listen(sync.pool, "reset", reset)
