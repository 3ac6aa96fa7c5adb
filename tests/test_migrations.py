"""The Alembic migrations build exactly the schema booking/schema.py declares, on both backends.

A change to the tables without a migration (or a migration that drifts) fails here, not in
production.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from booking.schema import metadata
from tests.conftest import migrate


def test_migrations_match_the_declared_schema(database_url: str) -> None:
    migrate(database_url)
    sync_url = database_url.replace("+aiosqlite", "").replace("+aiomysql", "+pymysql")
    engine = create_engine(sync_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
