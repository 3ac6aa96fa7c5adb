"""Door check-in over REST: scanners redeem, download their event's check-in list and upload
what they admitted offline; admins mint and revoke scanners, rotate the ticket keys, set
re-entry and read progress and conflicts. The rules are :mod:`booking.checkin`'s."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, StrictBool

from booking.catalog import MAX_INT, in_clock_range
from booking.checkin import (
    MAX_UPLOAD,
    CheckInList,
    Conflict,
    OfflineScan,
    Progress,
    Reason,
    ScanResult,
)
from booking.clock import iso, to_db
from booking.errors import Forbidden, InvalidRequest
from booking.scanners import Scanner
from booking.ticket_keys import PublicKey
from server.api.auth import Access, user_name
from server.api.operations import Operation, event_id
from server.api.payloads import json_response, read_model
from server.auth import Principal, Role
from server.bodies import Request, Timestamp
from server.errors import Problem
from server.keys import BOOKING, TOKENS

#: A scanner token lives this long unless the admin asks otherwise (at most a week).
SCANNER_TTL_HOURS = 24
MAX_SCANNER_TTL_HOURS = 168

Gate = Field(min_length=1, max_length=64, examples=["North"])


# -- bodies -----------------------------------------------------------------------------------


class ScanRequest(Request):
    code: str = Field(min_length=1, max_length=512, description="the ticket code the QR holds")
    event_id: int | None = Field(
        default=None, ge=1, le=MAX_INT, description="the event at this door; a scanner bound "
        "to an event may leave it out",
    )  # fmt: skip
    direction: Literal["in", "out"] = Field(
        default="in", description="`out`: an exit scan, which re-arms the ticket (events with "
        "re-entry only)",
    )  # fmt: skip


class ScanOut(BaseModel):
    result: Reason = Field(description="admitted, or why not")
    admitted: bool
    event_id: int
    ticket_id: str
    gate: str = Field(description="the gate of the scanner that asked")
    seat_id: str | None = None
    tier: str | None = None
    holder: str | None = Field(default=None, description="the order's e-mail address")
    used_at: Timestamp | None = Field(default=None, description="already_used: when let in")
    used_gate: str | None = Field(default=None, description="already_used: at which gate")


class OfflineRedemption(Request):
    code: str = Field(min_length=1, max_length=512)
    at: Annotated[AwareDatetime, AfterValidator(in_clock_range)] = Field(
        description="when the scanner let the holder in (its clock)"
    )
    direction: Literal["in", "out"] = Field(
        default="in", description="`out`: an exit scan made offline (events with re-entry)"
    )


class SyncRequest(Request):
    redemptions: list[OfflineRedemption] = Field(max_length=MAX_UPLOAD)


class SyncItemOut(BaseModel):
    ticket_id: str
    outcome: str = Field(
        description="admitted (let in: the holder was outside at that time), conflict (the "
        "holder was inside already: recorded), duplicate (uploaded before), void, wrong_event, "
        "forged, retired_key; for exits: exited (re-armed), not_inside"
    )


class SyncOut(BaseModel):
    event_id: int
    results: list[SyncItemOut]
    admitted: int
    conflicts: int
    void: int = Field(
        description="tickets let in offline whose order had been cancelled: recorded, not "
        "counted as scanned (the scanner tells the door staff)"
    )


class PublicKeyOut(BaseModel):
    kid: str
    public_key: str = Field(description="raw 32-byte Ed25519 public key, base64url")
    created_at: Timestamp
    retired_at: Timestamp | None


class CheckInListOut(BaseModel):
    event_id: int
    generated_at: Timestamp
    reentry: bool
    valid: list[str] = Field(description="ticket ids of the valid tickets")
    void: list[str] = Field(description="ticket ids of the void tickets (cancelled orders)")
    used: list[str] = Field(description="ticket ids of valid tickets let in already")
    keys: list[PublicKeyOut] = Field(description="the keys that verify this event's codes")


class ScannerCreate(Request):
    device: str = Field(min_length=1, max_length=64, examples=["ipad-north-1"])
    gate: str = Gate
    event_id: int | None = Field(
        default=None, ge=1, le=MAX_INT, description="bind it to this event"
    )
    ttl_hours: int = Field(default=SCANNER_TTL_HOURS, ge=1, le=MAX_SCANNER_TTL_HOURS)


class ScannerOut(BaseModel):
    id: str
    device: str
    gate: str
    event_id: int | None
    created_by: str
    created_at: Timestamp
    revoked_at: Timestamp | None
    token: str | None = Field(default=None, description="only when minted: the bearer token")
    expires_at: Timestamp | None = Field(
        default=None,
        description="when the token it was minted with expires; null for a scanner minted "
        "before the server recorded it",
    )


class ReentryUpdate(Request):
    reentry: StrictBool


class CheckInSettingsOut(BaseModel):
    event_id: int
    reentry: bool


class ConflictOut(BaseModel):
    ticket_id: str
    seat_id: str
    first_gate: str
    first_at: Timestamp
    second_gate: str
    second_at: Timestamp
    second_device: str
    second_offline: bool


class MinuteOut(BaseModel):
    minute: Timestamp
    admitted: int


class ProgressOut(BaseModel):
    event_id: int
    sold: int = Field(description="valid tickets")
    scanned: int = Field(description="tickets let in at least once")
    by_gate: dict[str, int] = Field(description="admissions per gate (re-entries count)")
    per_minute: list[MinuteOut]


# -- rendering --------------------------------------------------------------------------------


#: The ``detail`` of each refusal of a scan (its problem's ``kind`` is the reason).
REFUSALS: dict[Reason, str] = {
    Reason.ALREADY_USED: "this ticket was let in before",
    Reason.VOID: "this ticket is void: its order was cancelled, or the box office reissued it "
    "under a new code",
    Reason.WRONG_EVENT: "this ticket is for another event",
    Reason.NOT_INSIDE: "this ticket is not inside: nothing changed",
    Reason.FORGED: "this code does not verify",
    Reason.RETIRED_KEY: "this code is signed by a key rotated out after its event",
}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def scan_out(result: ScanResult, gate: str) -> ScanOut:
    return ScanOut(
        result=result.reason, admitted=result.admitted, event_id=result.event_id,
        ticket_id=result.ticket_id, gate=gate, seat_id=result.seat_id, tier=result.tier,
        holder=result.holder, used_at=_iso(result.used_at), used_gate=result.used_gate,
    )  # fmt: skip


def key_out(key: PublicKey) -> PublicKeyOut:
    return PublicKeyOut(
        kid=key.kid, public_key=key.public_key, created_at=iso(key.created_at),
        retired_at=_iso(key.retired_at),
    )  # fmt: skip


def list_out(found: CheckInList) -> CheckInListOut:
    return CheckInListOut(
        event_id=found.event_id, generated_at=iso(found.generated_at), reentry=found.reentry,
        valid=found.valid, void=found.void, used=found.used,
        keys=[key_out(k) for k in found.keys],
    )  # fmt: skip


def scanner_out(s: Scanner, token: str | None = None) -> ScannerOut:
    return ScannerOut(
        id=s.id, device=s.device, gate=s.gate, event_id=s.event_id, created_by=s.created_by,
        created_at=iso(s.created_at), revoked_at=_iso(s.revoked_at), token=token,
        expires_at=_iso(s.expires_at),
    )  # fmt: skip


def conflict_out(c: Conflict) -> ConflictOut:
    return ConflictOut(
        ticket_id=c.ticket_id, seat_id=c.seat_id, first_gate=c.first_gate,
        first_at=iso(c.first_at), second_gate=c.second_gate, second_at=iso(c.second_at),
        second_device=c.second_device, second_offline=c.second_offline,
    )  # fmt: skip


def progress_out(p: Progress) -> ProgressOut:
    return ProgressOut(
        event_id=p.event_id, sold=p.sold, scanned=p.scanned, by_gate=p.by_gate,
        per_minute=[MinuteOut(minute=iso(m), admitted=n) for m, n in p.per_minute],
    )  # fmt: skip


# -- the scanner's endpoints ------------------------------------------------------------------


def _door(principal: Principal, wanted: int | None) -> tuple[int, str]:
    """The event and gate a scanner's request is for."""
    gate = principal.gate or "?"
    if principal.event_id is not None:
        if wanted is not None and wanted != principal.event_id:
            raise Forbidden(f"this scanner is bound to event {principal.event_id}")
        return principal.event_id, gate
    if wanted is None:
        raise InvalidRequest("event_id is required (this scanner is not bound to an event)")
    return wanted, gate


