"""Checkout of a hold into a paid order, reading orders, cancelling them.

Checkout requires an ``Idempotency-Key`` (1 to 200 visible ASCII characters), scoped to the user.
The booking core stores each key's outcome, success or failure, and a retry with the same key
and body gets that outcome again with the same status (and ``Idempotent-Replayed: true``); the
same key with another body is a 422. Admins may read and cancel any order; users their own, a
customer signed in by e-mail every order bought for their address, and the holder of an order's
e-mailed link key (``X-Order-Key``) that order, without signing in.
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from booking.audit import Staff
from booking.errors import NotFound
from booking.orders import Owner, Reader
from server import ticket_pdf
from server.api import models
from server.api.auth import Access, unauthorized, user_name
from server.api.operations import Header, Operation
from server.api.payloads import json_response, read_model, read_optional_model
from server.auth import Principal, Role, is_guest
from server.bodies import OrderOut, order_out
from server.errors import Problem
from server.keys import BOOKING

IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,200}")
KEY_SCHEMA = (
    ("type", "string"), ("minLength", 1), ("maxLength", 200), ("pattern", "^[\\x21-\\x7e]+$"),
)  # fmt: skip


ORDER_KEY_HEADER = "X-Order-Key"


def owner_of(principal: Principal) -> Owner:
    """The orders a principal owns: bought as this user, or (a customer signed in by e-mail)
    bought for this address."""
    return Owner(user_name(principal), principal.email)


async def _reader(request: web.Request, principal: Principal) -> Reader:
    """Who is asking for the order in the path: the holder of its link key (any order the key
    opens), an admin (any order), or its owner; a wrong key (or one the order desk renewed) is a
    404 like an unknown order."""
    order_id = request.match_info["order_id"]
    key = request.headers.get(ORDER_KEY_HEADER)
    if key is not None:
        if not await request.app[BOOKING].orders.opened_by(order_id, key):
            raise NotFound(f"no order {order_id}")
        return None
    if not principal.authenticated:
        raise unauthorized(f"send a bearer token or the order's {ORDER_KEY_HEADER}")
    return None if principal.role is Role.ADMIN else owner_of(principal)


async def checkout(request: web.Request, principal: Principal) -> web.Response:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        raise Problem.of("bad_request", f"the {IDEMPOTENCY_HEADER} header is required")
    if not _KEY.fullmatch(key):
        raise Problem.of(
            "bad_request", f"{IDEMPOTENCY_HEADER} must be 1-200 visible ASCII characters"
        )
    wanted = await read_model(request, models.CheckoutRequest)
    user = user_name(principal)
    email = wanted.email or principal.email
    if email is None and is_guest(user):
        raise Problem.of(
            "validation",
            "an e-mail address is required: the tickets and the order's link are sent there",
            errors=[{"loc": ["email"], "msg": "Field required", "type": "missing"}],
        )
    outcome = await request.app[BOOKING].checkout.run(
        user=user,
        hold_id=request.match_info["hold_id"],
        key=key,
        payment=wanted.payment.model_dump(mode="json"),
        email=email,
    )
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    if outcome.order is None:
        assert outcome.error is not None
        problem = Problem.from_booking(outcome.error)
        problem.headers.update(headers)
        raise problem
    headers["Location"] = f"/api/orders/{outcome.order.id}"
    return json_response(order_out(outcome.order), 201, headers=headers)


async def list_orders(request: web.Request, principal: Principal) -> web.Response:
    found = await request.app[BOOKING].orders.for_owner(owner_of(principal))
    return json_response([order_out(order).model_dump(mode="json") for order in found])


async def get_order(request: web.Request, principal: Principal) -> web.Response:
    order = await request.app[BOOKING].orders.get(
        request.match_info["order_id"], await _reader(request, principal)
    )
    return json_response(order_out(order))


async def order_tickets_pdf(request: web.Request, principal: Principal) -> web.Response:
    booking = request.app[BOOKING]
    order = await booking.orders.get(
        request.match_info["order_id"], await _reader(request, principal)
    )
    order.require_valid_tickets()
    event = await booking.inventory.event(order.event_id)
    pdf = await asyncio.to_thread(ticket_pdf.render, order, event)
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="tickets-{order.id}.pdf"',
            "Cache-Control": "private, no-store",
        },
    )


async def cancel_order(request: web.Request, principal: Principal) -> web.Response:
    """A buyer (or the holder of the order's link) cancels within the refund policy; an admin
    cancels whatever it says, and is audited."""
    wanted = await read_optional_model(request, models.CancelRequest)
    reader = await _reader(request, principal)
    staff = None
    if principal.role is Role.ADMIN and request.headers.get(ORDER_KEY_HEADER) is None:
        staff = Staff(user_name(principal), wanted.reason or "cancelled through the buyer's API")
    order = await request.app[BOOKING].orders.cancel(request.match_info["order_id"], reader, staff)
    return json_response(order_out(order))


OPERATIONS: list[Operation] = [
    Operation("POST", "/api/holds/{hold_id}/checkout", checkout, "Pay for a hold", "orders",
              access=Access.USER, body=models.CheckoutRequest, status=201,
              response=OrderOut, errors=(402, 409, 422, 502),
              headers=(Header(IDEMPOTENCY_HEADER, "your unique key for this purchase (1 to 200 "
                              "visible ASCII characters); a retry with the same key replays the "
                              "first answer", required=True, schema=KEY_SCHEMA),),
              description="Reservation, payment and ticket issuance are atomic: 402 declined "
              "and 502 gateway failure leave no order and no charge; 409 if the hold expired or "
              "is not yours; 409 `in_progress` while another checkout of the same hold (or "
              "one with the same key) is paying: the card is charged once."),
    Operation("GET", "/api/orders", list_orders, "Your orders", "orders",
              access=Access.USER, response=OrderOut, many=True,
              description="Newest first: the orders you bought, and (signed in by e-mail) every "
              "order bought for your address."),
    Operation("GET", "/api/orders/{order_id}", get_order, "One of your orders", "orders",
              access=Access.OPTIONAL, response=OrderOut, errors=(404,),
              headers=(Header(ORDER_KEY_HEADER, "the key from the order's e-mailed link, "
                              "instead of a bearer token"),)),
    Operation("GET", "/api/orders/{order_id}/tickets.pdf", order_tickets_pdf,
              "Your tickets as a PDF", "orders", access=Access.OPTIONAL,
              media_type="application/pdf", errors=(404, 409),
              headers=(Header(ORDER_KEY_HEADER, "the key from the order's e-mailed link"),),
              description="One page per ticket: event, venue, date, seat, price tier, order id "
              "and QR code; 409 for a cancelled order."),
    Operation("POST", "/api/orders/{order_id}/cancel", cancel_order, "Cancel an order",
              "orders", access=Access.OPTIONAL, body=models.CancelRequest, response=OrderOut,
              errors=(404, 409),
              headers=(Header(ORDER_KEY_HEADER, "the key from the order's e-mailed link"),),
              description="Voids the tickets, releases the seats and refunds the payment (a "
              "failed refund is retried until it succeeds; `refund` says where it stands). 409 "
              "`refund_closed` when the event's refund policy no longer allows it, 409 "
              "`conflict` if already cancelled. The body is optional."),
]  # fmt: skip
