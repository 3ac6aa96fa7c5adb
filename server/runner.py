"""Running one node: listeners, signals, and the graceful stop of SPEC §1.

On SIGTERM (or SIGINT) the node stops accepting on both listeners, sends every session ERROR
``server shutting down`` (WebSocket: then close 1001), gives them a moment to flush, and tears the
app down (in-flight requests finish under aiohttp's shutdown timeout), well within 10 s.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal

from aiohttp import web

from server.app import create_app
from server.settings import Settings
from server.tcp import start_tcp_listener
from server.websocket import STOMP_SERVICE

log = logging.getLogger(__name__)

#: File descriptors a node needs beside its client connections (listeners, database, logs...).
FD_HEADROOM = 64
#: How long sessions get to flush their ERROR frames after a stop signal.
DRAIN_S = 2.0


def raise_open_files_limit(max_connections: int) -> int:
    """Raise the soft open-files limit to the hard limit; warn when the cap cannot fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d: %s", soft, exc)
    if max_connections + FD_HEADROOM > soft:
        log.warning(
            "--max-connections %d does not fit under the open-files limit %d: at most about %d "
            "connections will be accepted; raise `ulimit -n` (hard limit) or lower "
            "--max-connections",
            max_connections, soft, max(soft - FD_HEADROOM, 0),
        )  # fmt: skip
    return soft


async def serve(settings: Settings, secret: str) -> None:
    raise_open_files_limit(settings.max_connections)
    app = create_app(settings, secret)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5.0, access_log=None)
    await runner.setup()
    service = app[STOMP_SERVICE]
    site = web.TCPSite(runner, settings.host, settings.port, backlog=4096, reuse_address=True)
    await site.start()
    tcp = None
    if settings.stomp_port:
        tcp = await start_tcp_listener(service, settings.host, settings.stomp_port)
    log.info(
        "serving http://%s:%d (WebSocket /ws)%s; %s engine; database %s",
        settings.host, settings.port,
        f", STOMP tcp://{settings.host}:{settings.stomp_port}" if tcp else "",
        "redis" if settings.redis_url else "in-process",
        settings.database_url.split("@")[-1],
    )  # fmt: skip

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("stopping: %d sessions to close", len(service.sessions))
    service.accepting = False
    if tcp is not None:
        tcp.close()
    service.shutdown()
    try:
        async with asyncio.timeout(DRAIN_S):
            await service.wait_empty()
    except TimeoutError:
        log.warning("%d sessions did not close in time", len(service.sessions))
    await runner.cleanup()
    log.info("stopped")
