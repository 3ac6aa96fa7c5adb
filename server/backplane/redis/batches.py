"""Writes to Redis in the order they were made, batched per event-loop turn.

The engine's published messages, the seat-change list and the users' replay lists all need the
same thing: callers on the hot path hand over an item without waiting, and one task sends
whatever gathered since its last round trip, in order, in pipelines. One task (never one per
item) keeps the order; a batch per round trip keeps Redis calls few when thousands of items
arrive at once.

Closing sends what is still pending first: the last items of a stopping node are a hold that
committed while the node drained (its seat change, its reply to the user), and dropping them
would leave the other nodes' seat maps without that change and the user without the reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: The most a close waits for the pending items to be sent (Redis may be down: the node must
#: still stop within SPEC §1's 10 s).
FLUSH_S = 0.5


class InOrderBatches(Generic[T]):
    """``add`` items; ``send`` gets them in batches, in order, one batch at a time."""

    def __init__(self, send: Callable[[list[T]], Awaitable[None]]) -> None:
        self._send = send
        self._pending: list[T] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def add(self, item: T) -> None:
        self._pending.append(item)
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def close(self) -> None:
        """Send what is pending (for up to :data:`FLUSH_S`), then stop."""
        task = self._task
        if task is None:
            return
        self._closing = True
        self._wakeup.set()
        await asyncio.wait([task], timeout=FLUSH_S)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while not (self._closing and not self._pending):
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            if batch:
                await self._send(batch)
