"""Domain errors of the booking core.

They say what went wrong in booking terms; the HTTP edge maps each ``kind`` to a status and a
problem+json body, and the STOMP edge to a reply on ``/user/queue/errors``. Nothing here knows
either protocol.
"""

from __future__ import annotations

from typing import Any


class BookingError(Exception):
    #: Stable, machine-readable kind; the edges map it (e.g. ``conflict`` → HTTP 409).
    kind = "invalid"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def __init_subclass__(cls, *, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is not None:  # a subclass without one keeps its parent's (HoldLost: "conflict")
            cls.kind = kind

    def record(self) -> dict[str, Any]:
        r"""This error as data, to be stored (an idempotency outcome) and :meth:`restore`\ d."""
        return {"kind": self.kind, "detail": self.detail, "extra": self.extra}

    @classmethod
    def restore(cls, record: dict[str, Any]) -> BookingError:
        """The error :meth:`record` stored: same kind, detail and extra members."""
        error = cls(str(record["detail"]), **dict(record.get("extra") or {}))
        error.kind = str(record["kind"])
        return error


class InvalidRequest(BookingError, kind="invalid"):
    """The request is malformed or names things that do not exist in it (422)."""


class NotFound(BookingError, kind="not_found"): ...


class Forbidden(BookingError, kind="forbidden"):
    """Not yours, or not allowed for your role (403)."""


class AdmissionRequired(BookingError, kind="admission_required"):
    """The event's waiting room is on and no valid admission token was given (403)."""


class ProofRequired(BookingError, kind="proof_required"):
    """Joining this waiting room needs a valid proof of work (:mod:`booking.proof`) (403)."""


class SeatsUnavailable(BookingError, kind="conflict"):
    """Some requested seats are held or sold; ``extra['conflicts']`` lists them (409)."""


class NoBlockLeft(BookingError, kind="no_block"):
    """Best available: no block of the requested size (in the requested tier, section, with
    wheelchair access) is left; ``extra['count']`` says how many were asked for (409)."""


class HoldNotActive(BookingError, kind="conflict"):
    """The hold expired, was released, was bought already, or is not this user's (409)."""


class HoldLost(HoldNotActive):
    """The hold lapsed or lost its seats while its payment was made; the charge is refunded
    (409, as any hold not active)."""


class LimitExceeded(BookingError, kind="limit"):
    """Over the per-user seat limit (422)."""


class SaleNotOpen(BookingError, kind="sale_closed"): ...


class PaymentDeclined(BookingError, kind="payment_declined"): ...


class PaymentFailed(BookingError, kind="payment_failed"):
    """The gateway errored or did not answer in time; whatever it may have charged was refunded
    at once (502)."""


class PaymentTimedOut(PaymentFailed):
    """The gateway did not answer in time, or the order committed too late to keep the charge;
    the charge is refunded (502, as any payment failure)."""


class IdempotencyMismatch(BookingError, kind="idempotency_mismatch"):
    """The Idempotency-Key was used before with a different request (422)."""


class RequestInProgress(BookingError, kind="in_progress"):
    """A request with the same Idempotency-Key is still being processed (409)."""


class CheckoutInProgress(RequestInProgress):
    """Another checkout of the same hold (under another key) is paying right now (409). Not
    stored with the key: a retry gets the answer the hold has by then."""


class Unavailable(BookingError, kind="unavailable"):
    """A shared service the request needs (the cluster's waiting room, a database connection)
    is unreachable or busy for a moment (503, with ``retry_after_s``)."""


class CancellationRefused(BookingError, kind="refund_closed"):
    """The event's refund policy does not let the buyer cancel (now, or at all) (409)."""


class SignInFailed(BookingError, kind="sign_in_failed"):
    """A sign-in link or code that is wrong, expired, used, or out of attempts (400). The
    detail is the same whether or not the address is known."""


class SignInLimited(BookingError, kind="rate_limited"):
    """Too many sign-in requests for one address (429)."""
