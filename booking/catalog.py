"""Events, their price tiers and seats: creating, reading and changing them.

Reads for the hot path come from :class:`EventInfo`, loaded once per event and kept in memory by
:class:`~booking.service.BookingService`; the tables stay the record.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Collection, Container, Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool, ValidationInfo, field_validator
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from booking.clock import to_db, utcnow
from booking.errors import InvalidRequest, NotFound
from booking.layout import LayoutSpec, Printable, SeatIds, access_of, expand
from booking.rows import row_by_id
from booking.schema import events, price_tiers, seats
from booking.seatmap import AVAILABLE, BLOCKED, HELD, SOLD

EventStatus = Literal["draft", "on_sale", "paused", "closed"]
AdmissionMode = Literal["fixed", "adaptive"]
#: The highest proof-of-work difficulty (leading zero bits) an admin may ask for.
MAX_DIFFICULTY = 32

#: The largest integer an INT column holds on MariaDB (signed 32 bits): every id or count an
#: admin may give is bounded by it or less, so that no input overflows a column.
MAX_INT = 2**31 - 1
#: Admissions per second a waiting room may be set to.
MAX_ADMISSION_RATE = 10_000.0
MAX_ACTIVE_SHOPPERS = 1_000_000
FIRST_YEAR, LAST_YEAR = 2000, 9998


def in_clock_range(value: datetime) -> datetime:
    """An instant the database and the clock can hold, in any offset: its UTC year within
    [FIRST_YEAR, LAST_YEAR]."""
    try:
        year = to_db(value).year
    except OverflowError:
        year = 0
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"must be in the years {FIRST_YEAR} to {LAST_YEAR} (UTC)")
    return value


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def known_zone(name: str) -> str:
    """An IANA time zone name the node knows (``Europe/Berlin``, ``UTC``)."""
    if name not in _zone_names():
        raise ValueError("unknown time zone: give an IANA name such as Europe/Berlin or UTC")
    return name


TimeZoneName = Annotated[
    str,
    AfterValidator(known_zone),
    Field(
        max_length=64,
        description="the venue's time zone (IANA name): tickets, e-mails and the pages give "
        "the event's times in it",
        examples=["Europe/Berlin"],
    ),
]


def local_time(event: EventInfo, instant: datetime) -> datetime:
    """``instant`` (naive UTC, as stored) on the clocks of the event's venue."""
    return instant.replace(tzinfo=UTC).astimezone(zoneinfo.ZoneInfo(event.timezone))


Instant = Annotated[
    datetime,
    AfterValidator(in_clock_range),
    Field(description=f"RFC 3339, in the years {FIRST_YEAR} to {LAST_YEAR} (UTC)"),
]
AdmissionRate = Annotated[
    float,
    Field(gt=0, le=MAX_ADMISSION_RATE, allow_inf_nan=False, description="admissions per second"),
]
ActiveShoppers = Annotated[int, Field(ge=1, le=MAX_ACTIVE_SHOPPERS)]


class EventSpec(BaseModel):
    """What an admin gives to create an event (SPEC §5 ``POST /api/admin/events``)."""

    name: Printable = Field(min_length=1, max_length=200)
    venue: Printable = Field(min_length=1, max_length=200)
    starts_at: Instant
    sale_opens_at: Instant
    sale_closes_at: Instant
    status: EventStatus = "draft"
    timezone: TimeZoneName = "UTC"
    waiting_room: StrictBool = False
    admission_rate: AdmissionRate = 10.0
    max_active_shoppers: ActiveShoppers = 500
    admission_mode: AdmissionMode = Field(
        default="fixed",
        description="fixed: admission_rate; adaptive: the rate follows the booking core's "
        "health between admission_rate_min and admission_rate_max, starting at admission_rate",
    )
    admission_rate_min: AdmissionRate = Field(default=1.0, description="adaptive: lowest rate")
    admission_rate_max: AdmissionRate = Field(default=100.0, description="adaptive: highest rate")
    pow_difficulty: int = Field(
        default=0, ge=0, le=MAX_DIFFICULTY,
        description="joining the waiting room costs a proof of work with this many leading "
        "zero bits (0: none)",
    )  # fmt: skip
    hold_ttl_s: int | None = Field(default=None, ge=10, le=3600)
    max_seats_per_user: int | None = Field(default=None, ge=1, le=100)
    refund_cutoff_hours: int | None = Field(
        default=24,
        ge=0,
        le=8760,
        description="buyers may cancel (and are refunded) until this many hours before the "
        "start; null: buyers may not cancel (staff still may)",
    )
    layout: LayoutSpec

    # Rules across fields are checked on the later field, so that a refusal names the field
    # to change (``errors[].loc``) rather than the whole body; a field that failed on its own
    # is missing from ``info.data`` and its rule is not checked.

    @field_validator("sale_closes_at")
    @classmethod
    def _after_opening(cls, closes: datetime, info: ValidationInfo) -> datetime:
        opens = info.data.get("sale_opens_at")
        if opens is not None and to_db(closes) <= to_db(opens):
            raise ValueError("must be after sale_opens_at")
        return closes

    @field_validator("admission_rate_max")
    @classmethod
    def _not_below_lowest(cls, highest: float, info: ValidationInfo) -> float:
        lowest = info.data.get("admission_rate_min")
        if lowest is not None and lowest > highest:
            raise ValueError("must not be below admission_rate_min")
        return highest

    @field_validator("layout")
    @classmethod
    def _not_too_large(cls, layout: LayoutSpec) -> LayoutSpec:
        if layout.seat_count() > 100_000:
            raise ValueError("at most 100,000 seats per event")
        return layout


