"""Door check-in: each ticket admits once, online or offline.

* **Online** (:meth:`DoorCheckIn.redeem`): one conditional ``UPDATE tickets … WHERE code = ?
  AND status = 'valid' AND admitted_at IS NULL``. InnoDB evaluates the condition on the latest
  committed row under a row lock and SQLite serialises writers, so of two gates scanning one code
  at the same moment exactly one matches a row and admits; the other reads who did (already used:
  when, at which gate). A refusal says why: ``void`` (the order was cancelled), ``wrong_event``,
  ``forged`` (no genuine signature, or no such ticket), ``retired_key`` (signed by a key rotated
  out, and its event is over).
* **Re-entry** (per event, :meth:`DoorCheckIn.set_reentry`): an exit scan re-arms the ticket
  (``admitted_at`` back to NULL, ``rearmed_at`` set), so it admits once more.
* **Offline** (:meth:`DoorCheckIn.merge`): a scanner that lost the network keeps admitting from
  its check-in list (:meth:`DoorCheckIn.checkin_list`: ticket ids, the void and used lists, the
  public keys) and uploads what it admitted later. Each upload is a redemption at the scanner's
  own time; the ticket's winner is the *earliest* redemption (ties: the smaller gate name), so the
  final state is the same whatever order scanners sync in. Every admission is kept in
  ``redemptions``; one of a ticket's redemptions that is not its winner is a *conflict* (two
  people got in on one ticket), listed with both gates and times (:meth:`DoorCheckIn.conflicts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.errors import InvalidRequest
from booking.hooks import BookingHooks
from booking.inventory import Inventory
from booking.schema import checkin_settings, orders, redemptions, tickets
from booking.ticket_keys import CodeClaim, PublicKey, TicketCodes, event_over, ticket_id
from booking.transactions import in_transaction

#: How far back the per-minute progress goes.
PROGRESS_MINUTES = 15
#: Most redemptions one offline upload may carry (a scanner sends a longer queue in parts).
MAX_UPLOAD = 2000
#: How far ahead of the server's clock an offline redemption's time may be (scanner clocks
#: drift); later ones are taken as made now.
MAX_CLOCK_SKEW = timedelta(minutes=5)


class Reason(StrEnum):
    ADMITTED = "admitted"
    ALREADY_USED = "already_used"
    VOID = "void"
    WRONG_EVENT = "wrong_event"
    FORGED = "forged"
    RETIRED_KEY = "retired_key"
    EXITED = "exited"
    NOT_INSIDE = "not_inside"


class Merged(StrEnum):
    """What became of one uploaded offline redemption."""

    ADMITTED = "admitted"  # the ticket's first redemption (so far)
    CONFLICT = "conflict"  # an earlier redemption of the ticket exists: recorded as a conflict
    DUPLICATE = "duplicate"  # uploaded before: nothing changed
    VOID = "void"  # the order was cancelled: recorded, not counted
    WRONG_EVENT = "wrong_event"
    FORGED = "forged"
    RETIRED_KEY = "retired_key"


@dataclass(frozen=True, slots=True)
class ScanResult:
    reason: Reason
    event_id: int
    ticket_id: str
    seat_id: str | None = None
    tier: str | None = None
    #: The order's e-mail address (the only name an order has).
    holder: str | None = None
    #: For ``already_used``: when and at which gate the ticket was let in.
    used_at: datetime | None = None
    used_gate: str | None = None

    @property
    def admitted(self) -> bool:
        return self.reason is Reason.ADMITTED


@dataclass(frozen=True, slots=True)
class OfflineScan:
    code: str
    at: datetime


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    ticket_id: str
    outcome: Merged


@dataclass(frozen=True, slots=True)
class CheckInList:
    event_id: int
    generated_at: datetime
    reentry: bool
    #: Ids (:func:`~booking.ticket_keys.ticket_id`) of the valid tickets, of the void ones, and
    #: of the valid ones let in already.
    valid: list[str]
    void: list[str]
    used: list[str]
    keys: list[PublicKey]


@dataclass(frozen=True, slots=True)
class Conflict:
    ticket_id: str
    seat_id: str
    #: The redemption that counts (the earliest) and the other one.
    first_gate: str
    first_at: datetime
    second_gate: str
    second_at: datetime
    second_device: str
    second_offline: bool


@dataclass(frozen=True, slots=True)
class Progress:
    event_id: int
    sold: int
    scanned: int
    by_gate: dict[str, int] = field(default_factory=dict)
    #: (minute, admissions in it), oldest first, the last :data:`PROGRESS_MINUTES` minutes.
    per_minute: list[tuple[datetime, int]] = field(default_factory=list)


def _minute_key(engine: AsyncEngine, column: Any) -> Any:
    if engine.dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M", column)
    return func.date_format(column, "%Y-%m-%d %H:%i")


class DoorCheckIn:
    def __init__(
        self,
        engine: AsyncEngine,
        inventory: Inventory,
        codes: TicketCodes,
        hooks: BookingHooks | None = None,
    ) -> None:
        self.engine = engine
        self.inventory = inventory
        self.codes = codes
        self.hooks = hooks or BookingHooks()

    # -- verifying a code ------------------------------------------------------------------------

    async def _claim(self, event_id: int, code: str, now: datetime) -> CodeClaim | Reason:
        claim = await self.codes.verify(code)
        if claim is None:
            return Reason.FORGED
        if claim.event_id != event_id:
            return Reason.WRONG_EVENT
        if claim.key_retired_at is not None:
            event = await self.inventory.event(event_id)
            if event_over(event.starts_at, now):
                return Reason.RETIRED_KEY
        return claim

    async def _scannable(self, event_id: int, code: str, now: datetime) -> CodeClaim | ScanResult:
        """The code's claim, or the refusal to answer (counted as a scan) when it cannot be let
        in whatever the ticket's state."""
        claim = await self._claim(event_id, code, now)
        if isinstance(claim, Reason):
            self.hooks.ticket_scanned(event_id, claim.value)
            return ScanResult(claim, event_id, ticket_id(code))
        return claim

    @staticmethod
    def _tier(info: EventInfo, seat_id: str) -> str | None:
        if seat_id not in info.seats:
            return None
        tier = info.tiers.get(info.seats[seat_id][3])
        return None if tier is None else tier.name

    # -- online ----------------------------------------------------------------------------------

    async def redeem(self, event_id: int, code: str, gate: str, device: str) -> ScanResult:
        """Let the holder of ``code`` in at ``gate``, once."""
        info = await self.inventory.event(event_id)  # NotFound for an unknown event
        now = utcnow()
        tid = ticket_id(code)
        claim = await self._scannable(event_id, code, now)
        if isinstance(claim, ScanResult):
            return claim

        async def work(conn: AsyncConnection) -> tuple[bool, Any]:
            done = await conn.execute(
                update(tickets)
                .where(
                    tickets.c.code == code,
                    tickets.c.event_id == event_id,
                    tickets.c.status == "valid",
                    tickets.c.admitted_at.is_(None),
                )
                .values(admitted_at=now, admitted_gate=gate)
            )
            admitted = done.rowcount == 1
            if admitted:
                await conn.execute(
                    insert(redemptions).values(
                        event_id=event_id, code=code, gate=gate, device=device, at=now,
                        offline=False,
                    )
                )  # fmt: skip
            row = (
                await conn.execute(
                    select(
                        tickets.c.status,
                        tickets.c.seat_id,
                        tickets.c.admitted_at,
                        tickets.c.admitted_gate,
                        orders.c.email,
                    )
                    .join(orders, orders.c.id == tickets.c.order_id)
                    .where(tickets.c.code == code)
                )
            ).first()
            return admitted, row

        admitted, row = await in_transaction(self.engine, work)
        result = self._result(info, tid, admitted, row)
        self.hooks.ticket_scanned(event_id, result.reason.value)
        return result

    def _result(self, info: EventInfo, tid: str, admitted: bool, row: Any) -> ScanResult:
        if row is None:  # a genuine signature but no such ticket (its order never committed)
            return ScanResult(Reason.FORGED, info.id, tid)
        details = {"seat_id": row.seat_id, "tier": self._tier(info, row.seat_id)}
        if admitted:
            return ScanResult(Reason.ADMITTED, info.id, tid, holder=row.email, **details)
        if row.status != "valid":
            return ScanResult(Reason.VOID, info.id, tid, **details)
        return ScanResult(
            Reason.ALREADY_USED, info.id, tid, used_at=row.admitted_at,
            used_gate=row.admitted_gate, **details,
        )  # fmt: skip

    async def leave(self, event_id: int, code: str, gate: str) -> ScanResult:
        """An exit scan: re-arm the ticket for re-entry (refused unless the event allows it)."""
        if not await self.reentry(event_id):
            raise InvalidRequest("this event has no re-entry: exit scans are off")
        now = utcnow()
        tid = ticket_id(code)
        claim = await self._scannable(event_id, code, now)
        if isinstance(claim, ScanResult):
            return claim
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(tickets)
                .where(
                    tickets.c.code == code,
                    tickets.c.event_id == event_id,
                    tickets.c.admitted_at.is_not(None),
                )
                .values(admitted_at=None, admitted_gate=None, rearmed_at=now)
            )
        reason = Reason.EXITED if done.rowcount == 1 else Reason.NOT_INSIDE
        self.hooks.ticket_scanned(event_id, reason.value)
        return ScanResult(reason, event_id, tid, seat_id=claim.seat_id, used_gate=gate)

    # -- offline ---------------------------------------------------------------------------------

    async def merge(
        self, event_id: int, gate: str, device: str, scans: list[OfflineScan]
    ) -> list[MergeOutcome]:
        """Merge redemptions a scanner made offline: the earliest redemption of a ticket wins,
        whatever the order of uploads; the others are recorded (conflicts)."""
        if len(scans) > MAX_UPLOAD:
            raise InvalidRequest(f"at most {MAX_UPLOAD} redemptions per upload")
        await self.inventory.event(event_id)
        now = utcnow()
        out: list[MergeOutcome] = []
        for scan in scans:
            at = min(scan.at, now + MAX_CLOCK_SKEW)
            tid = ticket_id(scan.code)
            claim = await self._claim(event_id, scan.code, now)
            if isinstance(claim, Reason):
                out.append(MergeOutcome(tid, Merged(claim.value)))
                continue
            out.append(MergeOutcome(tid, await self._merge_one(event_id, scan.code, gate,
                                                              device, at)))  # fmt: skip
        for item in out:
            self.hooks.ticket_scanned(event_id, item.outcome.value)
        return out

    async def _merge_one(
        self, event_id: int, code: str, gate: str, device: str, at: datetime
    ) -> Merged:
        async def work(conn: AsyncConnection) -> Merged:
            exists = await conn.execute(
                select(tickets.c.status).where(
                    tickets.c.code == code, tickets.c.event_id == event_id
                )
            )
            row = exists.first()
            if row is None:
                return Merged.FORGED
            await conn.execute(
                insert(redemptions).values(
                    event_id=event_id, code=code, gate=gate, device=device, at=at, offline=True
                )
            )
            if row.status != "valid":
                return Merged.VOID
            won = await conn.execute(
                update(tickets)
                .where(
                    tickets.c.code == code,
                    tickets.c.status == "valid",
                    or_(tickets.c.rearmed_at.is_(None), tickets.c.rearmed_at < at),
                    or_(
                        tickets.c.admitted_at.is_(None),
                        tickets.c.admitted_at > at,
                        and_(tickets.c.admitted_at == at, tickets.c.admitted_gate > gate),
                    ),
                )
                .values(admitted_at=at, admitted_gate=gate)
            )
            return Merged.ADMITTED if won.rowcount == 1 else Merged.CONFLICT

        try:
            return await in_transaction(self.engine, work)
        except IntegrityError:  # this very redemption was uploaded before
            return Merged.DUPLICATE

    # -- reading ---------------------------------------------------------------------------------

    async def reentry(self, event_id: int) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(checkin_settings.c.reentry).where(checkin_settings.c.event_id == event_id)
            )
            return bool(found.scalar_one_or_none())

    async def set_reentry(self, event_id: int, reentry: bool) -> None:
        await self.inventory.event(event_id)

        async def work(conn: AsyncConnection) -> None:
            done = await conn.execute(
                update(checkin_settings)
                .where(checkin_settings.c.event_id == event_id)
                .values(reentry=reentry)
            )
            if done.rowcount == 0:
                await conn.execute(
                    insert(checkin_settings).values(event_id=event_id, reentry=reentry)
                )

        await in_transaction(self.engine, work)

    async def checkin_list(self, event_id: int) -> CheckInList:
        event = await self.inventory.event(event_id)
        now = utcnow()
        await self.codes.ready()
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(tickets.c.code, tickets.c.status, tickets.c.admitted_at).where(
                    tickets.c.event_id == event_id
                )
            )
            rows = list(found.all())
        over = event_over(event.starts_at, now)
        keys = [k for k in self.codes.keys.public_keys() if k.retired_at is None or not over]
        return CheckInList(
            event_id=event_id,
            generated_at=now,
            reentry=await self.reentry(event_id),
            valid=[ticket_id(r.code) for r in rows if r.status == "valid"],
            void=[ticket_id(r.code) for r in rows if r.status != "valid"],
            used=[
                ticket_id(r.code) for r in rows if r.status == "valid" and r.admitted_at is not None
            ],
            keys=keys,
        )

    async def conflicts(self, event_id: int) -> list[Conflict]:
        await self.inventory.event(event_id)
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(
                    redemptions.c.code,
                    redemptions.c.gate,
                    redemptions.c.at,
                    redemptions.c.device,
                    redemptions.c.offline,
                    tickets.c.seat_id,
                    tickets.c.admitted_at,
                    tickets.c.admitted_gate,
                )
                .join(tickets, tickets.c.code == redemptions.c.code)
                .where(
                    redemptions.c.event_id == event_id,
                    tickets.c.admitted_at.is_not(None),
                    or_(tickets.c.rearmed_at.is_(None), redemptions.c.at > tickets.c.rearmed_at),
                    or_(
                        redemptions.c.at != tickets.c.admitted_at,
                        redemptions.c.gate != tickets.c.admitted_gate,
                    ),
                )
                .order_by(redemptions.c.at, redemptions.c.gate)
            )
            return [
                Conflict(
                    ticket_id=ticket_id(r.code), seat_id=r.seat_id, first_gate=r.admitted_gate,
                    first_at=r.admitted_at, second_gate=r.gate, second_at=r.at,
                    second_device=r.device, second_offline=bool(r.offline),
                )
                for r in found
            ]  # fmt: skip

    async def progress(self, event_id: int, now: datetime | None = None) -> Progress:
        now = now or utcnow()
        since = now.replace(second=0, microsecond=0) - timedelta(minutes=PROGRESS_MINUTES - 1)
        minute = _minute_key(self.engine, redemptions.c.at).label("minute")
        async with self.engine.connect() as conn:
            sold = await conn.execute(
                select(func.count())
                .select_from(tickets)
                .where(tickets.c.event_id == event_id, tickets.c.status == "valid")
            )
            scanned = await conn.execute(
                select(func.count(func.distinct(redemptions.c.code))).where(
                    redemptions.c.event_id == event_id
                )
            )
            gates = await conn.execute(
                select(redemptions.c.gate, func.count())
                .where(redemptions.c.event_id == event_id)
                .group_by(redemptions.c.gate)
            )
            minutes = await conn.execute(
                select(minute, func.count())
                .where(redemptions.c.event_id == event_id, redemptions.c.at >= since)
                .group_by(minute)
            )
            by_minute = {str(m): int(n) for m, n in minutes.all()}
            by_gate = {str(g): int(n) for g, n in gates.all()}
            sold_n, scanned_n = int(sold.scalar_one()), int(scanned.scalar_one())
        per_minute = []
        for i in range(PROGRESS_MINUTES):
            start = since + timedelta(minutes=i)
            per_minute.append((start, by_minute.get(start.strftime("%Y-%m-%d %H:%M"), 0)))
        return Progress(event_id, sold_n, scanned_n, dict(sorted(by_gate.items())), per_minute)
