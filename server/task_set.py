"""Tasks a component starts and does not await: a command's answer, a subscriber's greeting.

The event loop keeps only a weak reference to a task, so one that nobody holds may be collected
before it has run to its end: each such task is kept in a :class:`TaskSet` until it is done.
The set is also what a stopping node waits on: :meth:`TaskSet.finish` gives the tasks under
way a bounded time, then cancels those left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TaskSet:
    """The tasks one component has under way."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` as a task, kept until it is done."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def finish(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the tasks under way, then cancel those still running;
        how many were cancelled."""
        if not self._tasks:
            return 0
        _, running = await asyncio.wait(tuple(self._tasks), timeout=max(0.0, timeout_s))
        for task in running:
            task.cancel()
        return len(running)
