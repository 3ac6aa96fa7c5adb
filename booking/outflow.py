"""Adaptive outflow: an admission rate that follows the booking core's health (issue 15).

An event whose ``admission_mode`` is ``adaptive`` is admitted at a rate this controller sets once
a second from three signals of the node (each over the last second):

* the p99 of hold decisions (request to answer, as :class:`~booking.hooks.BookingHooks` times
  them), against ``hold_p99_s``;
* the longest wait for a database connection, against ``pool_wait_s``;
* the longest event-loop lag, against ``loop_lag_s``.

AIMD, as TCP does: while every signal is within its budget the rate grows by a step (a
twentieth of the admin's maximum, at least one admission per second); as soon as one is over,
it halves. It never leaves the admin's ``[admission_rate_min, admission_rate_max]`` and starts at
``admission_rate``. Each change carries its reason, for the admin console and the public stats.
Sans-I/O: the server feeds the signals and reads the rates.

In a cluster the rate is one for the event across nodes: each node reports its signals through
Redis and one node a second steps the shared rate on the worst of them
(:mod:`server.backplane.redis.outflow`); a single node steps its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from booking.catalog import EventInfo

ADAPTIVE = "adaptive"


@dataclass(frozen=True, slots=True)
class Budget:
    hold_p99_s: float = 0.25
    pool_wait_s: float = 0.05
    loop_lag_s: float = 0.1


@dataclass(frozen=True, slots=True)
class Signals:
    """The node's health over the last step."""

    hold_p99_s: float = 0.0
    pool_wait_s: float = 0.0
    loop_lag_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Rate:
    per_s: float
    #: Why it is what it is: ``start``, ``within budget``, ``at maximum``, ``at minimum``, or the
    #: signal over budget (``hold p99 0.412 s > 0.250 s``).
    reason: str


def worst(reports: list[Signals]) -> Signals:
    """The worst of several nodes' signals, each measure on its own (a cluster is as healthy as
    its sickest node)."""
    return Signals(
        max((r.hold_p99_s for r in reports), default=0.0),
        max((r.pool_wait_s for r in reports), default=0.0),
        max((r.loop_lag_s for r in reports), default=0.0),
    )


def p99(samples: list[float]) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@dataclass
class Outflow:
    """The adaptive rates of events, one AIMD controller per event."""

    budget: Budget = field(default_factory=Budget)
    decrease: float = 0.5
    rates: dict[int, Rate] = field(default_factory=dict)

    def over(self, signals: Signals) -> str | None:
        """The first signal over its budget, described; ``None`` when all are within."""
        b = self.budget
        checks = (
            ("hold p99", signals.hold_p99_s, b.hold_p99_s),
            ("db pool wait", signals.pool_wait_s, b.pool_wait_s),
            ("event-loop lag", signals.loop_lag_s, b.loop_lag_s),
        )
        for name, value, limit in checks:
            if value > limit:
                return f"{name} {value:.3f} s > {limit:.3f} s"
        return None

    def step(self, info: EventInfo, signals: Signals) -> Rate:
        """One step of ``info``'s rate (call once a second per adaptive event)."""
        lo = info.admission_rate_min
        hi = max(lo, info.admission_rate_max)
        current = self.rates.get(info.id)
        rate = min(hi, max(lo, info.admission_rate)) if current is None else current.per_s
        problem = self.over(signals)
        if problem is not None:
            rate, reason = max(lo, rate * self.decrease), problem
            if rate == lo:
                reason = f"at minimum: {problem}"
        else:
            rate = min(hi, rate + max(1.0, hi / 20))
            reason = "at maximum" if rate == hi else "within budget"
        found = self.rates[info.id] = Rate(rate, reason)
        return found

    def rate(self, info: EventInfo) -> float:
        """The rate to admit ``info`` at now (its fixed rate unless adaptive)."""
        if info.admission_mode != ADAPTIVE:
            return info.admission_rate
        current = self.rates.get(info.id)
        if current is None:
            return min(info.admission_rate_max, max(info.admission_rate_min, info.admission_rate))
        return current.per_s

    def describe(self, info: EventInfo) -> Rate:
        """The current rate and why (``fixed`` for an event in fixed mode)."""
        if info.admission_mode != ADAPTIVE:
            return Rate(info.admission_rate, "fixed")
        return self.rates.get(info.id) or Rate(self.rate(info), "start")
