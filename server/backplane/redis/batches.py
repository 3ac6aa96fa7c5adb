"""Writes to Redis in the order they were made, batched per event-loop turn.

The seat-change list and the users' replay lists both need the same thing: callers on the hot
path hand over an item without waiting, and one task sends whatever gathered since its last round
trip, in order, as one pipeline. One task (never one per item) keeps the order; a batch per
round trip keeps Redis calls few when thousands of items arrive at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class InOrderBatches(Generic[T]):
    """``add`` items; ``send`` gets them in batches, in order, one batch at a time."""

    def __init__(self, send: Callable[[list[T]], Awaitable[None]]) -> None:
        self._send = send
        self._pending: list[T] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add(self, item: T) -> None:
        self._pending.append(item)
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            await self._send(batch)
