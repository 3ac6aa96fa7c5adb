"""The box office's order desk (role ``admin``): find orders, read an order's file, cancel and
refund whatever the policy says, resend the confirmation, take a failing refund over, read the
audit log. Every change names a reason and is audited (:mod:`booking.staff`)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from booking.audit import AuditEntry, Staff
from booking.clock import iso
from booking.outbox import Delivery, shown_times
from booking.refunds import Refund
from server.api import models
from server.api.auth import Access, user_name
from server.api.events import summaries
from server.api.operations import Operation
from server.api.payloads import json_response, read_model, read_query
from server.auth import Principal
from server.bodies import OrderOut, order_out
from server.keys import BOOKING


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def refund_out(refund: Refund) -> models.RefundOut:
    return models.RefundOut(
        refund_id=refund.id, status=refund.status,  # type: ignore[arg-type]
        amount_cents=refund.amount_cents, currency=refund.currency, attempts=refund.attempts,
        next_attempt_at=_iso(refund.next_attempt_at) if refund.status == "pending" else None,
        last_error=refund.last_error, requested_by=refund.requested_by,
        created_at=iso(refund.created_at), updated_at=iso(refund.updated_at),
    )  # fmt: skip


def delivery_out(delivery: Delivery) -> models.DeliveryOut:
    status = delivery.status
    next_attempt_at, sent_at = shown_times(status, delivery.next_attempt_at, delivery.sent_at)
    return models.DeliveryOut(
        id=delivery.id, kind=delivery.kind, recipient=delivery.recipient, status=status,
        attempts=delivery.attempts, last_error=delivery.last_error, skipped=delivery.skipped,
        next_attempt_at=_iso(next_attempt_at), sent_at=_iso(sent_at),
        created_at=iso(delivery.created_at),
    )  # fmt: skip


def audit_out(entry: AuditEntry) -> models.AuditEntryOut:
    return models.AuditEntryOut(
        id=entry.id, at=iso(entry.at), actor=entry.actor, action=entry.action,
        target=entry.target, reason=entry.reason, details=entry.details,
    )  # fmt: skip


async def _staff(request: web.Request, principal: Principal) -> Staff:
    """Who makes a desk change, with the reason the body names (the audit log keeps both)."""
    wanted = await read_model(request, models.StaffReason)
    return Staff(user_name(principal), wanted.reason)


async def list_all_events(request: web.Request, _: Principal) -> web.Response:
    return summaries(await request.app[BOOKING].inventory.events())


async def search_orders(request: web.Request, _: Principal) -> web.Response:
    wanted = read_query(request, models.OrderSearch)
    found = await request.app[BOOKING].box_office.search(wanted.q, wanted.event_id)
    return json_response([order_out(order).model_dump(mode="json") for order in found])


async def order_file(request: web.Request, _: Principal) -> web.Response:
    booking = request.app[BOOKING]
    found = await booking.box_office.file(request.match_info["order_id"])
    event = await booking.inventory.event(found.order.event_id)
    return json_response(
        models.OrderFileOut(
            order=order_out(found.order),
            user_id=found.user_id,
            event_name=event.name,
            payments=[
                models.PaymentOut(
                    payment_id=p.id, status=p.status, amount_cents=p.amount_cents,
                    currency=p.currency, provider=p.provider, created_at=iso(p.created_at),
                    updated_at=iso(p.updated_at),
                )
                for p in found.payments
            ],
            refund=None if found.refund is None else refund_out(found.refund),
            deliveries=[delivery_out(d) for d in found.deliveries],
            audit=[audit_out(a) for a in found.audit],
        )
    )  # fmt: skip


async def staff_cancel(request: web.Request, principal: Principal) -> web.Response:
    staff = await _staff(request, principal)
    order = await request.app[BOOKING].box_office.cancel(request.match_info["order_id"], staff)
    return json_response(order_out(order))


async def resend_confirmation(request: web.Request, principal: Principal) -> web.Response:
    wanted = await read_model(request, models.ResendRequest)
    order = await request.app[BOOKING].box_office.resend_confirmation(
        request.match_info["order_id"], Staff(user_name(principal), wanted.reason), wanted.email
    )
    return json_response(order_out(order), 202)


async def refund_manually(request: web.Request, principal: Principal) -> web.Response:
    staff = await _staff(request, principal)
    refund = await request.app[BOOKING].box_office.refund_manually(
        request.match_info["order_id"], staff
    )
    return json_response(refund_out(refund))


async def audit_log(request: web.Request, _: Principal) -> web.Response:
    wanted = read_query(request, models.AuditQuery)
    entries = await request.app[BOOKING].box_office.audit_log(wanted.target, wanted.limit)
    return json_response([audit_out(e).model_dump(mode="json") for e in entries])


OPERATIONS: list[Operation] = [
    Operation("GET", "/api/admin/events", list_all_events, "Every event, drafts too", "admin",
              access=Access.ADMIN, response=models.EventSummary, many=True),
    Operation("GET", "/api/admin/orders", search_orders, "Find orders", "order desk",
              access=Access.ADMIN, query=models.OrderSearch, response=OrderOut, many=True,
              description="By e-mail address, order id, ticket code or seat id (`event_id` "
              "narrows a seat to one event); newest first, at most 50."),
    Operation("GET", "/api/admin/orders/{order_id}", order_file, "An order's file",
              "order desk", access=Access.ADMIN, response=models.OrderFileOut, errors=(404,),
              description="The order with its payments, refund, e-mail deliveries and the "
              "staff actions on it."),
    Operation("POST", "/api/admin/orders/{order_id}/cancel", staff_cancel,
              "Cancel and refund (overriding the policy)", "order desk", access=Access.ADMIN,
              body=models.StaffReason, response=OrderOut, errors=(404, 409),
              description="Whatever the event's refund policy says; the reason is audited."),
    Operation("POST", "/api/admin/orders/{order_id}/resend", resend_confirmation,
              "Resend the confirmation", "order desk", access=Access.ADMIN,
              body=models.ResendRequest, status=202, response=OrderOut, errors=(404, 409, 422),
              description="Queued at once; with `email`, to that address (which becomes the "
              "order's). Audited. 409 for a cancelled order (its tickets are void)."),
    Operation("POST", "/api/admin/orders/{order_id}/refund/manual", refund_manually,
              "Take a failing refund over", "order desk", access=Access.ADMIN,
              body=models.StaffReason, response=models.RefundOut, errors=(404, 409),
              description="Stops the retries: the box office refunds outside the gateway (the "
              "payment says `refund_manual`). Audited; 409 unless the refund is pending."),
    Operation("GET", "/api/admin/audit", audit_log, "The audit log", "order desk",
              access=Access.ADMIN, query=models.AuditQuery, response=models.AuditEntryOut,
              many=True, description="Staff actions, newest first: who, what, to what, when, "
              "why."),
]  # fmt: skip