async def scan(request: web.Request, principal: Principal) -> web.Response:
    wanted = await read_model(request, ScanRequest)
    event, gate = _door(principal, wanted.event_id)
    door = request.app[BOOKING].door
    if wanted.direction == "out":
        result = await door.leave(event, wanted.code, gate, user_name(principal))
    else:
        result = await door.redeem(event, wanted.code, gate, user_name(principal))
    answer = scan_out(result, gate)
    if result.reason in (Reason.ADMITTED, Reason.EXITED):
        return json_response(answer)
    # A refusal is a problem (SPEC §5): a client that reads only the status never lets a used,
    # void or forged ticket in. The scan's fields (when, where) ride along as extensions.
    raise Problem.of(
        result.reason.value,
        REFUSALS[result.reason],
        **answer.model_dump(mode="json", exclude_none=True),
    )


async def checkin_list(request: web.Request, principal: Principal) -> web.Response:
    event, _ = _door(principal, event_id(request))
    found = await request.app[BOOKING].door.checkin_list(event)
    return json_response(list_out(found), headers={"Cache-Control": "no-store"})


async def sync(request: web.Request, principal: Principal) -> web.Response:
    wanted = await read_model(request, SyncRequest)
    event, gate = _door(principal, event_id(request))
    scans = [OfflineScan(r.code, to_db(r.at), r.direction == "out") for r in wanted.redemptions]
    merged = await request.app[BOOKING].door.merge(event, gate, user_name(principal), scans)
    results = [SyncItemOut(ticket_id=m.ticket_id, outcome=m.outcome.value) for m in merged]
    return json_response(
        SyncOut(
            event_id=event,
            results=results,
            admitted=sum(r.outcome == "admitted" for r in results),
            conflicts=sum(r.outcome == "conflict" for r in results),
            void=sum(r.outcome == "void" for r in results),
        )
    )


