"""The JSON bodies both edges speak (SPEC §5, §6): requests parsed into models, domain values
rendered.

The REST API documents these models in its OpenAPI document; the STOMP ``/app`` commands take the
same request bodies and answer with the same shapes on ``/user/queue/replies``, and waiting-room
pushes on ``/user/queue/position`` are the same body as ``GET /api/events/{id}/queue/me``. The
booking core returns domain values (:class:`~booking.holds.Hold`,
:class:`~booking.orders.Order`, :class:`~booking.waiting_room.Position` …); this module is where
they take their wire shape. Instants are RFC 3339 strings in UTC with ``Z``.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Literal, TypeVar

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    model_validator,
)

from booking.best_available import BlockRequest
from booking.catalog import MAX_INT
from booking.clock import from_unix, iso
from booking.holds import Hold, HoldClient, SeatHolds
from booking.orders import Order, TicketCheck
from booking.waiting_room import QUEUED, Position
from server.errors import Problem

Timestamp = Annotated[
    str, Field(json_schema_extra={"format": "date-time"}, examples=["2030-05-01T19:30:00Z"])
]
SeatId = Annotated[str, Field(min_length=1, max_length=32, examples=["A-C-12"])]


def _address(value: str) -> str:
    """An address alone (no display name, no list), as email-validator normalises it; its
    syntax check refuses CR, LF and anything else a mail header could be smuggled in with.
    The part before the @ must be ASCII: one that is not needs SMTPUTF8, which neither the
    .eml outbox nor every relay speaks, so its e-mails would wait to be sent for ever (a
    non-ASCII domain is fine: it goes out as IDNA)."""
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
        return str(checked.normalized)
    except EmailNotValidError as exc:
        raise ValueError(f"not an e-mail address: {exc}") from None


#: An e-mail address, at most 254 characters (RFC 5321).
Email = Annotated[
    str,
    Field(min_length=3, max_length=254, examples=["ada@example.com"],
          json_schema_extra={"format": "email"}),
    AfterValidator(_address),
]  # fmt: skip

M = TypeVar("M", bound=BaseModel)


class Request(BaseModel):
    """A request body: unknown members are refused, so a misspelt field is a 422 naming it
    rather than a silently ignored wish."""

    model_config = ConfigDict(extra="forbid")


def parse(raw: bytes, model: type[M]) -> M:
    """``raw`` JSON as ``model``, or the 400/422 :class:`~server.errors.Problem` (REST and STOMP
    alike). A 422's ``errors`` list names each fault (``loc``, ``msg``, ``type``, as pydantic
    reports them, without echoing the input)."""
    if not raw.strip():
        raise Problem.of("bad_request", "the request body must be a JSON document")
    try:
        data = loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Problem.of("bad_request", f"the request body is not valid JSON: {exc}") from None
    return validate(data, model, "the request body")


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def loads(raw: bytes | str) -> object:
    """The edges' one JSON reader (REST and STOMP bodies): standard JSON only, so ``NaN``,
    ``Infinity`` and numbers too large for a double (``1e400``) are a :class:`ValueError`."""
    return json.loads(raw, parse_constant=_no_constant, parse_float=_finite)


def validate(data: object, model: type[M], what: str) -> M:
    """``data`` as ``model``, or the 422 problem naming each fault of ``what``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        faults = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise Problem.of("validation", f"{what} does not match the schema", errors=faults) from None


# -- requests ---------------------------------------------------------------------------------


