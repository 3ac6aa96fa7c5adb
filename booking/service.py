"""The booking core's one entry point for the edges (REST, STOMP ``/app`` commands).

It keeps each event's :class:`~booking.catalog.EventInfo` and live :class:`~booking.seatmap.SeatMap`
in memory, so reading a seat map or rejecting a hold on a seat already known to be taken costs no
query; every decision that could sell a seat twice is still taken by the database. Seat changes
this node commits are applied to the seat map at once; the server ticks the maps to publish
deltas.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from booking import catalog, holds, orders
from booking.admission import AdmissionSigner
from booking.catalog import EventInfo, EventPatch, EventSpec
from booking.checkout import Checkout, Outcome, recover_payments
from booking.clock import from_unix, iso, utcnow
from booking.demo import demo_event
from booking.errors import InvalidRequest, NotFound, SaleNotOpen, SeatsUnavailable
from booking.holds import Hold
from booking.payments import PaymentProvider
from booking.seatmap import SeatMap
from booking.tickets import TicketSigner
from booking.waiting_room import ADMITTED, InProcessWaitingRoom, Policy, Position, WaitingRoom

log = logging.getLogger(__name__)

ChangeHook = Callable[[int, list[tuple[str, str]], "datetime | None"], None]


@dataclass
class BookingPolicy:
    """Defaults and knobs from the node's settings."""

    hold_ttl_s: int = 300
    max_seats_per_user: int = 4
    payment_timeout_s: float = 10.0
    crash_after_charge: bool = False
    admission_ttl_s: int = 600


