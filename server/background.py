"""Periodic background work that must survive its own failures."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_every(
    period_s: float, work: Callable[[], Awaitable[object]], *, at_once: bool = False
) -> None:
    """Run ``work`` every ``period_s`` until cancelled (``at_once``: first right away); a
    failure is logged, not fatal."""
    delay = 0.0 if at_once else period_s
    while True:
        await asyncio.sleep(delay)
        delay = period_s
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s failed; retrying in %.1fs", work, period_s)


#: How often the event loop's lag is measured.
LOOP_LAG_EVERY_S = 0.5


async def measure_loop_lag(
    observe: Callable[[float], None], period_s: float = LOOP_LAG_EVERY_S
) -> None:
    """Observe, every ``period_s``, how late a timer fired: the event loop's lag. A timer fires
    late by as long as the callbacks queued before it took, so this is how long anything on the
    node (a heart-beat, a REST answer, a position push) waits for the loop right now."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period_s
        await asyncio.sleep(period_s)
        observe(max(0.0, loop.time() - due))


#: How often survivors are moved out of the collector's sight, and how often the frozen set is
#: released and swept (a rare full pause instead of frequent ones).
FREEZE_EVERY_S = 10.0
SWEEP_EVERY_S = 900.0


async def keep_long_lived_objects_out_of_gc() -> None:
    """Keep full garbage collections short on a node holding thousands of sessions.

    10,000 WebSocket sessions are about 870,000 objects the cyclic collector tracks, and one
    full collection over them froze the event loop for 0.5 s and more, making every waiting
    user's position update late. Objects that survived ``FREEZE_EVERY_S`` are mostly those
    sessions: ``gc.freeze()`` moves them to a generation the collector skips. What is frozen is
    only reclaimed once unfrozen, so every ``SWEEP_EVERY_S`` the set is released and swept once.
    """
    swept = time.monotonic()
    while True:
        await asyncio.sleep(FREEZE_EVERY_S)
        if time.monotonic() - swept >= SWEEP_EVERY_S:
            gc.unfreeze()
            gc.collect()
            swept = time.monotonic()
        gc.freeze()
