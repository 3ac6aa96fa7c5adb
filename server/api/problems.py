"""Errors of the REST API as RFC 9457 problem details, and the one map from booking kinds to HTTP.

Every error the API answers is an ``application/problem+json`` body::

    {"type": "/api/docs#problem-conflict", "title": "Conflict", "status": 409,
     "kind": "conflict", "detail": "some seats are not available", "conflicts": ["A-B-3"]}

``kind`` is the stable, machine-readable name (the booking core's
:attr:`~booking.errors.BookingError.kind`, or one of the HTTP-level kinds below); ``type`` points
at its description on ``/api/docs`` (RFC 9457 §3.1.1 allows a relative reference, resolved
against the request URI); extension members (``conflicts``, ``errors``, ``limit`` …) carry the
details. :data:`STATUS_BY_KIND` is the only place a booking error becomes a status code: the STOMP
``/app`` commands (:mod:`server.app_commands`) use it too.

:func:`problem_middleware` is the API's error boundary: aiohttp's own 404/405/413, a
:class:`Problem` raised by a handler and a :class:`~booking.errors.BookingError` all leave as
problems; anything else is logged with its traceback and answered with a generic 500 problem.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web

from booking.errors import BookingError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

#: Booking error kind → HTTP status (SPEC §5).
STATUS_BY_KIND: dict[str, int] = {
    "invalid": 422,
    "limit": 422,
    "idempotency_mismatch": 422,
    "not_found": 404,
    "forbidden": 403,
    "admission_required": 403,
    "conflict": 409,
    "sale_closed": 409,
    "in_progress": 409,
    "payment_declined": 402,
    "payment_failed": 502,
}

#: Kinds the HTTP edge adds for faults that never reach the booking core.
HTTP_KINDS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "The request is malformed: not JSON, or a required header is missing."),
    "unauthorized": (401, "No bearer token, or one that is expired or not genuine."),
    "not_admin": (403, "The operation needs the admin role."),
    "validation": (422, "The JSON body does not match the schema; `errors` lists each fault."),
    "route_not_found": (404, "No such resource under /api."),
    "method_not_allowed": (405, "The resource exists but not with this method; see `Allow`."),
    "too_large": (413, "The request body is over 1 MiB."),
    "rate_limited": (429, "Too many requests from this client IP or user; see `Retry-After`."),
    "internal": (500, "The server failed; the details are in its log, not in the response."),
}

#: What each booking kind means, for ``/api/docs``.
BOOKING_KINDS: dict[str, str] = {
    "invalid": "The request names no seats, a seat twice, or seats the event does not have.",
    "limit": "Over the per-user seat limit of the event (`limit`, `have`).",
    "idempotency_mismatch": "The Idempotency-Key was used before with a different request.",
    "not_found": "No such event, hold, order or ticket (or it is not yours).",
    "forbidden": "Not allowed for you.",
    "admission_required": "The event's waiting room is on: a valid admission token is needed.",
    "conflict": "Seats are taken (`conflicts` lists them), or the hold/order is not active.",
    "sale_closed": "The event is not on sale now.",
    "in_progress": "A request with this Idempotency-Key is still being processed.",
    "payment_declined": "The card was declined; no order, no charge.",
    "payment_failed": "The payment gateway failed or timed out; nothing was charged.",
}


def status_for(kind: str) -> int:
    """The HTTP status of a booking error kind (500 for a kind nobody mapped: a bug)."""
    return STATUS_BY_KIND.get(kind) or HTTP_KINDS.get(kind, (500, ""))[0]


def problem_type(kind: str) -> str:
    return f"/api/docs#problem-{kind}"


class Problem(Exception):
    """An error answer of the API; raise it from a handler."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def of(cls, kind: str, detail: str, **extra: Any) -> Problem:
        """A problem of one of the :data:`HTTP_KINDS`."""
        return cls(HTTP_KINDS[kind][0], kind, detail, **extra)

    @classmethod
    def from_booking(cls, error: BookingError) -> Problem:
        return cls(status_for(error.kind), error.kind, error.detail, **error.extra)

    @classmethod
    def from_outcome(cls, body: dict[str, Any]) -> Problem:
        """A stored checkout failure (``{"kind", "detail", **extra}``) as the same problem."""
        extra = {k: v for k, v in body.items() if k not in ("kind", "detail")}
        kind = str(body.get("kind", "internal"))
        return cls(status_for(kind), kind, str(body.get("detail", "")), **extra)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": problem_type(self.kind),
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "kind": self.kind,
            "detail": self.detail,
        }
        for name, value in self.extra.items():
            body.setdefault(name, value)  # extensions never shadow the standard members
        return body

    def response(self) -> web.Response:
        return web.Response(
            body=json.dumps(self.body(), separators=(",", ":")).encode(),
            status=self.status,
            content_type=PROBLEM_JSON,
            headers=self.headers,
        )


def _from_http(exc: web.HTTPException) -> Problem:
    if isinstance(exc, web.HTTPNotFound):
        return Problem.of("route_not_found", "no such resource")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        problem = Problem.of("method_not_allowed", f"{exc.method} is not allowed here")
        problem.headers["Allow"] = allowed
        return problem
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return Problem.of("too_large", "the request body is over the 1 MiB limit")
    kind = next((k for k, (s, _) in HTTP_KINDS.items() if s == exc.status), "bad_request")
    return Problem(exc.status, kind, exc.reason)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_api(request: web.Request) -> bool:
    path = request.path
    return path == "/api" or path.startswith("/api/")


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_api(request):
        return await handler(request)
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response()
    except BookingError as error:
        return Problem.from_booking(error).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http(exc).response()
    except Exception:
        log.exception("internal error answering %s %s", request.method, request.path)
        return Problem.of("internal", "the server failed; see its log").response()