# -- the admin's endpoints ---------------------------------------------------------------------


async def mint_scanner(request: web.Request, principal: Principal) -> web.Response:
    wanted = await read_model(request, ScannerCreate)
    booking = request.app[BOOKING]
    ttl_s = wanted.ttl_hours * 3600
    scanner = await booking.scanners.mint(
        wanted.device, wanted.gate, wanted.event_id, user_name(principal), ttl_s
    )
    token = request.app[TOKENS].issue(
        scanner.id, Role.SCANNER, ttl_s, version=scanner.token_version, gate=scanner.gate,
        event_id=scanner.event_id,
    )  # fmt: skip
    return json_response(scanner_out(scanner, token), 201)


async def list_scanners(request: web.Request, _: Principal) -> web.Response:
    found = await request.app[BOOKING].scanners.list()
    return json_response([scanner_out(s).model_dump(mode="json") for s in found])


async def revoke_scanner(request: web.Request, _: Principal) -> web.Response:
    scanner = await request.app[BOOKING].scanners.revoke(request.match_info["scanner_id"])
    request.app[TOKENS].versions[scanner.id] = scanner.token_version  # at once on this node
    return json_response(scanner_out(scanner))


async def conflicts(request: web.Request, _: Principal) -> web.Response:
    found = await request.app[BOOKING].door.conflicts(event_id(request))
    return json_response([conflict_out(c).model_dump(mode="json") for c in found])


async def progress(request: web.Request, _: Principal) -> web.Response:
    booking = request.app[BOOKING]
    await booking.inventory.event(event_id(request))  # 404 for an unknown event
    return json_response(progress_out(await booking.door.progress(event_id(request))))


async def set_reentry(request: web.Request, _: Principal) -> web.Response:
    wanted = await read_model(request, ReentryUpdate)
    door = request.app[BOOKING].door
    await door.set_reentry(event_id(request), wanted.reentry)
    return json_response(CheckInSettingsOut(event_id=event_id(request), reentry=wanted.reentry))


async def ticket_keys(request: web.Request, _: Principal) -> web.Response:
    codes = request.app[BOOKING].codes
    await codes.ready()
    return json_response([key_out(k).model_dump(mode="json") for k in codes.keys.public_keys()])


