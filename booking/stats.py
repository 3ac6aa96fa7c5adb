"""Sale statistics for operators (``GET /api/admin/stats``): seats, holds, sales, queues.

Seat counts come from this node's seat maps (a held seat whose hold lapsed counts as available);
holds and sales from the tables, so every node reports the same figures for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from booking.catalog import EventInfo
from booking.core import BookingCore
from booking.outflow import Rate
from booking.schema import holds, orders
from booking.waiting_room import Stats as QueueStats


@dataclass(frozen=True, slots=True)
class EventFigures:
    event: EventInfo
    #: Seats by status (every status of :data:`~booking.seatmap.STATUSES`, zeros included).
    seats: dict[str, int]
    holds_active: int
    #: The waiting room's figures, when it is on.
    queue: QueueStats | None
    #: The admission rate now and why (adaptive mode: :mod:`booking.outflow`).
    rate: Rate | None = None


@dataclass(frozen=True, slots=True)
class SaleStats:
    holds_active: int
    #: Orders paid in the last 60 seconds.
    sales_per_min: int
    events: list[EventFigures]


async def sale_stats(core: BookingCore, now: datetime) -> SaleStats:
    async with core.engine.connect() as conn:
        active = await conn.execute(
            select(holds.c.event_id, func.count())
            .where(holds.c.status == "active", holds.c.expires_at > now)
            .group_by(holds.c.event_id)
        )
        holds_by_event: dict[int, int] = {row[0]: int(row[1]) for row in active}
        sales = await conn.scalar(
            select(func.count())
            .select_from(orders)
            .where(orders.c.created_at > now - timedelta(minutes=1))
        )
    figures = []
    for info in await core.inventory.events():
        seatmap = await core.inventory.seat_map(info.id)
        queue = await core.admissions.room.stats(info.id) if info.waiting_room else None
        figures.append(
            EventFigures(
                event=info,
                seats=seatmap.counts(now),
                holds_active=holds_by_event.get(info.id, 0),
                queue=queue,
                rate=core.admissions.outflow.describe(info) if info.waiting_room else None,
            )
        )
    return SaleStats(sum(holds_by_event.values()), int(sales or 0), figures)