class EventPatch(BaseModel):
    """What an admin may change on a live event (SPEC §5 ``PATCH /api/admin/events/{id}``)."""

    status: EventStatus | None = None
    timezone: TimeZoneName | None = None
    waiting_room: StrictBool | None = None
    admission_rate: AdmissionRate | None = None
    max_active_shoppers: ActiveShoppers | None = None
    admission_mode: AdmissionMode | None = None
    admission_rate_min: AdmissionRate | None = None
    admission_rate_max: AdmissionRate | None = None
    pow_difficulty: int | None = Field(default=None, ge=0, le=MAX_DIFFICULTY)
    hold_ttl_s: int | None = Field(default=None, ge=10, le=3600)
    max_seats_per_user: int | None = Field(default=None, ge=1, le=100)
    refund_cutoff_hours: int | None = Field(
        default=None,
        ge=0,
        le=8760,
        description="buyers may cancel until this many hours before the start; an explicit "
        "null: buyers may not cancel at all; omitted: unchanged",
    )

    def changes(self) -> dict[str, Any]:
        """The members given: ``null`` means "unchanged" except for the refund policy, where
        it means "no cancellations"."""
        given = self.model_dump(exclude_unset=True)
        return {k: v for k, v in given.items() if v is not None or k in _NULLABLE}


#: Settings where ``null`` is a value of its own.
_NULLABLE = frozenset({"refund_cutoff_hours"})

#: The members of :class:`EventInfo` an admin may change on a live event.
_SETTINGS = tuple(EventPatch.model_fields)


class SeatAccessPatch(BaseModel):
    """Seat attributes an admin sets on an existing event; seats not named keep theirs."""

    accessible: SeatIds = Field(default_factory=list, description="become wheelchair spaces")
    companion: SeatIds = Field(default_factory=list, description="become companion seats")
    standard: SeatIds = Field(default_factory=list, description="become ordinary seats again")

    def changes(self, known: Container[str]) -> dict[str, str]:
        """seat id → its new attribute (``""`` for an ordinary seat); a seat that does not
        exist or is named twice is a :class:`~booking.errors.InvalidRequest`."""
        try:
            marked = access_of(self.accessible, self.companion, known)
            twice = sorted(marked.keys() & set(self.standard))
            if twice:
                raise ValueError(f"seats named twice: {', '.join(twice[:20])}")
            unmarked = access_of(self.standard, [], known)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        return {**dict.fromkeys(unmarked, ""), **marked}


@dataclass(frozen=True, slots=True)
class Tier:
    id: int
    name: str
    price_cents: int
    currency: str


