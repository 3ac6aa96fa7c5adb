"""Periodic background work that must survive its own failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_every(period_s: float, work: Callable[[], Awaitable[object]]) -> None:
    """Run ``work`` every ``period_s`` until cancelled; a failure is logged, not fatal."""
    while True:
        await asyncio.sleep(period_s)
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s failed; retrying in %.1fs", work, period_s)
