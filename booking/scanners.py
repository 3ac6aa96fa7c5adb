"""Door scanners: a device at a gate, allowed to redeem tickets, revocable.

An admin mints a scanner (:meth:`Scanners.mint`); the server hands it a token of role
``scanner`` that names the scanner, its gate (and its event, when it is bound to one) and the
``token_version`` it was issued under. Revoking (:meth:`Scanners.revoke`) raises the version, as
a customer's "sign out everywhere" does (:mod:`booking.customers`): every node refuses older
tokens once it has read :meth:`Scanners.revocations` (every few seconds; at once on the node
that revoked).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.clock import utcnow
from booking.holds import new_id
from booking.inventory import Inventory
from booking.rows import row_by_id
from booking.schema import scanners

#: Most scanners one event (or the venue, unbound) may have minted: every one stays in the
#: revocation list a node keeps in memory.
MAX_SCANNERS = 1000


@dataclass(frozen=True, slots=True)
class Scanner:
    id: str
    device: str
    gate: str
    event_id: int | None
    token_version: int
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    #: When the token it was minted with expires (``None``: minted before this was recorded).
    expires_at: datetime | None


def _scanner(row: Any) -> Scanner:
    return Scanner(
        row.id, row.device, row.gate, row.event_id, row.token_version, row.created_by,
        row.created_at, row.revoked_at, row.expires_at,
    )  # fmt: skip


class Scanners:
    def __init__(self, engine: AsyncEngine, inventory: Inventory) -> None:
        self.engine = engine
        self.inventory = inventory

    async def mint(
        self, device: str, gate: str, event_id: int | None, by: str, ttl_s: int
    ) -> Scanner:
        """A new scanner, whose token (the caller issues it) lives ``ttl_s`` seconds."""
        if event_id is not None:
            await self.inventory.event(event_id)  # NotFound for an unknown event
        scanner_id = new_id("scn")
        now = utcnow()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(scanners).values(
                    id=scanner_id, device=device, gate=gate, event_id=event_id,
                    token_version=1, created_by=by, created_at=now,
                    expires_at=now + timedelta(seconds=ttl_s),
                )
            )  # fmt: skip
        return await self.get(scanner_id)

    async def get(self, scanner_id: str) -> Scanner:
        async with self.engine.connect() as conn:
            row = await row_by_id(conn, scanners, scanner_id, "no such scanner")
        return _scanner(row)

    async def list(self, event_id: int | None = None) -> list[Scanner]:
        query = select(scanners).order_by(scanners.c.created_at).limit(MAX_SCANNERS)
        if event_id is not None:
            query = query.where(scanners.c.event_id == event_id)
        async with self.engine.connect() as conn:
            return [_scanner(r) for r in await conn.execute(query)]

    async def revoke(self, scanner_id: str) -> Scanner:
        """Every token of this scanner stops working (on this node at once when the caller
        updates its versions, on the others within their refresh)."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(scanners)
                .where(scanners.c.id == scanner_id, scanners.c.revoked_at.is_(None))
                .values(token_version=scanners.c.token_version + 1, revoked_at=utcnow())
            )
        if done.rowcount != 1:
            await self.get(scanner_id)  # NotFound, or revoked before: the same answer
        return await self.get(scanner_id)

    async def revocations(self) -> dict[str, int]:
        """The current token version of every revoked scanner."""
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(scanners.c.id, scanners.c.token_version).where(
                    scanners.c.revoked_at.is_not(None)
                )
            )
            return {row.id: row.token_version for row in found}