@dataclass(slots=True)
class EventInfo:
    id: int
    name: str
    venue: str
    starts_at: datetime
    sale_opens_at: datetime
    sale_closes_at: datetime
    status: str
    waiting_room: bool
    admission_rate: float
    max_active_shoppers: int
    hold_ttl_s: int
    max_seats_per_user: int
    refund_cutoff_hours: int | None = 24
    admission_mode: str = "fixed"
    admission_rate_min: float = 1.0
    admission_rate_max: float = 100.0
    pow_difficulty: int = 0
    #: The venue's time zone (IANA name), for showing the event's times.
    timezone: str = "UTC"
    tiers: dict[int, Tier] = field(default_factory=dict)
    #: seat id → (section, row, number, tier id), in layout order.
    seats: dict[str, tuple[str, str, int, int]] = field(default_factory=dict)
    #: seat id → ``"accessible"`` or ``"companion"``, for the seats so marked (admins may
    #: change these on a live event: :meth:`~booking.inventory.Inventory.mark_seats`).
    access: dict[str, str] = field(default_factory=dict)
    #: Counts changes of ``access`` on this node, so what was worked out from the layout (an
    #: encoded layout, the best-available rows) knows when to be worked out again.
    layout_version: int = 0
    #: When the event was created (naive UTC); ``None`` for an event not read from the table.
    created_at: datetime | None = None
    #: seat id → its place in the layout, worked out on first use (:meth:`in_layout_order`).
    _ordinals: dict[str, int] | None = field(default=None, repr=False, compare=False)

    def take_access(self, access: dict[str, str]) -> None:
        """Adopt these seat attributes (when they differ from the ones held)."""
        if access != self.access:
            self.access = access
            self.layout_version += 1

    def take_settings(self, other: EventInfo) -> None:
        """Adopt what ``PATCH`` may change from a fresher read (layout and tiers never change)."""
        for name in _SETTINGS:
            setattr(self, name, getattr(other, name))

    def public(self) -> EventInfo:
        """The event as a buyer may reach it: a draft is not there (only admins see drafts),
        and every buyer path (seat map, holds, the waiting room) says so alike, so a 409
        "not on sale" never tells the public that an unannounced event exists."""
        if self.status == "draft":
            raise NotFound(f"no event {self.id}")
        return self

    def on_sale(self, now: datetime) -> bool:
        return self.status == "on_sale" and self.sale_opens_at <= now < self.sale_closes_at

    def live(self, now: datetime) -> bool:
        """On sale or paused, and not yet closed: its waiting room takes joins, and the node
        reports it (seats, queue) in ``/metrics``. Before opening, an event on sale is live
        already (its pre-queue fills)."""
        return self.status in ("on_sale", "paused") and now < self.sale_closes_at

    def in_layout_order(self, seat_ids: Iterable[str]) -> list[str]:
        """``seat_ids`` as the layout has them (row C's seat 9 before its seat 10, which the ids'
        own order puts after it): holds, conflicts and tickets are listed this way. Ids the
        layout lacks go last."""
        ordinals = self._ordinals
        if ordinals is None:
            ordinals = self._ordinals = {seat_id: i for i, seat_id in enumerate(self.seats)}
        last = len(ordinals)
        return sorted(seat_ids, key=lambda seat_id: (ordinals.get(seat_id, last), seat_id))

    def price(self, seat_ids: list[str]) -> tuple[int, str]:
        """Total price and currency of ``seat_ids`` (all tiers of an event share a currency)."""
        total = 0
        currency = next(iter(self.tiers.values())).currency
        for seat_id in seat_ids:
            tier = self.tiers[self.seats[seat_id][3]]
            total += tier.price_cents
        return total, currency


#: The settings of an :class:`EventSpec` that its ``events`` row stores as given.
_STORED_AS_GIVEN = (
    "name", "venue", "status", "waiting_room", "admission_rate", "max_active_shoppers",
    "admission_mode", "admission_rate_min", "admission_rate_max", "pow_difficulty",
    "refund_cutoff_hours", "timezone",
)  # fmt: skip
#: The fields of an :class:`EventInfo` read from its ``events`` row (one column each).
_INFO_COLUMNS = tuple(f.name for f in fields(EventInfo) if f.name in events.c)


async def create_event(
    conn: AsyncConnection, spec: EventSpec, *, hold_ttl_s: int, max_seats_per_user: int
) -> int:
    """Store a new event (in the caller's transaction); its id."""
    currencies = {t.currency for t in spec.layout.tiers}
    if len(currencies) != 1:
        raise InvalidRequest("all price tiers of an event must use one currency")
    try:
        layout = expand(spec.layout)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    result = await conn.execute(
        insert(events).values(
            **{name: getattr(spec, name) for name in _STORED_AS_GIVEN},
            starts_at=to_db(spec.starts_at),
            sale_opens_at=to_db(spec.sale_opens_at),
            sale_closes_at=to_db(spec.sale_closes_at),
            hold_ttl_s=spec.hold_ttl_s or hold_ttl_s,
            max_seats_per_user=spec.max_seats_per_user or max_seats_per_user,
            created_at=utcnow(),
        )
    )
    event_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    tier_ids = {}
    for tier in spec.layout.tiers:
        res = await conn.execute(
            insert(price_tiers).values(
                event_id=event_id,
                name=tier.name,
                price_cents=tier.price_cents,
                currency=tier.currency,
            )
        )
        tier_ids[tier.name] = int(res.inserted_primary_key[0])  # type: ignore[index]
    rows = [
        {
            "event_id": event_id,
            "seat_id": s.seat_id,
            "section": s.section,
            "row": s.row,
            "number": s.number,
            "tier_id": tier_ids[s.tier],
            "ordinal": ordinal,
            "blocked": False,
            "access": s.access or None,
        }
        for ordinal, s in enumerate(layout)
    ]
    for start in range(0, len(rows), 1000):
        await conn.execute(insert(seats), rows[start : start + 1000])
    return event_id