async def rotate_ticket_keys(request: web.Request, _: Principal) -> web.Response:
    codes = request.app[BOOKING].codes
    await codes.keys.rotate()
    return json_response(
        [key_out(k).model_dump(mode="json") for k in codes.keys.public_keys()], 201
    )


OPERATIONS: list[Operation] = [
    Operation("POST", "/api/checkin", scan, "Scan a ticket at the door", "check-in",
              access=Access.SCANNER, body=ScanRequest, response=ScanOut, errors=(404, 409),
              description="Admits the ticket once (the node redeems concurrent scans together, "
              "one transaction per batch under row locks: of two gates scanning one code at "
              "once exactly one admits): 200 `admitted`. Else a problem says why not, with the "
              "scan's fields: 409 `already_used` (`used_at`, `used_gate`), `void` (order "
              "cancelled), `wrong_event`; 404 `forged`, `retired_key` (signed by a key rotated "
              "out, after its event). `direction: out` re-arms the ticket where the event "
              "allows re-entry: 200 `exited`, or 409 `not_inside`."),
    Operation("GET", "/api/checkin/events/{event_id}/list", checkin_list,
              "The event's check-in list, for scanning offline", "check-in",
              access=Access.SCANNER, response=CheckInListOut, errors=(404,),
              description="Ticket ids (first 96 bits of SHA-256 of the code, base64url) of the "
              "valid, void and already used tickets, and the Ed25519 public keys that verify "
              "the event's codes."),
    Operation("POST", "/api/checkin/events/{event_id}/sync", sync,
              "Upload redemptions made offline", "check-in", access=Access.SCANNER,
              body=SyncRequest, response=SyncOut, errors=(404,),
              description="A ticket's entries and exits (`direction: out`, re-entry events) are "
              "replayed in time order, whatever the order scanners sync in: the earliest "
              "entry wins, any other entry while inside becomes a conflict (both gates and times, "
              "`GET /api/admin/events/{event_id}/checkin/conflicts`). Uploading the same "
              f"redemption twice changes nothing. At most {MAX_UPLOAD} per request."),
    Operation("POST", "/api/admin/scanners", mint_scanner, "Mint a door scanner's token",
              "check-in", access=Access.ADMIN, body=ScannerCreate, status=201,
              response=ScannerOut, errors=(404,),
              description="A token of role `scanner` for a device at a gate (bound to one "
              "event, or any), valid `ttl_hours`; shown once."),
    Operation("GET", "/api/admin/scanners", list_scanners, "Door scanners", "check-in",
              access=Access.ADMIN, response=ScannerOut, many=True),
    Operation("POST", "/api/admin/scanners/{scanner_id}/revoke", revoke_scanner,
              "Revoke a door scanner", "check-in", access=Access.ADMIN, response=ScannerOut,
              errors=(404,),
              description="Its tokens stop working at once on this node, within 5 s on the "
              "others."),
    Operation("GET", "/api/admin/events/{event_id}/checkin", progress, "Check-in progress",
              "check-in", access=Access.ADMIN, response=ProgressOut, errors=(404,)),
    Operation("PUT", "/api/admin/events/{event_id}/checkin", set_reentry,
              "Allow or forbid re-entry", "check-in", access=Access.ADMIN,
              body=ReentryUpdate, response=CheckInSettingsOut, errors=(404,)),
    Operation("GET", "/api/admin/events/{event_id}/checkin/conflicts", conflicts,
              "Tickets let in twice", "check-in", access=Access.ADMIN, response=ConflictOut,
              many=True, errors=(404,)),
    Operation("GET", "/api/admin/ticket-keys", ticket_keys, "Ticket signing keys", "check-in",
              access=Access.ADMIN, response=PublicKeyOut, many=True),
    Operation("POST", "/api/admin/ticket-keys/rotate", rotate_ticket_keys,
              "Rotate the ticket signing key", "check-in", access=Access.ADMIN, status=201,
              response=PublicKeyOut, many=True,
              description="New tickets are signed with a new key; the old one keeps verifying "
              "the codes of events not over yet (12 h past their start)."),
]  # fmt: skip
