"""The audit log: every staff action — who, what, to what, when, and why.

An action is written in the same transaction as the change it records (:func:`record`), so the
log never shows an action that did not happen nor misses one that did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from booking.clock import utcnow
from booking.schema import audit_log


@dataclass(frozen=True, slots=True)
class Staff:
    """A staff member acting (on an order, an event): the sale's policy does not bind them, the
    audit log records them, with the reason they gave (``""``: none)."""

    actor: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str | None
    details: dict[str, Any]


async def record(
    conn: AsyncConnection,
    actor: str,
    action: str,
    target: str,
    *,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        insert(audit_log).values(
            at=utcnow(), actor=actor, action=action, target=target, reason=reason or None,
            details=json.dumps(details) if details else None,
        )
    )  # fmt: skip


async def entries(
    conn: AsyncConnection, target: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """The newest entries first (about ``target`` only, when given)."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if target is not None:
        query = query.where(audit_log.c.target == target)
    return [
        AuditEntry(
            id=row.id, at=row.at, actor=row.actor, action=row.action, target=row.target,
            reason=row.reason, details=json.loads(row.details) if row.details else {},
        )
        for row in await conn.execute(query)
    ]  # fmt: skip
