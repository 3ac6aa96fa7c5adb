r"""How an error reads at each edge: REST problem, ``/app`` reply, STOMP ERROR frame.

The booking core raises domain errors (:mod:`booking.errors`) that know no protocol; this module
is the one place they are translated. A :class:`Problem` is an RFC 9457 problem::

    {"type": "/api/docs#problem-conflict", "title": "Conflict", "status": 409,
     "kind": "conflict", "detail": "some seats are not available", "conflicts": ["A-B-3"]}

``kind`` is the stable, machine-readable name (the booking error's kind, or one of the HTTP-level
kinds below); ``type`` points at its description on ``/api/docs`` (RFC 9457 §3.1.1 allows a
relative reference); extension members (``conflicts``, ``errors``, ``limit`` …) carry the details.
:data:`STATUS_BY_KIND` is the only place a booking error becomes a status code. The REST API
answers a problem as ``application/problem+json`` (:mod:`server.api.problems`); an ``/app``
command answers it on ``/user/queue/errors`` (:meth:`Problem.reply`). Faults of a STOMP session
are :class:`~protocol.errors.ProtocolError`\ s, answered with an ERROR frame and a close.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from booking.errors import BookingError, NotFound
from protocol.errors import ProtocolError

PROBLEM_JSON = "application/problem+json"

#: Booking error kind → HTTP status (SPEC §5).
STATUS_BY_KIND: dict[str, int] = {
    "invalid": 422,
    "limit": 422,
    "idempotency_mismatch": 422,
    "not_found": 404,
    "forbidden": 403,
    "admission_required": 403,
    "proof_required": 403,
    "conflict": 409,
    "no_block": 409,
    "sale_closed": 409,
    "in_progress": 409,
    "payment_declined": 402,
    "payment_failed": 502,
    "refund_closed": 409,
    "sign_in_failed": 400,
    "unavailable": 503,
    "audit_broken": 500,
}

#: Kinds the HTTP edge adds for faults that never reach the booking core.
HTTP_KINDS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "The request is malformed: not JSON, or a required header is missing."),
    "unauthorized": (401, "No bearer token, or one that is expired or not genuine."),
    "not_admin": (403, "The operation needs the admin role."),
    "not_scanner": (
        403,
        "The operation needs a door scanner's token (`POST /api/admin/scanners`).",
    ),
    "validation": (422, "The JSON body does not match the schema; `errors` lists each fault."),
    "route_not_found": (404, "No such resource under /api."),
    "method_not_allowed": (405, "The resource exists but not with this method; see `Allow`."),
    "request_timeout": (
        408,
        "The request body did not arrive within `--http-idle-timeout-s` of its head; the "
        "connection is closed.",
    ),
    "too_large": (413, "The request body is over `--max-request-bytes` (1 MiB by default)."),
    "rate_limited": (429, "Too many requests from this client IP or user; see `Retry-After`."),
    "internal": (500, "The server failed; the details are in its log, not in the response."),
    # The door's refusals (`POST /api/checkin`), each with the scan's fields.
    "already_used": (409, "The ticket was let in before: `used_at`, `used_gate`."),
    "void": (409, "The ticket is void: its order was cancelled, or the box office reissued it."),
    "wrong_event": (409, "The ticket is for another event (`event_id`)."),
    "not_inside": (409, "An exit scan of a ticket that is not inside: nothing changed."),
    "forged": (404, "The code does not verify: no genuine signature, or no such ticket."),
    "retired_key": (404, "The code is signed by a key rotated out, after its event."),
}

#: What each booking kind means, for ``/api/docs``.
BOOKING_KINDS: dict[str, str] = {
    "invalid": "The request names no seats, a seat twice, or seats the event does not have.",
    "limit": "Over the per-user seat limit of the event (`limit`, `have`).",
    "idempotency_mismatch": "The Idempotency-Key was used before with a different request.",
    "not_found": "No such event, hold, order or ticket (or it is not yours).",
    "forbidden": "Not allowed for you.",
    "admission_required": "The event's waiting room is on: a valid admission token is needed.",
    "proof_required": "Joining this waiting room needs a proof of work: POST "
    "`/api/events/{id}/queue/challenge`, find a nonce, join with `X-Queue-Proof`.",
    "conflict": "Seats are taken (`conflicts` lists them), the hold/order is not active, or "
    "what was asked does not fit the event's state (an announcement to a draft).",
    "no_block": "Best available: no `count` adjacent seats in one row are left that match the "
    "request (tier, section, wheelchair access).",
    "sale_closed": "The event is not on sale now.",
    "in_progress": "A request with this Idempotency-Key is still being processed.",
    "payment_declined": "The card was declined; no order, no charge.",
    "payment_failed": "The payment gateway failed or timed out; anything charged is refunded.",
    "refund_closed": "The event's refund policy does not let buyers cancel (any more); "
    "`cancellable_until` says when it ended. The box office still can.",
    "sign_in_failed": "The sign-in link or code is wrong, expired or used, or had too many "
    "wrong tries: ask for a new e-mail.",
    "unavailable": "The cluster's waiting room (Redis) is unreachable for a moment, or every "
    "database connection stayed busy for `--db-pool-timeout-s`: try again after `Retry-After` "
    "seconds; nothing was lost.",
    "audit_broken": "The waiting room's admission log does not verify (an entry was edited, "
    "or entries are out of order): `problems` lists what is wrong.",
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
        headers = {}
        if "retry_after_s" in error.extra:
            headers["Retry-After"] = str(error.extra["retry_after_s"])
        return cls(status_for(error.kind), error.kind, error.detail, headers=headers, **error.extra)

    def body(self) -> dict[str, Any]:
        """The RFC 9457 document (REST)."""
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

    def reply(self) -> dict[str, Any]:
        """The ``/user/queue/errors`` payload of an ``/app`` command (STOMP): the status and
        members of the REST problem for the same failure."""
        payload: dict[str, Any] = {"type": "error", "status": self.status, "kind": self.kind,
                                   "detail": self.detail}  # fmt: skip
        for name, value in self.extra.items():
            payload.setdefault(name, value)
        return payload


# -- STOMP ERROR frames ---------------------------------------------------------------------
# Faults the server (rather than the parser) finds in a session; each becomes an ERROR frame and
# a close at the session's one error boundary. ``reason`` labels the errors metric.


class AuthenticationRefused(ProtocolError, reason="auth"):
    """CONNECT without credentials, or with credentials that do not verify."""


class ForbiddenDestination(ProtocolError, reason="forbidden"):
    """A SUBSCRIBE or SEND to a destination the session's principal may not use."""


class SlowConsumer(ProtocolError, reason="slow_consumer"):
    """The client reads slower than it is sent to: its queued output went over the budget."""


class Timeout(ProtocolError, reason="timeout"):
    """No CONNECT in time, or the client fell silent (heart-beat or idle timeout)."""


class ServerShutdown(ProtocolError, reason="shutdown"):
    """The node is draining for shutdown (SPEC §1 SIGTERM)."""


class UnknownEvent(ProtocolError, reason="unknown_event"):
    """A subscription to the seat map of an event that does not exist."""


def stomp_error(error: BookingError) -> ProtocolError:
    """A booking error met while serving a subscription, as the ERROR it answers with."""
    if isinstance(error, NotFound):
        return UnknownEvent("unknown event", error.detail)
    return ProtocolError("internal error", "the server failed; see its log")


class QueueFullError(ProtocolError, reason="queue_full"):
    """A SEND to a ``/queue/`` that holds ``--queue-max-length`` messages (overflow ``reject``)."""
