"""Door check-in: each ticket admits once, online or offline.

* **Online** (:meth:`DoorCheckIn.redeem`): group commit. A scan that arrives while the node's
  group commits are busy (at most :data:`BATCHES_IN_FLIGHT`) waits for the next one, which
  redeems up to :data:`BATCH_MAX` scans in one transaction: a locking read of their tickets
  (``SELECT … FOR UPDATE``, in primary-key order), one conditional ``UPDATE tickets … WHERE code
  IN (…) AND status = 'valid' AND admitted_at IS NULL`` of those that may be let in, one
  multi-row insert of their redemptions. InnoDB reads the latest committed rows under row locks
  held until commit (SQLite serialises writers), so of two gates scanning one code at the same
  moment (on one node or two) exactly one admits; the other reads who did (already used: when,
  at which gate). A quiet door pays nothing for it: a lone scan is its own batch.
  A refusal says why: ``void`` (the order was cancelled, or the desk reissued its tickets),
  ``wrong_event``, ``forged`` (no genuine signature, or no such ticket), ``retired_key`` (signed
  by a key rotated out, and its event is over).
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

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import case, func, insert, or_, select, update
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
#: Most online scans one group-commit transaction redeems.
BATCH_MAX = 200
#: Group-commit transactions one node runs at once (scans arriving meanwhile wait for the next).
BATCHES_IN_FLIGHT = 1


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
    EXITED = "exited"  # an exit while inside: re-armed
    NOT_INSIDE = "not_inside"  # an exit while not inside: recorded, nothing changed


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
class _Pending:
    """An online scan waiting for its group commit."""

    info: EventInfo
    code: str
    gate: str
    device: str
    answer: asyncio.Future[ScanResult]


@dataclass(frozen=True, slots=True)
class _Step:
    """One entry or exit of a ticket's history, as :meth:`DoorCheckIn._merge_one` replays it."""

    id: int | None
    at: datetime
    gate: str
    exit: bool


