"""STOMP-over-WebSocket sessions for benchmarks, on the project's client (concert_hub_client).

:class:`Endpoint` says where and as whom to connect; :func:`open_session` connects one session
and subscribes it; :func:`open_many` opens many at a given rate with a bounded number of
handshakes in flight, as a crowd arriving would. Each session's messages go to a handler called
straight from the socket's ``data_received``: no task or coroutine per session or message, so
one process holds thousands of subscribers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from concert_hub_client import Client, ClientError, Message, connect

log = logging.getLogger("bench")

T = TypeVar("T")


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    path: str
    destination: str
    login: str | None = None
    passcode: str | None = None
    vhost: str | None = None  # CONNECT host header; RabbitMQ wants its virtual host, "/"

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"ws://{self.host_header}{self.path}"


async def open_session(
    ep: Endpoint,
    *,
    login: str | None = None,
    passcode: str | None = None,
    on_message: Callable[[Message], None] | None = None,
    subscribe: bool = True,
    timeout: float = 10.0,  # noqa: ASYNC109  (per step, and the error names the step)
) -> Client:
    """Connect (STOMP 1.2, no heart-beats) and, with ``subscribe``, SUBSCRIBE ``sub-0`` to the
    endpoint's destination and wait for its receipt. Raises ClientError naming the step."""
    client = await connect(
        ep.url,
        login=login if login is not None else ep.login,
        passcode=passcode if passcode is not None else ep.passcode,
        host=ep.vhost or ep.host,
        on_message=on_message,
        timeout=timeout,
    )
    if subscribe:
        try:
            await client.subscribe(ep.destination, "sub-0", timeout=timeout)
        except BaseException:
            client.close()
            raise
    return client


@dataclass
class Opened:
    """What :func:`open_many` opened, and what went wrong."""

    sessions: list[Client]
    failures: int = 0
    first_error: str | None = None
    last_error: str | None = None


async def open_many(
    openers: Sequence[Callable[[], Awaitable[Client]]],
    *,
    rate: float | None = None,
    concurrency: int = 256,
    max_failures: int | None = None,
    on_error: Callable[[str], None] | None = None,
    wait_s: float = 60.0,
) -> Opened:
    """Run each opener: at most ``rate`` starts per second and ``concurrency`` at once; after
    ``max_failures`` failures no more are started. Errors are ClientError texts."""
    opened = Opened([])
    sem = asyncio.Semaphore(max(1, concurrency))
    tasks: set[asyncio.Task[None]] = set()

    async def one(opener: Callable[[], Awaitable[Client]]) -> None:
        try:
            opened.sessions.append(await opener())
        except (ClientError, OSError, TimeoutError) as exc:
            opened.failures += 1
            opened.last_error = str(exc)
            if on_error is not None:
                on_error(opened.last_error)
            if opened.first_error is None:
                opened.first_error = opened.last_error
                log.warning("session failed: %s", opened.first_error)
        finally:
            sem.release()

    def stopped() -> bool:
        return max_failures is not None and opened.failures >= max_failures

    start = time.monotonic()
    started = 0
    total = len(openers)
    while started < total and not stopped():
        due = total if rate is None else min(total, int((time.monotonic() - start) * rate) + 1)
        while started < due and not stopped():
            await sem.acquire()
            task = asyncio.create_task(one(openers[started]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            started += 1
        if started < total:
            await asyncio.sleep(0.002)
    if tasks:
        await asyncio.wait(set(tasks), timeout=wait_s)
    for task in list(tasks):
        task.cancel()
    return opened