async def load_settings(conn: AsyncConnection, event_id: int) -> EventInfo:
    """The event's row alone: its settings, without tiers and seats."""
    row = await row_by_id(conn, events, event_id, f"no event {event_id}")
    return EventInfo(**{name: row._mapping[name] for name in _INFO_COLUMNS})


async def load_event(conn: AsyncConnection, event_id: int) -> EventInfo:
    info = await load_settings(conn, event_id)
    for t in await conn.execute(select(price_tiers).where(price_tiers.c.event_id == event_id)):
        info.tiers[t.id] = Tier(t.id, t.name, t.price_cents, t.currency)
    query = (
        select(seats.c.seat_id, seats.c.section, seats.c.row, seats.c.number, seats.c.tier_id,
               seats.c.access)
        .where(seats.c.event_id == event_id)
        .order_by(seats.c.ordinal, seats.c.section, seats.c.row, seats.c.number)
    )  # fmt: skip
    for s in await conn.execute(query):
        info.seats[s.seat_id] = (s.section, s.row, s.number, s.tier_id)
        if s.access:
            info.access[s.seat_id] = s.access
    return info


async def load_access(conn: AsyncConnection, event_id: int) -> dict[str, str]:
    """seat id → attribute of the event's marked seats."""
    query = select(seats.c.seat_id, seats.c.access).where(
        seats.c.event_id == event_id, seats.c.access.is_not(None)
    )
    return {s.seat_id: s.access for s in await conn.execute(query)}


async def mark_seats(conn: AsyncConnection, event_id: int, changes: dict[str, str]) -> None:
    """Store seat attributes (``""``: none), as :meth:`SeatAccessPatch.changes` gives them."""
    by_value: dict[str, list[str]] = {}
    for seat_id, access in changes.items():
        by_value.setdefault(access, []).append(seat_id)
    for access, seat_ids in by_value.items():
        for start in range(0, len(seat_ids), 1000):
            await conn.execute(
                update(seats)
                .where(seats.c.event_id == event_id,
                       seats.c.seat_id.in_(seat_ids[start : start + 1000]))
                .values(access=access or None)
            )  # fmt: skip


async def live_waiting_room_ids(conn: AsyncConnection, now: datetime) -> list[int]:
    """Events whose waiting room is on and whose sale is live (:meth:`EventInfo.live`)."""
    query = select(events.c.id).where(
        events.c.waiting_room.is_(True),
        events.c.status.in_(("on_sale", "paused")),
        events.c.sale_closes_at > now,
    )
    return [r.id for r in await conn.execute(query)]


async def list_event_ids(conn: AsyncConnection, *, drafts: bool = True) -> list[int]:
    """Every event's id, soonest first; without drafts (what the public sees) if asked."""
    query = select(events.c.id).order_by(events.c.starts_at, events.c.id)
    if not drafts:
        query = query.where(events.c.status != "draft")
    return [r.id for r in await conn.execute(query)]


async def update_event(conn: AsyncConnection, event_id: int, patch: EventPatch) -> None:
    values = patch.changes()
    if not values:
        return
    result = await conn.execute(update(events).where(events.c.id == event_id).values(**values))
    if result.rowcount == 0:
        raise NotFound(f"no event {event_id}")
    if values.keys() & {"admission_rate_min", "admission_rate_max"}:
        # One bound may be patched against the other's stored value: check the outcome (the
        # caller's transaction rolls the change back).
        bounds = select(events.c.admission_rate_min, events.c.admission_rate_max)
        low, high = (await conn.execute(bounds.where(events.c.id == event_id))).one()
        if low > high:
            raise InvalidRequest(
                f"admission_rate_min ({low:g}) must not exceed admission_rate_max ({high:g})"
            )


async def load_seat_state(
    conn: AsyncConnection, event_id: int, now: datetime, seat_ids: Collection[str] | None = None
) -> tuple[dict[str, str], dict[str, datetime]]:
    """Every seat's status from the tables (the record), or only ``seat_ids``'s, with held
    seats' expiry."""
    statuses: dict[str, str] = {}
    expiry: dict[str, datetime] = {}
    query = select(
        seats.c.seat_id, seats.c.blocked, seats.c.order_id, seats.c.hold_id,
        seats.c.hold_expires_at,
    ).where(seats.c.event_id == event_id).order_by(seats.c.ordinal)  # fmt: skip
    if seat_ids is not None:
        query = query.where(seats.c.seat_id.in_(list(seat_ids)))
    for s in await conn.execute(query):
        if s.blocked:
            statuses[s.seat_id] = BLOCKED
        elif s.order_id is not None:
            statuses[s.seat_id] = SOLD
        elif s.hold_id is not None and s.hold_expires_at > now:
            statuses[s.seat_id] = HELD
            expiry[s.seat_id] = s.hold_expires_at
        else:
            statuses[s.seat_id] = AVAILABLE
    return statuses, expiry