class BestAvailable(Request):
    """Let the server pick: ``count`` adjacent seats in one row, the best that are left."""

    count: int = Field(ge=1, le=100, description="how many seats, side by side in one row")
    tier: (
        Annotated[StrictInt, Field(ge=1, le=MAX_INT)]
        | Annotated[str, Field(min_length=1, max_length=64)]
        | None
    ) = Field(
        default=None,
        description="only this price tier: its id (`tiers[].id` of the event, as the web UI "
        "sends it) or its name",
        examples=[3, "Premium"],
    )
    section: str | None = Field(
        default=None, min_length=1, max_length=16, description="only this section (its name)"
    )
    accessible: StrictBool = Field(
        default=False,
        description="a wheelchair space, with a companion seat beside it when count >= 2; "
        "otherwise wheelchair spaces and companion seats are never picked",
    )

    def domain(self) -> BlockRequest:
        return BlockRequest(self.count, self.tier, self.section, self.accessible)


class HoldRequest(Request):
    """Either the seats (``seats``) or best available (``best_available``), not both."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["seats"]}, {"required": ["best_available"]}]}
    )

    seats: list[SeatId] | None = Field(
        default=None, min_length=1, max_length=100, description="these seats, all or nothing"
    )
    best_available: BestAvailable | None = Field(
        default=None, description="instead of `seats`: the server picks and holds the best block"
    )

    @model_validator(mode="after")
    def _one_way(self) -> HoldRequest:
        if (self.seats is None) == (self.best_available is None):
            raise ValueError("give either seats or best_available")
        return self

    async def place(
        self,
        holds: SeatHolds,
        event_id: int,
        user: str,
        admission: str | None,
        client: HoldClient,
    ) -> Hold:
        """Hold what this request asks for (REST and STOMP alike), for ``client`` (its IP and
        verified e-mail address, counted against the per-client caps)."""
        if self.best_available is not None:
            return await holds.hold_best(
                event_id, user, self.best_available.domain(), admission, client
            )
        assert self.seats is not None  # one of the two: _one_way
        return await holds.hold(event_id, user, self.seats, admission, client)


# -- domain values, rendered -------------------------------------------------------------------


class HoldOut(BaseModel):
    hold_id: str
    event_id: int
    seats: list[str]
    status: Literal["active", "released", "expired", "purchased"]
    created_at: Timestamp
    expires_at: Timestamp
    amount_cents: int
    currency: str
    order_id: str | None = Field(
        default=None, description="the order that bought the hold (when it is `purchased`)"
    )


def hold_out(hold: Hold, now: datetime) -> HoldOut:
    status = hold.status
    if status == "active" and hold.expires_at <= now:
        status = "expired"  # lapsed; the reaper has not written it down yet
    return HoldOut(
        hold_id=hold.id,
        event_id=hold.event_id,
        seats=hold.seat_ids,
        status=status,  # type: ignore[arg-type]  # the database holds HoldOut's values
        created_at=iso(hold.created_at),
        expires_at=iso(hold.expires_at),
        amount_cents=hold.amount_cents,
        currency=hold.currency,
        order_id=hold.order_id,
    )


class TicketOut(BaseModel):
    code: str
    seat_id: str
    status: Literal["valid", "void"]


class OrderOut(BaseModel):
    order_id: str
    status: Literal["paid", "cancelled"]
    event_id: int
    amount_cents: int
    currency: str
    created_at: Timestamp
    tickets: list[TicketOut]
    email: str | None = Field(default=None, description="where the confirmation goes")
    cancellable_until: Timestamp | None = Field(
        default=None,
        description="the buyer may cancel (and is refunded) until then; null: not at all",
    )
    refund: Literal["pending", "refunded", "manual"] | None = Field(
        default=None,
        description="a cancelled order's refund: pending (being retried), refunded, or manual "
        "(the box office refunds outside the gateway)",
    )


def order_out(order: Order) -> OrderOut:
    return OrderOut(
        order_id=order.id,
        status=order.status,  # type: ignore[arg-type]  # the database holds OrderOut's values
        event_id=order.event_id,
        amount_cents=order.amount_cents,
        currency=order.currency,
        created_at=iso(order.created_at),
        tickets=[
            TicketOut(code=t.code, seat_id=t.seat_id, status=t.status)  # type: ignore[arg-type]
            for t in order.tickets
        ],
        email=order.email,
        cancellable_until=None if order.cancellable_until is None else iso(order.cancellable_until),
        refund=order.refund,  # type: ignore[arg-type]  # the database holds these values
    )


class TicketCheckOut(BaseModel):
    code: str
    valid: bool
    status: Literal["valid", "void"]
    event_id: int
    seat_id: str
    order_id: str


def ticket_check_out(check: TicketCheck) -> TicketCheckOut:
    return TicketCheckOut(
        code=check.code,
        valid=check.valid,
        status=check.status,  # type: ignore[arg-type]  # the database holds these values
        event_id=check.event_id,
        seat_id=check.seat_id,
        order_id=check.order_id,
    )


class ChallengeOut(BaseModel):
    """A proof-of-work challenge for joining a waiting room (:mod:`booking.proof`)."""

    challenge: str
    difficulty: int = Field(description="leading zero bits the hash must have; 0: none needed")
    expires_at: str


class OfferOut(BaseModel):
    """Seats that came back, on hold for the user they were offered to."""

    hold_id: str
    seats: list[str]
    expires_at: str


class QueuePositionOut(BaseModel):
    """Where a user stands in an event's waiting room (SPEC §6)."""

    event_id: int
    state: Literal[
        "waiting", "paused", "sold_out", "admitted", "expired", "closed", "not_joined"
    ] = Field(
        description="`paused`: still in line, every seat is held (some may come back); "
        "`sold_out`: still in line, no seat left and no hold open (told if seats return); "
        "`not_joined`: you are not in this waiting room (GET only)"
    )
    position: int | None = Field(description="1 = next to be admitted; null in the pre-queue")
    ahead: int | None
    waiting_total: int
    eta_seconds: int | None
    admission_token: str | None = Field(
        default=None, description="when admitted: send it as X-Admission-Token to hold seats"
    )
    expires_at: str | None = Field(default=None, description="when admitted: until when")
    offer: OfferOut | None = Field(
        default=None,
        description="when admitted for seats that came back: the seats on hold for you",
    )


