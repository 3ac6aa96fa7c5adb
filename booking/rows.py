"""Reading one row by its key, the lookup behind every ``get`` of the booking core.

A key that names no row is :class:`~booking.errors.NotFound`, the error the edges answer with
404 (REST) or an ``/app`` error reply, worded by the caller (``missing``) since what the user
may learn differs: "no such customer" tells nothing of which ids exist.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from booking.errors import NotFound


async def row_by_id(conn: AsyncConnection, table: Table, key: object, missing: str) -> Row[Any]:
    """The row of ``table`` whose ``id`` is ``key``; :class:`NotFound` saying ``missing`` when
    there is none."""
    row = (await conn.execute(select(table).where(table.c.id == key))).first()
    if row is None:
        raise NotFound(missing)
    return row
