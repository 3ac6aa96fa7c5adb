"""Bringing a database schema up to date with Alembic (``concert-hub migrate``).

The Alembic environment lives in ``booking/migrations`` and is configured here in code, so no
``alembic.ini`` has to be kept in step with the settings.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None, url: str = "") -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


class DatabaseNotReady(Exception):
    """A node cannot start on this database: it cannot be reached, or its schema lacks
    migrations this code needs. The message is one line for the operator."""


def _where(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=True).split("@")[-1]


async def upgrade(engine: AsyncEngine) -> None:
    """Apply every pending migration."""
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
    except DBAPIError as exc:
        where = _where(engine)
        raise DatabaseNotReady(f"cannot migrate the database at {where}: {exc.orig}") from None
    except CommandError as exc:  # a revision this code does not know (a newer node migrated)
        raise DatabaseNotReady(f"cannot migrate the database at {_where(engine)}: {exc}") from None


def _pending(connection: Connection) -> list[str]:
    """The migrations this code has that the database lacks (none where the database is at a
    revision this code does not know: a newer version migrated it, and migrations only add, so
    an older node still runs on it during a rolling upgrade)."""
    current = MigrationContext.configure(connection).get_current_heads()
    script = ScriptDirectory.from_config(alembic_config())
    if not all(_known(script, r) for r in current):
        return []
    return [
        r.revision
        for r in script.iterate_revisions("heads", current or "base")
        if r is not None and r.revision not in current
    ]


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


async def require_current(engine: AsyncEngine) -> None:
    """Refuse to start a node on a database it cannot reach or whose schema is behind the code
    (``concert-hub migrate`` brings it up to date): one line saying so, not the traceback of
    the first query that fails."""
    try:
        async with engine.connect() as conn:
            pending = await conn.run_sync(_pending)
    except DBAPIError as exc:
        where = _where(engine)
        raise DatabaseNotReady(f"cannot reach the database at {where}: {exc.orig}") from None
    if pending:
        raise DatabaseNotReady(
            f"the database at {_where(engine)} lacks {len(pending)} migration(s) of this "
            "version (it was never migrated, or by an older one): run `concert-hub migrate`"
        )
