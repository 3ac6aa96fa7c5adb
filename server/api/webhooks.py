"""Admin endpoints for the webhooks of integration events (issue 17): register, list,
deactivate, and read one webhook's delivery log."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import AnyHttpUrl, BaseModel, Field

from booking.audit import Staff
from booking.clock import iso
from booking.integration import EVENT_TYPES, Webhook, WebhookDelivery
from booking.outbox import shown_times
from server.api.auth import Access, user_name
from server.api.operations import Operation
from server.api.payloads import json_response, read_model
from server.auth import Principal
from server.bodies import Request, Timestamp
from server.errors import Problem
from server.integrations import refuses
from server.keys import BOOKING, SETTINGS

EventType = Literal["order.paid", "order.cancelled", "order.refunded", "hold.expired"]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


class WebhookCreate(Request):
    url: AnyHttpUrl = Field(description="where events are POSTed (http or https)")
    events: list[EventType] = Field(
        default_factory=list, description="event types to receive; empty or omitted: every type"
    )
    secret: str | None = Field(
        None, min_length=16, max_length=128,
        description="the HMAC-SHA256 key of the signature header; omitted: one is generated",
    )  # fmt: skip


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str] = Field(description="empty: every type")
    active: bool
    created_by: str
    created_at: Timestamp
    secret: str | None = Field(None, description="only in the answer that created it")


def webhook_out(hook: Webhook, *, with_secret: bool = False) -> WebhookOut:
    return WebhookOut(
        id=hook.id, url=hook.url, events=list(hook.events), active=hook.active,
        created_by=hook.created_by, created_at=iso(hook.created_at),
        secret=hook.secret if with_secret else None,
    )  # fmt: skip


class WebhookDeliveryOut(BaseModel):
    """One event's delivery to one webhook."""

    id: int = Field(description="the delivery (the X-Concert-Hub-Delivery header)")
    event_id: str
    event_type: str
    status: Literal["sent", "pending", "retrying", "skipped"] = Field(
        description="skipped: the webhook was deactivated before it was sent"
    )
    attempts: int
    http_status: int | None = Field(description="the latest answer's; null before one came")
    last_error: str | None
    next_attempt_at: Timestamp | None = Field(description="while neither sent nor skipped")
    sent_at: Timestamp | None
    created_at: Timestamp


def webhook_delivery_out(delivery: WebhookDelivery) -> WebhookDeliveryOut:
    status = delivery.status
    next_attempt_at, sent_at = shown_times(status, delivery.next_attempt_at, delivery.sent_at)
    return WebhookDeliveryOut(
        id=delivery.id, event_id=delivery.event_id, event_type=delivery.event_type,
        status=status, attempts=delivery.attempts, http_status=delivery.http_status,
        last_error=delivery.last_error,
        next_attempt_at=iso(next_attempt_at) if next_attempt_at else None,
        sent_at=iso(sent_at) if sent_at else None, created_at=iso(delivery.created_at),
    )  # fmt: skip


def webhook_id(request: web.Request) -> int:
    return int(request.match_info["webhook_id"])


async def create_webhook(request: web.Request, principal: Principal) -> web.Response:
    wanted = await read_model(request, WebhookCreate)
    refused = None if request.app[SETTINGS].webhook_allow_private else refuses(str(wanted.url))
    if refused is not None:
        raise Problem.of(
            "validation", refused, errors=[{"loc": ["url"], "msg": refused, "type": "value_error"}]
        )
    hook = await request.app[BOOKING].webhooks.create(
        str(wanted.url),
        tuple(dict.fromkeys(wanted.events)),
        Staff(user_name(principal)),
        wanted.secret,
    )
    return json_response(webhook_out(hook, with_secret=True), 201)


async def list_webhooks(request: web.Request, _: Principal) -> web.Response:
    hooks = await request.app[BOOKING].webhooks.all()
    return json_response([webhook_out(h).model_dump() for h in hooks])


async def deactivate_webhook(request: web.Request, principal: Principal) -> web.Response:
    by = Staff(user_name(principal))
    hook = await request.app[BOOKING].webhooks.deactivate(webhook_id(request), by)
    return json_response(webhook_out(hook))


async def webhook_deliveries(request: web.Request, _: Principal) -> web.Response:
    webhooks = request.app[BOOKING].webhooks
    hook = await webhooks.get(webhook_id(request))
    found = await webhooks.deliveries(hook.id)
    return json_response([webhook_delivery_out(d).model_dump() for d in found])


OPERATIONS: list[Operation] = [
    Operation("POST", "/api/admin/webhooks", create_webhook, "Register a webhook", "admin",
              access=Access.ADMIN, body=WebhookCreate, status=201, response=WebhookOut,
              errors=(422,),
              description="Integration events (order paid, cancelled, refunded; hold expired) "
              "are POSTed to `url` as JSON, signed with `X-Concert-Hub-Signature: sha256=<hex "
              "HMAC-SHA256 of the body>`; retried with backoff until a 2xx answer."),
    Operation("GET", "/api/admin/webhooks", list_webhooks, "The registered webhooks", "admin",
              access=Access.ADMIN, response=WebhookOut, many=True),
    Operation("DELETE", "/api/admin/webhooks/{webhook_id}", deactivate_webhook,
              "Deactivate a webhook", "admin", access=Access.ADMIN, response=WebhookOut,
              errors=(404,), description="Nothing more is sent to it; its log is kept."),
    Operation("GET", "/api/admin/webhooks/{webhook_id}/deliveries", webhook_deliveries,
              "A webhook's delivery log", "admin", access=Access.ADMIN,
              response=WebhookDeliveryOut, many=True, errors=(404,),
              description="One entry per event, newest first: the event's id and type, "
              "attempts, the latest answer's HTTP status, the last error, when it was "
              "delivered or when the next attempt is due."),
]  # fmt: skip
