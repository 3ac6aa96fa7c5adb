"""Integration events: what systems behind the box office hear about (issue 17).

Every order paid, cancelled or refunded and every hold that expired is recorded as an *event*
in the outbox (:mod:`booking.outbox`, kind :data:`INTEGRATION_EVENT`) **on the connection and
in the transaction of the change**, so an event exists exactly when its change does. The server
publishes each one afterwards to a durable queue and to the admins' webhooks
(``server/integrations.py``); a crash between the commit and the publishing leaves the event in
the outbox, published after the restart.

An event's ``id`` is derived from what it is about (its type and subject), so recording it twice
(a retried request) keeps one, and every copy a consumer may receive (at-least-once delivery)
carries the same id: consumers act once per id.

This module also keeps the webhook endpoints admins register (table ``webhooks``) and reads
their delivery log: one outbox row of kind :data:`WEBHOOK_DELIVERY` per event and webhook.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking import audit
from booking.audit import Staff
from booking.clock import iso, utcnow
from booking.outbox import SKIPPED, DeliveryStatus, delivery_status, enqueue
from booking.rows import row_by_id
from booking.schema import outbox, webhooks

#: The outbox kind of an integration event (one row per event).
INTEGRATION_EVENT = "integration_event"
#: The outbox kind of one event's delivery to one webhook (one row per event and webhook).
WEBHOOK_DELIVERY = "webhook"

ORDER_PAID = "order.paid"
ORDER_CANCELLED = "order.cancelled"
ORDER_REFUNDED = "order.refunded"
HOLD_EXPIRED = "hold.expired"
EVENT_TYPES = (ORDER_PAID, ORDER_CANCELLED, ORDER_REFUNDED, HOLD_EXPIRED)

_NAMESPACE = uuid.UUID("6f1b1a52-3c1e-4f0e-9d55-6c2f8f0e1717")


def event_id(event_type: str, subject: str) -> str:
    """The id of the event of ``event_type`` about ``subject``: the same every time."""
    return f"evt_{uuid.uuid5(_NAMESPACE, f'{event_type}:{subject}').hex}"


def queue_of(event_type: str) -> str:
    """The ``/queue/`` name an event type is published to: ``integration.orders`` for the
    ``order.*`` events, ``integration.holds`` for ``hold.*``."""
    return f"integration.{event_type.split('.', 1)[0]}s"


async def record(
    conn: AsyncConnection, event_type: str, subject: str, data: Mapping[str, Any]
) -> None:
    """Record an event in the caller's transaction (the change's own)."""
    eid = event_id(event_type, subject)
    payload = {"id": eid, "type": event_type, "occurred_at": iso(utcnow()), "data": dict(data)}
    await enqueue(conn, INTEGRATION_EVENT, payload, f"event:{eid}")


# -- webhooks ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    url: str
    secret: str
    #: Event types it receives; empty: every type.
    events: tuple[str, ...]
    active: bool
    created_by: str
    created_at: datetime

    def wants(self, event_type: str) -> bool:
        return self.active and (not self.events or event_type in self.events)


def _webhook(row: Any) -> Webhook:
    events = () if row.events == "*" else tuple(e for e in row.events.split(",") if e)
    return Webhook(
        id=row.id, url=row.url, secret=row.secret, events=events, active=row.active,
        created_by=row.created_by, created_at=row.created_at,
    )  # fmt: skip


class Webhooks:
    """The webhook endpoints admins registered."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self, url: str, events: tuple[str, ...], by: Staff, secret: str | None = None
    ) -> Webhook:
        """Register an endpoint; audited (it will receive every order's buyer data)."""
        values = {
            "url": url,
            "secret": secret or secrets.token_urlsafe(32),
            "events": ",".join(events) if events else "*",
            "active": True,
            "created_by": by.actor,
            "created_at": utcnow(),
        }
        async with self.engine.begin() as conn:
            result = await conn.execute(insert(webhooks).values(**values))
            new_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            details = {"url": url, "events": list(events)}
            await audit.record(conn, by.actor, "webhook.create", f"webhook:{new_id}",
                               reason=by.reason, details=details)  # fmt: skip
        return await self.get(new_id)

    async def get(self, webhook_id: int) -> Webhook:
        async with self.engine.connect() as conn:
            row = await row_by_id(conn, webhooks, webhook_id, f"no webhook {webhook_id}")
        return _webhook(row)

    async def all(self) -> list[Webhook]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(webhooks).order_by(webhooks.c.id))
            return [_webhook(row) for row in rows]

    async def deactivate(self, webhook_id: int, by: Staff) -> Webhook:
        """Stop deliveries to an endpoint (its pending ones are dropped unsent); audited."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(webhooks)
                .where(webhooks.c.id == webhook_id, webhooks.c.active.is_(True))
                .values(active=False)
            )
            if result.rowcount == 0:  # unknown (404), or inactive already: nothing to record
                return _webhook(
                    await row_by_id(conn, webhooks, webhook_id, f"no webhook {webhook_id}")
                )
            await audit.record(conn, by.actor, "webhook.deactivate", f"webhook:{webhook_id}",
                               reason=by.reason)  # fmt: skip
        return await self.get(webhook_id)

    async def fan_out(
        self, payload: Mapping[str, Any], hooks: Sequence[Webhook] | None = None
    ) -> int:
        """Queue the delivery of one event to every active webhook that wants it (one outbox row
        each, retried on its own); how many. ``hooks``: the webhooks as the caller just read
        them (else they are read here)."""
        if hooks is None:
            hooks = await self.all()
        wanted = [w for w in hooks if w.wants(str(payload["type"]))]
        if not wanted:
            return 0
        async with self.engine.begin() as conn:
            for hook in wanted:
                await enqueue(
                    conn, WEBHOOK_DELIVERY,
                    {"webhook_id": hook.id, "url": hook.url, "event": dict(payload)},
                    f"webhook:{hook.id}:{payload['id']}", ref=delivery_ref(hook.id),
                )  # fmt: skip
        return len(wanted)

    async def deliveries(self, webhook_id: int) -> list[WebhookDelivery]:
        """A webhook's delivery log, newest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(outbox)
                .where(outbox.c.ref == delivery_ref(webhook_id), outbox.c.kind == WEBHOOK_DELIVERY)
                .order_by(outbox.c.id.desc())
            )
            return [_webhook_delivery(row) for row in rows]

    async def note_answer(self, delivery_id: int, payload: Mapping[str, Any]) -> None:
        """Keep ``payload`` (with the latest answer's HTTP status) on a delivery that will be
        retried: the outbox records only the error of a failed attempt."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(outbox).where(outbox.c.id == delivery_id).values(payload=json.dumps(payload))
            )


def delivery_ref(webhook_id: int) -> str:
    """The outbox ``ref`` of a webhook's deliveries (its delivery log)."""
    return f"webhook:{webhook_id}"


