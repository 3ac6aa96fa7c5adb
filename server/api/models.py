"""The REST API's own request and response bodies (pydantic), and so its OpenAPI schemas.

The bodies it shares with the STOMP edge (holds, orders, queue positions) are in
:mod:`server.bodies`. Request models forbid unknown members, so a misspelt field is a 422 naming
it rather than a silently ignored wish. Instants are RFC 3339 strings in UTC with ``Z``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from booking.catalog import MAX_INT, EventPatch, EventSpec, EventStatus, SeatAccessPatch
from server.bodies import Email, OrderOut, Request, Timestamp

SeatStatus = Literal["available", "held", "sold", "blocked"]
Level = Literal["info", "warning", "critical"]
#: Words a person writes for others to read (an announcement, a staff member's reason): trimmed,
#: so that blank is empty; an announcement of spaces pushed to every buyer, or a blank "why" in
#: the audit log, is refused rather than kept.
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


# -- requests ---------------------------------------------------------------------------------


class Payment(Request):
    method: Literal["card"] = "card"
    token: str = Field(
        min_length=1,
        max_length=200,
        description="card token; the test gateway knows tok_visa, tok_declined, tok_error, "
        "tok_timeout",
        examples=["tok_visa"],
    )


class CheckoutRequest(Request):
    payment: Payment
    email: Email | None = Field(
        default=None,
        description="where the confirmation (tickets, PDF, the order's link) goes; required "
        "for guests, a signed-in customer's own address when omitted",
    )


class CancelRequest(Request):
    reason: Text | None = Field(
        default=None, description="why (kept in the audit log when staff cancel)"
    )


class StaffReason(Request):
    reason: Text = Field(min_length=1, description="why: kept in the audit log")


class ResendRequest(StaffReason):
    email: Email | None = Field(
        default=None, description="send to this address instead (it becomes the order's)"
    )


class OrderSearch(Request):
    q: str = Field(
        min_length=1, max_length=256,
        description="an e-mail address, an order id, a ticket code or a seat id",
    )  # fmt: skip
    event_id: int | None = Field(
        default=None, ge=1, le=MAX_INT, description="only this event's seats"
    )


class AuditQuery(Request):
    target: str | None = Field(
        default=None, max_length=64, description="only entries about this (an order id)"
    )
    limit: int = Field(default=100, ge=1, le=1000)


class BroadcastRequest(Request):
    text: Text = Field(min_length=1)
    level: Level = "info"
    event_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT,
        description="announce on this event's topic instead of to everyone",
    )


class EventCreate(EventSpec):
    model_config = ConfigDict(extra="forbid")

    @field_validator("starts_at", "sale_opens_at", "sale_closes_at", mode="before")
    @classmethod
    def _with_offset(cls, value: object) -> object:
        """RFC 3339 times, offset included. The domain reads a naive time as UTC (its own
        convention); from an admin it more likely meant local time, and a sale would open
        hours off. A number would be read as unix seconds."""
        if not isinstance(value, str):
            raise ValueError("must be an RFC 3339 date-time string")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value  # the field's own validation says what is wrong with it
        if parsed.tzinfo is None:
            raise ValueError("must carry its offset from UTC (Z, +01:00, …)")
        return value


class EventUpdate(EventPatch):
    model_config = ConfigDict(extra="forbid")


class SeatAccessUpdate(SeatAccessPatch):
    model_config = ConfigDict(extra="forbid")


# -- responses --------------------------------------------------------------------------------


class Guest(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>` or STOMP passcode")
    user: str
    role: Literal["user"] = "user"
    expires_at: Timestamp


class TierOut(BaseModel):
    id: int
    name: str
    price_cents: int
    currency: str


class EventSummary(BaseModel):
    id: int
    name: str
    venue: str
    starts_at: Timestamp
    sale_opens_at: Timestamp
    sale_closes_at: Timestamp
    timezone: str = Field(
        description="the venue's time zone (IANA name): show the times above in it",
        examples=["Europe/Berlin"],
    )
    status: EventStatus
    on_sale: bool = Field(description="status is on_sale and the sale window is open now")
    waiting_room: bool
    seat_count: int
    hold_ttl_s: int
    max_seats_per_user: int
    refund_cutoff_hours: int | None = Field(
        description="buyers may cancel until this many hours before the start; null: not at all"
    )
    tiers: list[TierOut]


class SeatOut(BaseModel):
    """A seat of the layout; ``accessible`` and ``companion`` appear (true) only on the seats
    so marked."""

    id: str
    number: int
    tier_id: int
    accessible: bool = Field(default=False, description="a wheelchair space")
    companion: bool = Field(default=False, description="a companion seat beside one")


class RowOut(BaseModel):
    name: str
    seats: list[SeatOut]


class SectionOut(BaseModel):
    name: str
    rows: list[RowOut]


class LayoutOut(BaseModel):
    sections: list[SectionOut]


class EventDetail(EventSummary):
    admission_rate: float
    max_active_shoppers: int
    admission_mode: Literal["fixed", "adaptive"]
    admission_rate_min: float
    admission_rate_max: float
    pow_difficulty: int = Field(description="joining costs a proof of work of this many bits")
    layout: LayoutOut


class SeatSnapshot(BaseModel):
    """The seat map as the STOMP topic's first MESSAGE carries it (SPEC §6)."""

    type: Literal["snapshot"]
    event_id: int
    seq: int = Field(description="the delta sequence this snapshot is current with")
    seats: list[tuple[str, SeatStatus]]


