"""What is for sale, as this node holds it in memory: each event's info and seat availability.

Reading an event or its seat map, and refusing a hold on a seat known to be taken, cost no query:
an event is read from the tables once (concurrent first readers share the one read) and kept.
The tables stay the record: every decision that could sell a seat twice is the database's.

Every seat change a booking service commits comes through :meth:`Inventory.record`, which applies
it to this node's map and hands it to the one listener (the server's seat stream, which sequences
it into the deltas every node and client sees). What other nodes committed arrives through
:meth:`Inventory.learn`. Likewise a change of an event's settings (status, waiting room, rates,
caps, hold TTL, per-user limit …) is told to the event-change listener, and another node's change
is taken in with :meth:`Inventory.refresh`, which re-reads the settings from the database.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking import audit, catalog
from booking.audit import Staff
from booking.best_available import BlockFinder
from booking.catalog import EventInfo, EventPatch, EventSpec, SeatAccessPatch
from booking.clock import utcnow
from booking.demo import demo_event
from booking.seatmap import AVAILABLE, HELD, SeatChange, SeatMap, SeatStatuses

SeatChangeListener = Callable[[SeatChange], None]
#: Told the id of an event whose settings this node changed.
EventChangeListener = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class EventDefaults:
    """What a new event gets when its creator does not say (the node's settings)."""

    hold_ttl_s: int = 300
    max_seats_per_user: int = 4


def _nobody(_: object) -> None:
    pass


async def _audit(
    conn: AsyncConnection, by: Staff | None, action: str, event_id: int, details: dict[str, Any]
) -> None:
    """Record a staff member's change of an event in the change's own transaction (none for
    the node's own changes: the demo event, tests)."""
    if by is not None:
        target = f"event:{event_id}"
        await audit.record(conn, by.actor, action, target, reason=by.reason, details=details)


class Inventory:
    def __init__(self, engine: AsyncEngine, defaults: EventDefaults | None = None) -> None:
        self.engine = engine
        self.defaults = defaults or EventDefaults()
        self._events: dict[int, EventInfo] = {}
        self._maps: dict[int, SeatMap] = {}
        self._finders: dict[int, BlockFinder] = {}
        self._loading: dict[int, asyncio.Future[tuple[EventInfo, SeatMap]]] = {}
        self._listener: SeatChangeListener = _nobody
        self._listening = False
        self._event_listener: EventChangeListener = _nobody

    def listen(self, listener: SeatChangeListener) -> None:
        """Hand every committed seat change to ``listener`` (one listener per inventory)."""
        if self._listening:
            raise RuntimeError("the inventory already has its seat-change listener")
        self._listener = listener
        self._listening = True

    def listen_to_events(self, listener: EventChangeListener) -> None:
        """Tell ``listener`` of every change to an event's settings made through this node."""
        self._event_listener = listener

    # -- events ------------------------------------------------------------------------------

    async def load(self, event_id: int) -> tuple[EventInfo, SeatMap]:
        if event_id in self._maps:
            return self._events[event_id], self._maps[event_id]
        pending = self._loading.get(event_id)
        if pending is None:
            pending = self._loading[event_id] = asyncio.ensure_future(self._read(event_id))
        try:
            return await asyncio.shield(pending)
        finally:
            if pending.done():
                self._loading.pop(event_id, None)

    async def _read(self, event_id: int) -> tuple[EventInfo, SeatMap]:
        async with self.engine.connect() as conn:
            info = await catalog.load_event(conn, event_id)
            statuses, expiry = await catalog.load_seat_state(conn, event_id, utcnow())
        seatmap = SeatMap(event_id, statuses, expiry)
        # Rows, adjacency and ranking worked out once per event, not per request.
        self._finders[event_id] = BlockFinder(info, seatmap)
        self._events[event_id] = info
        self._maps[event_id] = seatmap
        return info, seatmap

    async def event(self, event_id: int) -> EventInfo:
        return (await self.load(event_id))[0]

    async def public_event(self, event_id: int) -> EventInfo:
        """An event as the public may see it (:meth:`EventInfo.public`)."""
        return (await self.event(event_id)).public()

    async def seat_map(self, event_id: int) -> SeatMap:
        return (await self.load(event_id))[1]

    def block_finder(self, event_id: int) -> BlockFinder:
        """The best-available search of an event this node has loaded (:meth:`load`)."""
        return self._finders[event_id]

    async def reload_seat_map(self, event_id: int) -> SeatMap:
        """Re-read an event's seat statuses from the database (after missing changes)."""
        async with self.engine.connect() as conn:
            statuses, expiry = await catalog.load_seat_state(conn, event_id, utcnow())
        seatmap = SeatMap(event_id, statuses, expiry)
        self._maps[event_id] = seatmap
        finder = self._finders.get(event_id)
        if finder is not None:
            finder.attach(seatmap)
        return seatmap

    async def recorded_statuses(self, event_id: int, seat_ids: Collection[str]) -> dict[str, str]:
        """What the database says of ``seat_ids`` now (the record), whatever this node's map
        has heard."""
        wanted, found = list(seat_ids), {}
        async with self.engine.connect() as conn:
            for start in range(0, len(wanted), 1000):  # within every database's bound parameters
                chunk = wanted[start : start + 1000]
                statuses, _ = await catalog.load_seat_state(conn, event_id, utcnow(), chunk)
                found.update(statuses)
        return found

    def loaded(self) -> list[EventInfo]:
        """Events this node has in memory (the ones its background work attends to)."""
        return list(self._events.values())

    def live_seat_counts(self) -> list[tuple[int, dict[str, int]]]:
        """Seats by status of every live event this node has in memory (what ``/metrics``
        reports; see :meth:`SeatMap.counts`)."""
        now = utcnow()
        return [
            (event_id, self._maps[event_id].counts(now))
            for event_id, info in self._events.items()
            if info.live(now) and event_id in self._maps
        ]

    def supply(self, event_id: int) -> tuple[int, int] | None:
        """Seats of a loaded event that are available, and held (a lapsed hold not yet reaped
        counts as held: its seats are about to be offered back), or ``None`` if not loaded."""
        seatmap = self._maps.get(event_id)
        if seatmap is None:
            return None
        counts = Counter(seatmap.statuses.values())
        return counts[AVAILABLE], counts[HELD]

    async def load_live_waiting_rooms(self) -> None:
        """Load every event whose waiting room is live, whether or not this node was asked about
        it yet: the waiting room is the cluster's, and a node that has not loaded an event
        neither admits from its queue nor tells its own subscribers where they stand (a node
        just started, or one that a buyer's WebSocket reached while their requests went to
        another)."""
        async with self.engine.connect() as conn:
            found = await catalog.live_waiting_room_ids(conn, utcnow())
        for event_id in found:
            if event_id not in self._maps:
                await self.load(event_id)

    async def events(self, *, drafts: bool = True) -> list[EventInfo]:
        async with self.engine.connect() as conn:
            ids = await catalog.list_event_ids(conn, drafts=drafts)
        return [await self.event(i) for i in ids]

    async def create_event(self, spec: EventSpec, by: Staff | None = None) -> EventInfo:
        """Store a new event; ``by``: the staff member it is audited for, in its transaction."""
        async with self.engine.begin() as conn:
            event_id = await catalog.create_event(
                conn,
                spec,
                hold_ttl_s=self.defaults.hold_ttl_s,
                max_seats_per_user=self.defaults.max_seats_per_user,
            )
            details = {"name": spec.name, "status": spec.status, "seats": spec.layout.seat_count()}
            await _audit(conn, by, "event.create", event_id, details)
        return await self.event(event_id)

    async def update_event(
        self, event_id: int, patch: EventPatch, by: Staff | None = None
    ) -> EventInfo:
        async with self.engine.begin() as conn:
            before = await catalog.load_settings(conn, event_id)
            await catalog.update_event(conn, event_id, patch)
            fresh = await catalog.load_settings(conn, event_id)
            # The log names what changed: a form saved as it was (or an empty PATCH) changed
            # nothing, and members given at their current value are not changes either.
            changed = {
                name: value
                for name, value in patch.changes().items()
                if getattr(before, name) != getattr(fresh, name)
            }
            if changed:
                await _audit(conn, by, "event.update", event_id, changed)
        current = self._events.get(event_id)
        if current is not None:
            current.take_settings(fresh)  # the layout and the seat map stay
        self._event_listener(event_id)
        return current if current is not None else await self.event(event_id)

    async def refresh(self, event_id: int) -> None:
        """Re-read a loaded event's settings and seat attributes (another node changed them,
        or may have)."""
        current = self._events.get(event_id)
        if current is None:
            return  # read in full when first needed
        async with self.engine.connect() as conn:
            current.take_settings(await catalog.load_settings(conn, event_id))
            access = await catalog.load_access(conn, event_id)
        self._take_access(current, access)

    def _take_access(self, info: EventInfo, access: dict[str, str]) -> None:
        version = info.layout_version
        info.take_access(access)
        if info.layout_version != version:
            self._finders[info.id].relayout(info)

    async def mark_seats(
        self, event_id: int, patch: SeatAccessPatch, by: Staff | None = None
    ) -> EventInfo:
        """Mark seats as wheelchair spaces, companion seats or ordinary seats (admin)."""
        info = await self.event(event_id)
        changes = patch.changes(info.seats)
        async with self.engine.begin() as conn:
            await catalog.mark_seats(conn, event_id, changes)
            await _audit(conn, by, "event.seats", event_id, patch.model_dump(exclude_defaults=True))
        access = {**info.access, **changes}
        self._take_access(info, {seat_id: kind for seat_id, kind in access.items() if kind})
        self._event_listener(event_id)  # every other node re-reads them
        return info

    async def ensure_demo(self) -> EventInfo | None:
        """Seed the demo event when there is no event at all."""
        async with self.engine.connect() as conn:
            if await catalog.list_event_ids(conn):
                return None
        return await self.create_event(demo_event())

    # -- seat changes ------------------------------------------------------------------------

    def record(self, change: SeatChange) -> None:
        """A change this node just committed: into its map, then to the listener."""
        if not change.seats:
            return
        seatmap = self._maps.get(change.event_id)
        if seatmap is not None:
            seatmap.apply(change)
        self._listener(change)

    def learn(self, event_id: int, seats: SeatStatuses, now: datetime) -> None:
        """The cluster's conflated statuses of an event (other nodes' changes among them)."""
        seatmap = self._maps.get(event_id)
        if seatmap is not None:
            ttl = timedelta(seconds=self._events[event_id].hold_ttl_s)
            seatmap.learn(seats, now + ttl)
