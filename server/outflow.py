"""The node's health as adaptive outflow reads it (:mod:`booking.outflow`), and its loop.

:class:`Health` gathers, between two steps, the hold decision times (through the booking hooks),
the waits for a database connection (the pool watch) and the event-loop lag (the lag timer):
the same measurements ``/metrics`` reports, taken directly. :func:`run_outflow` steps every
adaptive event's rate once a second from them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Protocol

from booking.admissions import Admissions
from booking.catalog import EventInfo
from booking.outflow import Outflow, Rate, Signals, p99

log = logging.getLogger(__name__)

#: Hold timings kept per step at most (a sample is enough for a p99).
_MAX_SAMPLES = 10_000
STEP_S = 1.0


class Health:
    def __init__(self) -> None:
        self._holds: list[float] = []
        self._pool_wait = 0.0
        self._lag = 0.0

    def hold(self, seconds: float) -> None:
        if len(self._holds) < _MAX_SAMPLES:
            self._holds.append(seconds)

    def pool_wait(self, seconds: float) -> None:
        self._pool_wait = max(self._pool_wait, seconds)

    def lag(self, seconds: float) -> None:
        self._lag = max(self._lag, seconds)

    def take(self) -> Signals:
        """The signals since the last call (and start afresh)."""
        signals = Signals(p99(self._holds), self._pool_wait, self._lag)
        self._holds, self._pool_wait, self._lag = [], 0.0, 0.0
        return signals


class SharedOutflow(Protocol):
    """The cluster's one rate per event (:class:`~server.backplane.redis.outflow.RedisOutflow`)."""

    async def step(self, info: EventInfo, signals: Signals, outflow: Outflow) -> Rate: ...


async def run_outflow(
    admissions: Admissions, health: Health, shared: SharedOutflow | None = None
) -> None:
    """Step every adaptive event's admission rate once a second: this node's own, or (a
    cluster, ``shared``) the one rate all nodes share, stepped on the worst node's signals."""
    outflow = admissions.outflow
    while True:
        await asyncio.sleep(STEP_S)
        signals = health.take()
        for info in admissions.events():
            if info.admission_mode != "adaptive":
                continue
            before = outflow.rates.get(info.id)
            if shared is not None:
                now = await shared.step(info, signals, outflow)
            else:
                now = outflow.step(info, signals)
            if before is not None and before.reason != now.reason:
                log.info("event %d admission rate %.1f/s: %s", info.id, now.per_s, now.reason)


class FileDelay:
    """Fault injection (``--fault-hold-delay-file``): the milliseconds written in a file, read
    at most every 0.2 s, as seconds (nothing there: none)."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)
        self._read_at = 0.0
        self._seconds = 0.0

    def __call__(self) -> float:
        now = time.monotonic()
        if now - self._read_at > 0.2:
            self._read_at = now
            try:
                self._seconds = float(self._path.read_text().strip() or 0) / 1000
            except (OSError, ValueError):
                self._seconds = 0.0
        return self._seconds
