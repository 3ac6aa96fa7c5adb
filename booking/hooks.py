"""What the booking core tells its host about, without knowing who listens.

Measurements (a benchmark's count of hold decisions from memory vs the database, the metrics of
``/metrics``) and test-only fault injection are the host's business, not the domain's: the
booking services call these hooks at the points that matter, and the server installs what it
wants (``server/metrics.py:NodeMetrics.booking_hooks`` feeds the metric catalogue from them).
Every hook defaults to doing nothing, so the core runs alone (tests, benchmarks).

A hook is one event, called once where it happens with plain values (an outcome enum, a count,
seconds, an id): never per seat or per recipient, and never with a domain object a host could
change. The enums below are the outcomes a host can tell apart; their values are the label
values of ``/metrics``. Hooks must be cheap and must not raise: they run inside the request.

Adding a hook: a field of :class:`BookingHooks` with a no-op default and a comment saying when
it is called and with what, the call at that point in the service, and, for a metric, what
``NodeMetrics.booking_hooks`` does with it (and its row in docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from booking.errors import (
    BookingError,
    HoldLost,
    PaymentDeclined,
    PaymentFailed,
    PaymentTimedOut,
    RequestInProgress,
)


class HoldDecision(Enum):
    """Where a hold request was decided."""

    #: Refused from this node's seat map: a seat was known to be taken.
    MEMORY = "memory"
    #: Decided by the database's conditional claim.
    DATABASE = "database"


class HoldOutcome(Enum):
    """How a hold request ended."""

    GRANTED = "granted"  # the seats are held
    CONFLICT = "conflict"  # some seat is held or sold (409)
    NO_BLOCK = "no_block"  # best available: no block of that size is left (409)
    OVER_LIMIT = "over_limit"  # over the per-user seat limit (422)
    NO_ADMISSION = "no_admission"  # waiting room on, no valid admission token (403)
    SALE_CLOSED = "sale_closed"  # the event is not on sale (409)
    INVALID = "invalid"  # no, repeated or unknown seats (422)
    NOT_FOUND = "not_found"  # no such event (404)
    ERROR = "error"  # failed inside (the database did not answer…): 500

    @classmethod
    def of(cls, error: BaseException) -> HoldOutcome:
        """The outcome of a hold request that raised ``error``."""
        if not isinstance(error, BookingError):
            return cls.ERROR
        return _HOLD_OUTCOME_BY_KIND.get(error.kind, cls.INVALID)


_HOLD_OUTCOME_BY_KIND = {
    "conflict": HoldOutcome.CONFLICT,
    "no_block": HoldOutcome.NO_BLOCK,
    "limit": HoldOutcome.OVER_LIMIT,
    "admission_required": HoldOutcome.NO_ADMISSION,
    "sale_closed": HoldOutcome.SALE_CLOSED,
    "invalid": HoldOutcome.INVALID,
    "not_found": HoldOutcome.NOT_FOUND,
}


class CheckoutOutcome(Enum):
    """How a checkout ended. ``paid``, ``declined``, ``gateway_error``, ``timeout`` and
    ``hold_lost`` called the payment provider; the others did not."""

    PAID = "paid"  # charged and the order committed (201)
    DECLINED = "declined"  # the gateway declined; nothing charged (402)
    GATEWAY_ERROR = "gateway_error"  # the gateway failed; any charge refunded (502)
    #: No answer within the payment timeout, or the order committed so late that payment
    #: recovery had refunded the charge already; any charge refunded (502).
    TIMEOUT = "timeout"
    HOLD_LOST = "hold_lost"  # the hold lapsed or lost its seats while paying; refunded (409)
    REPLAYED = "replayed"  # the Idempotency-Key was seen before: the first answer replayed
    IN_PROGRESS = "in_progress"  # a request with the same key is still running (409)
    #: Refused before paying: the key used with another request, the hold not the user's, not
    #: active or expired.
    REJECTED = "rejected"
    ERROR = "error"  # failed inside; the key is released so that the client may retry (500)

    @classmethod
    def of(cls, error: BaseException) -> CheckoutOutcome:
        """The outcome of a checkout that answered (or raised) ``error``."""
        for kind, outcome in _CHECKOUT_OUTCOME_BY_ERROR:
            if isinstance(error, kind):
                return outcome
        return cls.REJECTED if isinstance(error, BookingError) else cls.ERROR


#: Most specific first: a timeout is a payment failure, a lost hold a hold not active.
_CHECKOUT_OUTCOME_BY_ERROR: tuple[tuple[type[BaseException], CheckoutOutcome], ...] = (
    (PaymentDeclined, CheckoutOutcome.DECLINED),
    (PaymentTimedOut, CheckoutOutcome.TIMEOUT),
    (PaymentFailed, CheckoutOutcome.GATEWAY_ERROR),
    (HoldLost, CheckoutOutcome.HOLD_LOST),
    (RequestInProgress, CheckoutOutcome.IN_PROGRESS),
)


class PaymentCall(Enum):
    """Calls to the payment provider."""

    CHARGE = "charge"
    REFUND = "refund"


class RefundReason(Enum):
    """Why a charge is refunded."""

    ORDER_CANCELLED = "order_cancelled"  # a paid order was cancelled
    PAYMENT_ERROR = "payment_error"  # the charge failed or timed out: it may exist, void it
    #: Charged, but the order did not commit (the hold lapsed or lost its seats while paying,
    #: or the commit failed).
    NOT_COMMITTED = "not_committed"
    RECOVERY = "recovery"  # a charge abandoned by a crash, found by payment recovery


class RefundOutcome(Enum):
    """How a refund call went."""

    REFUNDED = "refunded"  # the gateway refunded or voided a charge
    NO_CHARGE = "no_charge"  # the gateway had no charge under that payment id
    FAILED = "failed"  # the call failed; the payment stays for recovery


def _ignore(*_: object) -> None:
    pass


@dataclass
class BookingHooks:
    #: A hold request was routed: refused from this node's seat map (``MEMORY``) or sent to
    #: the database (``DATABASE``, called before the database answers). Once per request: a
    #: best-available request that tries another block after losing one is still one.
    hold_decided: Callable[[HoldDecision], None] = field(default=_ignore)
    #: A hold request ended: its outcome and the seconds from the request to the answer
    #: (validation, admission check, claim and commit, or refusal).
    hold_ended: Callable[[HoldOutcome, float], None] = field(default=_ignore)
    #: The reaper marked this many lapsed holds expired (once per sweep that expired any).
    holds_expired: Callable[[int], None] = field(default=_ignore)
    #: A checkout ended with this outcome (once per request, replays included).
    checkout_ended: Callable[[CheckoutOutcome], None] = field(default=_ignore)
    #: A call to the payment provider answered, failed or timed out after this many seconds.
    payment_called: Callable[[PaymentCall, float], None] = field(default=_ignore)
    #: A refund was attempted: why, and how it went.
    refunded: Callable[[RefundReason, RefundOutcome], None] = field(default=_ignore)
    #: A paid order of this event was cancelled.
    order_cancelled: Callable[[int], None] = field(default=_ignore)
    #: A user joined this event's waiting room (re-joins included: joining is idempotent).
    queue_joined: Callable[[int], None] = field(default=_ignore)
    #: Seconds every hold decision waits inside its transaction (fault injection for the
    #: adaptive-outflow tests: a slow database; 0 otherwise).
    hold_delay: Callable[[], float] = field(default=lambda: 0.0)
    #: A payment was charged and its order is about to commit (the crash-injection point of
    #: the recovery tests: a host may end the process here).
    charged: Callable[[str], None] = field(default=_ignore)
    #: This order and its key's outcome committed, before anybody was told (the crash-injection
    #: point of the "retry finds the order" tests).
    order_committed: Callable[[str], None] = field(default=_ignore)
    #: A ticket was scanned at a door of this event, online or in an offline upload: the
    #: reason of the answer (``admitted``, ``already_used``, ``void`` …, or ``conflict``).
    ticket_scanned: Callable[[int, str], None] = field(default=_ignore)
