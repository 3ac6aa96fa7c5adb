"""Adaptive outflow's controller: halves over budget, grows within it, inside the admin's bounds."""

from __future__ import annotations

from datetime import datetime

from booking.catalog import EventInfo
from booking.outflow import Outflow, Signals

WHEN = datetime(2030, 1, 1)
CALM = Signals(hold_p99_s=0.01, pool_wait_s=0.0, loop_lag_s=0.001)


def event(mode: str = "adaptive", rate: float = 40, lo: float = 2, hi: float = 40) -> EventInfo:
    return EventInfo(1, "e", "v", WHEN, WHEN, WHEN, "on_sale", True, rate, 100, 300, 4,
                     admission_mode=mode, admission_rate_min=lo, admission_rate_max=hi)  # fmt: skip


def test_rate_halves_while_a_signal_is_over_budget_and_recovers_after() -> None:
    outflow, info = Outflow(), event()
    assert outflow.rate(info) == 40
    slow = Signals(hold_p99_s=0.6)
    rates = [outflow.step(info, slow) for _ in range(6)]
    assert [r.per_s for r in rates] == [20, 10, 5, 2.5, 2, 2]
    assert rates[0].reason == "hold p99 0.600 s > 0.250 s"
    assert rates[-1].reason.startswith("at minimum")
    assert outflow.rate(info) == 2
    back = [outflow.step(info, CALM).per_s for _ in range(20)]
    assert back[:3] == [4, 6, 8] and back[-1] == 40
    assert outflow.describe(info).reason == "at maximum"


def test_each_signal_counts_and_fixed_mode_ignores_them() -> None:
    outflow, info = Outflow(), event()
    assert "db pool wait" in outflow.step(info, Signals(pool_wait_s=0.2)).reason
    assert "event-loop lag" in outflow.step(info, Signals(loop_lag_s=0.5)).reason
    fixed = event("fixed", rate=7)
    assert outflow.rate(fixed) == 7 and outflow.describe(fixed).reason == "fixed"


def test_start_is_clamped_into_the_bounds() -> None:
    assert Outflow().rate(event(rate=500, lo=1, hi=50)) == 50
    assert Outflow().rate(event(rate=0.5, lo=1, hi=50)) == 1