@dataclass
class BookingService:
    engine: AsyncEngine
    provider: PaymentProvider
    signer: TicketSigner
    admission: AdmissionSigner
    policy: BookingPolicy = field(default_factory=BookingPolicy)
    waiting_room: WaitingRoom = field(default_factory=InProcessWaitingRoom)

    def __post_init__(self) -> None:
        self._events: dict[int, EventInfo] = {}
        self._maps: dict[int, SeatMap] = {}
        self._loading: dict[int, asyncio.Future[tuple[EventInfo, SeatMap]]] = {}
        self.checkout_flow = Checkout(
            self.engine,
            self.provider,
            self.signer,
            self.policy.payment_timeout_s,
            self.policy.crash_after_charge,
        )
        #: Seat claims under way on this node, by (event, seat): later requests for those
        #: seats wait for the outcome instead of racing to the database.
        self._claims: dict[tuple[int, str], asyncio.Future[None]] = {}
        #: Counts of hold decisions taken from memory vs by the database (for benchmarks).
        self.decisions = {"memory": 0, "database": 0}
        #: Told of every seat change this node commits (cluster mode shares them with the
        #: other nodes, which apply them with :meth:`apply_remote`).
        self.on_changes: ChangeHook | None = None

    # -- events ------------------------------------------------------------------------------

    async def _load(self, event_id: int) -> tuple[EventInfo, SeatMap]:
        if event_id in self._maps:
            return self._events[event_id], self._maps[event_id]
        pending = self._loading.get(event_id)
        if pending is None:
            pending = self._loading[event_id] = asyncio.ensure_future(self._read(event_id))
        try:
            info, seatmap = await asyncio.shield(pending)
        finally:
            if pending.done():
                self._loading.pop(event_id, None)
        return info, seatmap

    async def _read(self, event_id: int) -> tuple[EventInfo, SeatMap]:
        async with self.engine.connect() as conn:
            info = await catalog.load_event(conn, event_id)
            statuses, expiry = await catalog.load_seat_state(conn, event_id, utcnow())
        seatmap = SeatMap(event_id, statuses, expiry)
        self._events[event_id] = info
        self._maps[event_id] = seatmap
        return info, seatmap

    async def event(self, event_id: int) -> EventInfo:
        return (await self._load(event_id))[0]

    async def seat_map(self, event_id: int) -> SeatMap:
        return (await self._load(event_id))[1]

    async def reload_seat_map(self, event_id: int) -> SeatMap:
        """Re-read an event's seat statuses from the database (after missing changes)."""
        async with self.engine.connect() as conn:
            statuses, expiry = await catalog.load_seat_state(conn, event_id, utcnow())
        seatmap = SeatMap(event_id, statuses, expiry)
        self._maps[event_id] = seatmap
        return seatmap

    def loaded_maps(self) -> list[SeatMap]:
        return list(self._maps.values())

    async def events(self) -> list[EventInfo]:
        async with self.engine.connect() as conn:
            ids = await catalog.list_event_ids(conn)
        return [await self.event(i) for i in ids]

    async def create_event(self, spec: EventSpec) -> EventInfo:
        event_id = await catalog.create_event(
            self.engine,
            spec,
            hold_ttl_s=self.policy.hold_ttl_s,
            max_seats_per_user=self.policy.max_seats_per_user,
        )
        return await self.event(event_id)

    async def update_event(self, event_id: int, patch: EventPatch) -> EventInfo:
        async with self.engine.begin() as conn:
            await catalog.update_event(conn, event_id, patch)
            fresh = await catalog.load_event(conn, event_id)
        if event_id in self._events:
            # Keep the seat layout and map; refresh the settings in place.
            current = self._events[event_id]
            for name in ("status", "waiting_room", "admission_rate", "max_active_shoppers",
                         "hold_ttl_s", "max_seats_per_user"):  # fmt: skip
                setattr(current, name, getattr(fresh, name))
            return current
        return await self.event(event_id)

    async def ensure_demo(self) -> EventInfo | None:
        """Seed the demo event when there is no event at all."""
        async with self.engine.connect() as conn:
            if await catalog.list_event_ids(conn):
                return None
        return await self.create_event(demo_event())

    # -- holds -------------------------------------------------------------------------------

    async def hold(
        self, event_id: int, user: str, seat_ids: list[str], admission_token: str | None = None
    ) -> Hold:
        info, seatmap = await self._load(event_id)
        now = utcnow()
        holds.validate_request(info, seat_ids, now)
        if info.waiting_room:
            self.admission.verify(admission_token, event_id, user)
        while True:
            taken = seatmap.unavailable(seat_ids, now)
            if taken:
                # Known taken on this node: answer without a round trip. (The database would
                # say the same; a stale "available" here is harmless, the database decides.)
                self.decisions["memory"] += 1
                raise SeatsUnavailable("some seats are not available", conflicts=sorted(taken))
            claims = {c for s in seat_ids if (c := self._claims.get((event_id, s))) is not None}
            if not claims:
                break
            # This node is claiming some of these seats right now: its outcome decides ours
            # more cheaply than a round trip doomed to conflict. (Every grant is still the
            # database's; this only spares it requests that would lose.)
            await asyncio.wait(claims)
            now = utcnow()
        self.decisions["database"] += 1
        claim: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        keys = [(event_id, s) for s in seat_ids]
        for key in keys:
            self._claims[key] = claim
        try:
            hold = await holds.place_hold(self.engine, info, user, seat_ids, now)
        except SeatsUnavailable as exc:
            # Taken by another node whose news has not arrived yet: believe it for a moment,
            # without publishing the guess, so the next request is answered from memory.
            conflicts = exc.extra.get("conflicts", [])
            seatmap.hint_taken(conflicts, now, now + timedelta(seconds=1))
            raise
        finally:
            for key in keys:
                if self._claims.get(key) is claim:
                    del self._claims[key]
            claim.set_result(None)
        self._apply(event_id, holds.held_changes(hold), hold.expires_at)
        return hold

    async def release(self, hold_id: str, user: str) -> Hold:
        hold, changes = await holds.release_hold(self.engine, hold_id, user, utcnow())
        self._apply(hold.event_id, changes)
        return hold

    async def get_hold(self, hold_id: str, user: str) -> Hold:
        async with self.engine.connect() as conn:
            hold = await holds.get_hold(conn, hold_id)
        if hold.user_id != user:
            raise NotFound(f"no hold {hold_id}")
        return hold

    def _apply(
        self, event_id: int, changes: list[tuple[str, str]], expires_at: datetime | None = None
    ) -> None:
        if not changes:
            return
        self.apply_remote(event_id, changes, expires_at)
        if self.on_changes is not None:
            self.on_changes(event_id, changes, expires_at)

    def apply_remote(
        self, event_id: int, changes: list[tuple[str, str]], expires_at: datetime | None = None
    ) -> None:
        """Apply seat changes (committed here or by another node) to the in-memory map."""
        if event_id in self._maps:
            self._maps[event_id].apply(changes, expires_at)

    async def reap(self) -> int:
        """Free lapsed holds (a background task calls this every second)."""
        changed = await holds.reap_expired(self.engine, utcnow())
        for event_id, changes in changed.items():
            self._apply(event_id, changes)
        return sum(len(c) for c in changed.values())

    # -- waiting room ------------------------------------------------------------------------

    def queue_policy(self, info: EventInfo, now: datetime | None = None) -> Policy:
        now = now or utcnow()
        return Policy(
            open=info.on_sale(now),
            paused=info.status == "paused",
            rate_per_s=info.admission_rate,
            max_active=info.max_active_shoppers,
            admission_ttl_s=self.policy.admission_ttl_s,
        )

    async def join_queue(self, event_id: int, user: str) -> Position:
        """Join the event's waiting room (idempotent: re-joining keeps the place)."""
        info = await self.event(event_id)
        if not info.waiting_room:
            raise InvalidRequest("this event has no waiting room: hold seats directly")
        now = utcnow()
        if info.status not in ("on_sale", "paused") or now >= info.sale_closes_at:
            raise SaleNotOpen("this sale is not open")
        return await self.waiting_room.join(event_id, user, self.queue_policy(info, now))

    async def queue_position(self, event_id: int, user: str) -> Position:
        info = await self.event(event_id)
        found = await self.waiting_room.position(event_id, user, self.queue_policy(info))
        if found is None:
            raise NotFound("you have not joined this waiting room")
        return found

    def position_view(self, position: Position) -> dict[str, object]:
        """The body of a position message (SPEC §6), with a fresh admission token (bound to the
        admission's own expiry) when the user is admitted: the same for STOMP and REST."""
        view = position.as_dict()
        if position.state == ADMITTED and position.admitted_until is not None:
            until = position.admitted_until
            view["admission_token"] = self.admission.issue(position.event_id, position.user, until)
            view["expires_at"] = iso(from_unix(until))
        return view

    def waiting_room_events(self) -> list[EventInfo]:
        """Loaded events whose waiting room is on (the admission scheduler's work list)."""
        return [info for info in self._events.values() if info.waiting_room]

    # -- checkout and orders -----------------------------------------------------------------

    async def checkout(self, user: str, hold_id: str, key: str, payment: dict[str, Any]) -> Outcome:
        outcome = await self.checkout_flow.run(user=user, hold_id=hold_id, key=key, payment=payment)
        if outcome.event_id is not None:
            self._apply(outcome.event_id, list(outcome.seat_changes))
            if outcome.ok and not outcome.replayed:
                # A purchase uses the admission up: make room for the next in line. Best effort:
                # the order is committed, and an admission left unmarked expires by itself.
                try:
                    await self.waiting_room.complete(outcome.event_id, user)
                except Exception:
                    log.warning("could not mark %s's admission used", user, exc_info=True)
        return outcome

    async def recover(self) -> int:
        grace = timedelta(seconds=2 * self.policy.payment_timeout_s + 1)
        return await recover_payments(self.engine, self.provider, grace)

    async def order(self, order_id: str, user: str | None) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            return await orders.get_order(conn, order_id, user)

    async def cancel(self, order_id: str, user: str | None) -> dict[str, Any]:
        body, event_id, changes = await orders.cancel_order(
            self.engine, self.provider, order_id, user
        )
        self._apply(event_id, changes)
        return body

    async def ticket(self, code: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            return await orders.verify_ticket(conn, self.signer, code)