@dataclass(frozen=True, slots=True)
class OfflineScan:
    code: str
    at: datetime
    #: An exit scan (re-entry events).
    exit: bool = False


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
        #: Scans waiting for the next group commit, and the group commits running.
        self._pending: list[_Pending] = []
        self._flights = 0
        self._flushers: set[asyncio.Task[None]] = set()

    # -- verifying a code ------------------------------------------------------------------------

    async def _claim(
        self, event_id: int, code: str, now: datetime, *, looked_up: bool = False
    ) -> CodeClaim | Reason:
        """``looked_up``: the caller admits the code only if it finds it among the event's
        tickets, which proves it genuine: the Ed25519 signature is then checked only for a
        code that names another event (``wrong_event`` for a genuine one, else ``forged``)."""
        claim = await self.codes.verify(code, signature=not looked_up)
        if claim is not None and looked_up and claim.event_id != event_id:
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

    async def _scannable(
        self, event_id: int, code: str, now: datetime, *, looked_up: bool = False
    ) -> CodeClaim | ScanResult:
        """The code's claim, or the refusal to answer (counted as a scan) when it cannot be let
        in whatever the ticket's state."""
        claim = await self._claim(event_id, code, now, looked_up=looked_up)
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
        """Let the holder of ``code`` in at ``gate``, once.

        The scan joins the node's next group commit (:meth:`_redeem_batch`): scans that arrive
        while a batch is in flight are redeemed together in one transaction."""
        info = await self.inventory.event(event_id)  # NotFound for an unknown event
        # the batch admits only a code it finds among the event's tickets (by the exact code,
        # so only an issued one): no Ed25519 check needed on this path
        claim = await self._scannable(event_id, code, utcnow(), looked_up=True)
        if isinstance(claim, ScanResult):
            return claim
        answer: asyncio.Future[ScanResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(info, code, gate, device, answer))
        self._start_flush()
        result = await answer
        self.hooks.ticket_scanned(event_id, result.reason.value)
        return result

    def _start_flush(self) -> None:
        while self._pending and self._flights < BATCHES_IN_FLIGHT:
            self._flights += 1
            task = asyncio.create_task(self._flush(), name="checkin-group-commit")
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:BATCH_MAX]
                del self._pending[:BATCH_MAX]
                try:
                    results = await self._redeem_batch(batch)
                except Exception as exc:  # every scan of the batch gets the failure
                    for p in batch:
                        if not p.answer.done():
                            p.answer.set_exception(exc)
                    continue
                except BaseException:  # cancelled (the node stops): so are its scans
                    for p in batch + self._pending:
                        p.answer.cancel()
                    self._pending.clear()
                    raise
                for p, result in zip(batch, results, strict=True):
                    if not p.answer.done():  # its request may have been cancelled
                        p.answer.set_result(result)
        finally:
            self._flights -= 1

    async def _redeem_batch(self, batch: list[_Pending]) -> list[ScanResult]:
        """Redeem ``batch`` in one transaction: a locking read of its tickets (primary key
        order, so that batches of several nodes do not deadlock), one conditional ``UPDATE``
        of those that may be let in, one multi-row insert of their redemptions. The locks
        hold until commit, so a ticket is admitted by exactly one scan whatever runs beside;
        a code twice in the batch admits once (the first scan), the other is ``already_used``."""
        now = utcnow()
        first: dict[str, _Pending] = {}
        for p in batch:
            first.setdefault(p.code, p)
        codes = sorted(first)

        async def work(conn: AsyncConnection) -> tuple[dict[str, Any], set[str], dict[str, str]]:
            found = await conn.execute(
                select(
                    tickets.c.code, tickets.c.event_id, tickets.c.status, tickets.c.seat_id,
                    tickets.c.order_id, tickets.c.admitted_at, tickets.c.admitted_gate,
                )
                .where(tickets.c.code.in_(codes))
                .order_by(tickets.c.code)
                .with_for_update()
            )  # fmt: skip
            rows = {r.code: r for r in found}
            admit = [
                c for c in codes
                if (r := rows.get(c)) is not None and r.event_id == first[c].info.id
                and r.status == "valid" and r.admitted_at is None
            ]  # fmt: skip
            emails: dict[str, str] = {}
            if admit:
                gates = {first[c].gate for c in admit}
                gate: Any = (
                    gates.pop() if len(gates) == 1
                    else case({c: first[c].gate for c in admit}, value=tickets.c.code)
                )  # fmt: skip
                done = await conn.execute(
                    update(tickets)
                    .where(
                        tickets.c.code.in_(admit),
                        tickets.c.status == "valid",
                        tickets.c.admitted_at.is_(None),
                    )
                    .values(admitted_at=now, admitted_gate=gate)
                )
                if done.rowcount != len(admit):  # the locked rows changed: cannot happen
                    raise RuntimeError("check-in: the locked tickets changed under the batch")
                await conn.execute(
                    insert(redemptions),
                    [
                        {"event_id": first[c].info.id, "code": c, "gate": first[c].gate,
                         "device": first[c].device, "at": now, "offline": False}
                        for c in admit
                    ],
                )  # fmt: skip
                order_ids = sorted({rows[c].order_id for c in admit})
                found_emails = await conn.execute(
                    select(orders.c.id, orders.c.email).where(orders.c.id.in_(order_ids))
                )
                emails = {r.id: r.email for r in found_emails}
            return rows, set(admit), emails

        rows, admitted, emails = await in_transaction(self.engine, work)
        out: list[ScanResult] = []
        answered: set[str] = set()
        for p in batch:
            info, code = p.info, p.code
            tid = ticket_id(code)
            row = rows.get(code)
            if row is None or row.event_id != info.id:  # a genuine signature, no such ticket
                out.append(ScanResult(Reason.FORGED, info.id, tid))
                continue
            details = {"seat_id": row.seat_id, "tier": self._tier(info, row.seat_id)}
            if code in admitted and code not in answered:
                answered.add(code)
                out.append(ScanResult(Reason.ADMITTED, info.id, tid,
                                      holder=emails.get(row.order_id), **details))  # fmt: skip
            elif row.status != "valid":
                out.append(ScanResult(Reason.VOID, info.id, tid, **details))
            elif code in admitted:  # the same code twice in this batch: the first got in
                out.append(ScanResult(Reason.ALREADY_USED, info.id, tid, used_at=now,
                                      used_gate=first[code].gate, **details))  # fmt: skip
            else:
                out.append(ScanResult(Reason.ALREADY_USED, info.id, tid, used_at=row.admitted_at,
                                      used_gate=row.admitted_gate, **details))  # fmt: skip
        return out

    async def leave(self, event_id: int, code: str, gate: str, device: str = "?") -> ScanResult:
        """An exit scan: re-arm the ticket for re-entry (refused unless the event allows it).
        The exit is on record (``redemptions.exit``), so offline uploads merge around it."""
        if not await self.reentry(event_id):
            raise InvalidRequest("this event has no re-entry: exit scans are off")
        now = utcnow()
        tid = ticket_id(code)
        claim = await self._scannable(event_id, code, now)
        if isinstance(claim, ScanResult):
            return claim
        async with self.engine.begin() as conn:
            ticket = tickets.c.code == code, tickets.c.event_id == event_id
            status = await conn.scalar(select(tickets.c.status).where(*ticket).with_for_update())
            if status not in (None, "valid"):
                # the order was cancelled: refused as an entry would be, and as an offline
                # upload of this exit is (:class:`Merged` ``void``); nothing re-armed
                reason = Reason.VOID
            else:
                done = await conn.execute(
                    update(tickets)
                    .where(*ticket, tickets.c.admitted_at.is_not(None))
                    .values(admitted_at=None, admitted_gate=None, rearmed_at=now)
                )
                reason = Reason.EXITED if done.rowcount == 1 else Reason.NOT_INSIDE
            if reason is Reason.EXITED:
                await conn.execute(
                    insert(redemptions).values(
                        event_id=event_id, code=code, gate=gate, device=device, at=now,
                        offline=False, exit=True,
                    )
                )  # fmt: skip
        self.hooks.ticket_scanned(event_id, reason.value)
        return ScanResult(reason, event_id, tid, seat_id=claim.seat_id)

    # -- offline ---------------------------------------------------------------------------------

    async def merge(
        self, event_id: int, gate: str, device: str, scans: list[OfflineScan]
    ) -> list[MergeOutcome]:
        """Merge redemptions (entries and exits) a scanner made offline: a ticket's entries and
        exits are replayed in time order, whatever the order of uploads — an entry while the
        holder is outside lets them in, one while they are inside is a conflict, an exit while
        inside re-arms the ticket; every one is recorded."""
        if len(scans) > MAX_UPLOAD:
            raise InvalidRequest(f"at most {MAX_UPLOAD} redemptions per upload")
        await self.inventory.event(event_id)
        if any(scan.exit for scan in scans) and not await self.reentry(event_id):
            raise InvalidRequest("this event has no re-entry: exit scans are off")
        now = utcnow()
        out: list[MergeOutcome] = []
        for scan in scans:
            at = now if scan.at > now + MAX_CLOCK_SKEW else scan.at  # a clock far ahead
            tid = ticket_id(scan.code)
            claim = await self._claim(event_id, scan.code, now)
            if isinstance(claim, Reason):
                out.append(MergeOutcome(tid, Merged(claim.value)))
                continue
            merged = await self._merge_one(event_id, scan.code, gate, device, at, exit=scan.exit)
            out.append(MergeOutcome(tid, merged))
        for item in out:
            self.hooks.ticket_scanned(event_id, item.outcome.value)
        return out

    async def _merge_one(
        self, event_id: int, code: str, gate: str, device: str, at: datetime, *, exit: bool
    ) -> Merged:
        async def work(conn: AsyncConnection) -> Merged:
            found = await conn.execute(
                select(tickets.c.status, tickets.c.rearmed_at)
                .where(tickets.c.code == code, tickets.c.event_id == event_id)
                .with_for_update()  # one merge of a ticket at a time: the replay sees all
            )
            row = found.first()
            if row is None:
                return Merged.FORGED
            added = await conn.execute(
                insert(redemptions).values(
                    event_id=event_id, code=code, gate=gate, device=device, at=at,
                    offline=True, exit=exit,
                )
            )  # fmt: skip
            if row.status != "valid":
                return Merged.VOID
            assert added.inserted_primary_key is not None
            mine = added.inserted_primary_key[0]
            r = redemptions.c
            steps = select(r.id, r.at, r.gate, r.exit)
            history: list[Any] = list(
                await conn.execute(
                    steps.where(redemptions.c.code == code).order_by(
                        redemptions.c.at, redemptions.c.exit, redemptions.c.gate
                    )
                )
            )
            if row.rearmed_at is not None and not any(
                h.exit and h.at == row.rearmed_at for h in history
            ):  # an exit scanned online before exits were on record left only ``rearmed_at``
                history.append(_Step(None, row.rearmed_at, "", True))
                history.sort(key=lambda h: (h.at, h.exit, h.gate))
            # replay: entries and exits in time order (at one instant, entries first)
            inside: Any = None
            rearmed: datetime | None = None
            outcome = Merged.CONFLICT
            for h in history:
                if h.exit:
                    took = inside is not None
                    if took:
                        inside, rearmed = None, h.at
                elif took := inside is None:
                    inside = h
                if h.id == mine:
                    if exit:
                        outcome = Merged.EXITED if took else Merged.NOT_INSIDE
                    else:
                        outcome = Merged.ADMITTED if took else Merged.CONFLICT
            await conn.execute(
                update(tickets)
                .where(tickets.c.code == code)
                .values(
                    admitted_at=None if inside is None else inside.at,
                    admitted_gate=None if inside is None else inside.gate,
                    rearmed_at=rearmed,
                )
            )
            return outcome

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
                    redemptions.c.exit.is_(False),
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
            # a void ticket's redemption (let in offline after its order was cancelled) is on
            # record but not counted: it is not sold, so it is not scanned either
            counted = redemptions.join(tickets, tickets.c.code == redemptions.c.code)
            valid = (
                redemptions.c.event_id == event_id,
                redemptions.c.exit.is_(False),
                tickets.c.status == "valid",
            )
            scanned = await conn.execute(
                select(func.count(func.distinct(redemptions.c.code)))
                .select_from(counted)
                .where(*valid)
            )
            gates = await conn.execute(
                select(redemptions.c.gate, func.count())
                .select_from(counted)
                .where(*valid)
                .group_by(redemptions.c.gate)
            )
            minutes = await conn.execute(
                select(minute, func.count())
                .select_from(counted)
                .where(*valid, redemptions.c.at >= since)
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
