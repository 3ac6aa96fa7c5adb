"""What the booking core tells its host about, without knowing who listens.

Measurements (a benchmark's count of hold decisions from memory vs the database, the metrics of
``/metrics``) and test-only fault injection are the host's business, not the domain's: the
booking services call these hooks at the points that matter, and the server installs what it
wants. Every hook defaults to doing nothing, so the core runs alone (tests, benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class HoldDecision(Enum):
    """Where a hold request was decided."""

    #: Refused from this node's seat map: a seat was known to be taken.
    MEMORY = "memory"
    #: Decided by the database's conditional claim.
    DATABASE = "database"


def _ignore(*_: object) -> None:
    pass


@dataclass
class BookingHooks:
    #: A hold request was decided (before the database answered, for ``DATABASE``).
    hold_decided: Callable[[HoldDecision], None] = field(default=_ignore)
    #: A payment was charged and its order is about to commit (the crash-injection point of
    #: the recovery tests: a host may end the process here).
    charged: Callable[[str], None] = field(default=_ignore)