#: What the sender keeps in a delivery's payload: the HTTP status of the latest answer (and,
#: under :data:`~booking.outbox.SKIPPED`, why it was dropped unsent: the webhook was
#: deactivated).
HTTP_STATUS = "http_status"


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event's delivery to one webhook, as its outbox row records it (the delivery log)."""

    id: int
    event_id: str
    event_type: str
    attempts: int
    #: The HTTP status of the latest answer; ``None`` before one came (or with no answer).
    http_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    sent_at: datetime | None
    created_at: datetime
    #: Why it was not sent (the webhook was deactivated first); ``None`` otherwise.
    skipped: str | None

    @property
    def status(self) -> DeliveryStatus:
        return delivery_status(self.sent_at, self.attempts, self.skipped)


def _webhook_delivery(row: Any) -> WebhookDelivery:
    payload = json.loads(row.payload)
    event = payload.get("event", {})
    status = payload.get(HTTP_STATUS)
    return WebhookDelivery(
        id=row.id, event_id=str(event.get("id", "")), event_type=str(event.get("type", "")),
        attempts=row.attempts, http_status=int(status) if status is not None else None,
        last_error=row.last_error, next_attempt_at=row.next_attempt_at, sent_at=row.sent_at,
        created_at=row.created_at, skipped=payload.get(SKIPPED),
    )  # fmt: skip
