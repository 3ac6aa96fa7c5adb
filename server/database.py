"""The node's SQLAlchemy async engine, its connection pool's figures, and its readiness probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection

from booking.errors import Unavailable
from booking.transactions import skip_reset_after_commit

#: Connections per node to MariaDB/MySQL (``--db-pool-size``). A hot sale opens with a wave of
#: hundreds of concurrent hold transactions; with 30 connections they queued for the pool and the
#: p99 of hold decisions at 500 clients was 250-360 ms, with 50 it was 200-210 ms. Two nodes at
#: 50 (+10 overflow) stay under MariaDB's default max_connections of 151.
DEFAULT_POOL_SIZE = 50


#: A pooled MariaDB/MySQL connection older than this is replaced when next taken from the pool.
RECYCLE_S = 1800

#: The longest a request waits for a MariaDB/MySQL connection (``--db-pool-timeout-s``) before
#: it is answered 503 with ``Retry-After`` (:class:`WatchedPool`).
DEFAULT_POOL_TIMEOUT_S = 10.0

#: The ``Retry-After`` of that 503: a second, since the wait was long but any connection that
#: comes back serves the next waiter.
BUSY_RETRY_AFTER_S = 1


def make_engine(
    url: str, pool_size: int = DEFAULT_POOL_SIZE, pool_timeout_s: float = DEFAULT_POOL_TIMEOUT_S
) -> AsyncEngine:
    """An engine tuned for the backend.

    SQLite (embedded mode) gets one connection: SQLite admits one writer at a time anyway, and
    queueing for the connection is kinder than failing with "database is locked". WAL lets
    readers proceed beside that writer. MariaDB/MySQL gets ``pool_size`` connections (see
    ``DEFAULT_POOL_SIZE``).

    The pool does not ping a connection each time it hands one out (``pool_pre_ping`` was one
    more round trip per transaction, about a tenth of a checkout's): the optimistic handling
    SQLAlchemy describes instead. Connections are replaced after :data:`RECYCLE_S`, and each
    asks the server not to close it for idleness before then (``wait_timeout``); a statement
    that finds its connection dead marks every connection of the pool made before as stale
    (each is replaced when next taken), and :func:`booking.transactions.in_transaction` runs
    its work again on a fresh connection, unless the commit itself was under way.

    Nor does it roll back a connection that comes back right after its transaction committed
    or rolled back (SQLAlchemy's reset on return would: one more round trip per transaction);
    any other connection is rolled back as before
    (:func:`booking.transactions.skip_reset_after_commit`).
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, poolclass=WatchedPool, pool_size=1, max_overflow=0, pool_timeout=60,
            connect_args={"timeout": 30},
        )  # fmt: skip
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        url, poolclass=WatchedPool, pool_size=pool_size, max_overflow=10, pool_recycle=RECYCLE_S,
        pool_timeout=pool_timeout_s, pool_reset_on_return=None,  # skip_reset_after_commit
    )  # fmt: skip
    event.listen(engine.sync_engine, "connect", _mysql_session)
    skip_reset_after_commit(engine)
    return engine


def _ignore(_: float) -> None:
    pass


class PoolWatch:
    """The figures of one engine's connection pool that ``/metrics`` reports: its capacity,
    the connections checked out, the tasks waiting for one, and (``waited``, set by the host)
    how long each wait took."""

    def __init__(self, pool: WatchedPool, capacity: int) -> None:
        self.pool = pool
        #: Connections the pool may hold: its size plus its overflow.
        self.capacity = capacity
        #: Tasks inside :meth:`WatchedPool.connect` right now.
        self.waiting = 0
        #: Called with the seconds each connection took to get (queueing, connecting, the
        #: pre-ping).
        self.waited: Callable[[float], None] = _ignore

    def in_use(self) -> int:
        return self.pool.checkedout()


class WatchedPool(AsyncAdaptedQueuePool):
    """The async engines' queue pool, counting who waits for a connection and for how long.

    SQLAlchemy's pool events fire once a connection is out (``checkout``), not when a task
    starts asking for one, so the wait is measured around :meth:`connect` itself. Everything
    here runs on the event loop's thread (the async engine's greenlets), so plain counters do.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        size, overflow = kwargs.get("pool_size", 5), kwargs.get("max_overflow", 10)
        self.watch = PoolWatch(self, size + max(overflow, 0))

    def connect(self) -> PoolProxiedConnection:
        watch = self.watch
        watch.waiting += 1
        started = time.perf_counter()
        try:
            return super().connect()
        except sqlalchemy.exc.TimeoutError:
            raise Unavailable(
                "the database is busy; try again", retry_after_s=BUSY_RETRY_AFTER_S
            ) from None
        finally:
            watch.waiting -= 1
            watch.waited(time.perf_counter() - started)

    def recreate(self) -> WatchedPool:
        """The fresh pool ``engine.dispose()`` installs keeps reporting to the same watch."""
        fresh = super().recreate()
        assert isinstance(fresh, WatchedPool)
        fresh.watch = self.watch
        self.watch.pool = fresh
        return fresh


def pool_watch(engine: AsyncEngine) -> PoolWatch:
    """The figures of an engine :func:`make_engine` built."""
    pool = engine.sync_engine.pool
    assert isinstance(pool, WatchedPool)
    return pool.watch


def _mysql_session(dbapi_connection: Any, _: Any) -> None:
    """Idle in the pool for up to :data:`RECYCLE_S`, a connection must not be closed by the
    server meanwhile (a server with a lower ``wait_timeout`` would, and without the pre-ping
    the next transaction on it would find out)."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"SET SESSION wait_timeout = GREATEST(@@session.wait_timeout, {2 * RECYCLE_S})")
    cursor.close()


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