class Announcement(BaseModel):
    id: str
    level: Level
    text: str
    sent_at: Timestamp
    destination: str = Field(description="the topic it was published to")


class NodeStats(BaseModel):
    node_id: str
    connections: int
    subscriptions: int
    last_seen: Timestamp = Field(description="when this node's figures were last heard")


class WaitHistogram(BaseModel):
    edges_s: list[int] = Field(
        description="upper bucket edges in seconds; `counts` has one more bucket (longer)"
    )
    counts: list[int] = Field(description="admissions per bucket, since the queue began")


class QueueStats(BaseModel):
    waiting: int
    serving: int
    active: int = Field(description="admitted shoppers not yet done")
    admitted_per_min: float
    admission_rate: float | None = Field(
        default=None, description="admissions per second now (adaptive mode: this node's)"
    )
    rate_reason: str | None = Field(
        default=None, description="why: `fixed`, `within budget`, or the signal over budget"
    )
    abandoned: int = Field(
        default=0, description="admissions that lapsed unused (users who left or timed out)"
    )
    time_to_admission: WaitHistogram | None = Field(
        default=None, description="how long admitted users waited, as a histogram"
    )


class EventStats(BaseModel):
    event_id: int
    name: str
    status: EventStatus
    waiting_room: bool
    seats: dict[SeatStatus, int]
    holds_active: int
    queue: QueueStats | None = Field(description="the waiting room's, when it is on")


class Stats(BaseModel):
    nodes: list[NodeStats] = Field(description="every node of the cluster heard lately")
    connections: int = Field(description="all nodes'")
    subscriptions: int = Field(description="all nodes'")
    holds_active: int
    sales_per_min: int = Field(description="orders paid in the last 60 seconds")
    events: list[EventStats]


class PaymentOut(BaseModel):
    payment_id: str
    status: str = Field(
        description="charged, refund_pending, refunded, refund_manual, declined, failed …"
    )
    amount_cents: int
    currency: str
    provider: str
    created_at: Timestamp
    updated_at: Timestamp


class RefundOut(BaseModel):
    refund_id: str
    status: Literal["pending", "refunded", "manual"]
    amount_cents: int
    currency: str
    attempts: int
    next_attempt_at: Timestamp | None = Field(description="while pending")
    last_error: str | None
    requested_by: str
    created_at: Timestamp
    updated_at: Timestamp


class DeliveryOut(BaseModel):
    """One e-mail of the outbox."""

    id: int
    kind: str
    recipient: str | None
    status: Literal["sent", "pending", "retrying", "skipped"] = Field(
        description="skipped: not sent, because the order's address was corrected first"
    )
    attempts: int
    last_error: str | None
    skipped: str | None = Field(description="why it was not sent (status skipped)")
    next_attempt_at: Timestamp | None = Field(description="while neither sent nor skipped")
    sent_at: Timestamp | None
    created_at: Timestamp


class AuditEntryOut(BaseModel):
    id: int
    at: Timestamp
    actor: str
    action: str
    target: str
    reason: str | None
    details: dict[str, Any]


class OrderFileOut(BaseModel):
    """Everything the record says about one order (the order desk)."""

    order: OrderOut
    user_id: str = Field(description="who bought it (a guest, a customer id, a user)")
    event_name: str
    payments: list[PaymentOut]
    refund: RefundOut | None
    deliveries: list[DeliveryOut]
    audit: list[AuditEntryOut]


class ValidationFault(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ProblemOut(BaseModel):
    """RFC 9457 problem details; extension members depend on ``kind``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    kind: str
    detail: str
    conflicts: list[str] | None = Field(default=None, description="kind conflict: taken seats")
    errors: list[ValidationFault] | None = Field(default=None, description="kind validation")


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json")