def position_body(position: Position) -> dict[str, object]:
    """The position body (SPEC §6); ``admission_token`` and ``expires_at`` only when admitted.
    A plain dict, not a model: 10,000 waiting users are thousands of these a second."""
    body: dict[str, object] = {
        "event_id": position.event_id,
        "state": position.state,
        "position": position.position,
        "ahead": position.ahead,
        "waiting_total": position.waiting_total,
        "eta_seconds": position.eta_seconds,
    }
    if position.admission_token is not None and position.admitted_until is not None:
        body["admission_token"] = position.admission_token
        body["expires_at"] = iso(from_unix(position.admitted_until))
        offer = position.offer
        if offer is not None:
            body["offer"] = {"hold_id": offer.hold_id, "seats": list(offer.seats),
                             "expires_at": iso(from_unix(offer.expires_at))}  # fmt: skip
    return body


def _number(value: int | None) -> str:
    return "null" if value is None else str(value)


def position_json(position: Position) -> bytes:
    """``dumps(position_body(position))``, byte for byte.

    Written directly for a user still in line (every waiting user's body, every
    ``--position-interval-s``: at 10,000 users the generic encoder took a tenth of the node's
    CPU). Their states are plain words, written as they are; any other body goes through
    :func:`position_body`.
    """
    if position.state not in QUEUED or position.admission_token is not None:
        return dumps(position_body(position))
    return (
        f'{{"event_id":{position.event_id},"state":"{position.state}",'
        f'"position":{_number(position.position)},"ahead":{_number(position.ahead)},'
        f'"waiting_total":{position.waiting_total},'
        f'"eta_seconds":{_number(position.eta_seconds)}}}'
    ).encode()


def position_out(position: Position) -> QueuePositionOut:
    return QueuePositionOut.model_validate(position_body(position))


def dumps(payload: object) -> bytes:
    """Compact JSON bytes of a plain payload (a STOMP body)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
