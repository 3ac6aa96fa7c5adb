"""Checkout of a hold into a paid order, reading orders, cancelling them.

Checkout requires an ``Idempotency-Key`` (1 to 200 visible ASCII characters), scoped to the user.
The booking core stores each key's outcome, success or failure, and a retry with the same key
and body gets that outcome again with the same status (and ``Idempotent-Replayed: true``); the
same key with another body is a 422. Admins may read and cancel any order; users their own.
"""

from __future__ import annotations

import re

from aiohttp import web

from server.api import models
from server.api.auth import Access, user_name
from server.api.operations import Header, Operation
from server.api.payloads import json_response, read_model
from server.auth import Principal, Role
from server.bodies import OrderOut, order_out
from server.errors import Problem
from server.keys import BOOKING

IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY = re.compile(r"[\x21-\x7e]{1,200}")


def _owner(principal: Principal) -> str | None:
    """Whose orders ``principal`` may see: their own, or anyone's (``None``) for an admin."""
    return None if principal.role is Role.ADMIN else user_name(principal)


async def checkout(request: web.Request, principal: Principal) -> web.Response:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        raise Problem.of("bad_request", f"the {IDEMPOTENCY_HEADER} header is required")
    if not _KEY.fullmatch(key):
        raise Problem.of(
            "bad_request", f"{IDEMPOTENCY_HEADER} must be 1-200 visible ASCII characters"
        )
    wanted = await read_model(request, models.CheckoutRequest)
    outcome = await request.app[BOOKING].checkout.run(
        user=user_name(principal),
        hold_id=request.match_info["hold_id"],
        key=key,
        payment=wanted.payment.model_dump(mode="json"),
    )
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
    if outcome.order is None:
        assert outcome.error is not None
        problem = Problem.from_booking(outcome.error)
        problem.headers.update(headers)
        raise problem
    headers["Location"] = f"/api/orders/{outcome.order.id}"
    return json_response(order_out(outcome.order), 201, headers=headers)


async def get_order(request: web.Request, principal: Principal) -> web.Response:
    order = await request.app[BOOKING].orders.get(request.match_info["order_id"], _owner(principal))
    return json_response(order_out(order))


async def cancel_order(request: web.Request, principal: Principal) -> web.Response:
    order = await request.app[BOOKING].orders.cancel(
        request.match_info["order_id"], _owner(principal)
    )
    return json_response(order_out(order))


OPERATIONS: list[Operation] = [
    Operation("POST", "/api/holds/{hold_id}/checkout", checkout, "Pay for a hold", "orders",
              access=Access.USER, body=models.CheckoutRequest, status=201,
              response=OrderOut, errors=(402, 409, 422, 502),
              headers=(Header(IDEMPOTENCY_HEADER, "your unique key for this purchase; a retry "
                              "with the same key replays the first answer", required=True),),
              description="Reservation, payment and ticket issuance are atomic: 402 declined "
              "and 502 gateway failure leave no order and no charge; 409 if the hold expired or "
              "is not yours."),
    Operation("GET", "/api/orders/{order_id}", get_order, "One of your orders", "orders",
              access=Access.USER, response=OrderOut, errors=(404,)),
    Operation("POST", "/api/orders/{order_id}/cancel", cancel_order, "Cancel an order",
              "orders", access=Access.USER, response=OrderOut, errors=(404, 409),
              description="Refunds the payment, voids the tickets and releases the seats; 409 "
              "if already cancelled."),
]  # fmt: skip
