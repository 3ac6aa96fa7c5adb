"""Running one node: its listeners, its signals, and the graceful stop of SPEC §1.

The HTTP listener and the STOMP/TCP listener are two sites of one aiohttp runner. On SIGTERM (or
SIGINT): ``/readyz`` turns 503 at once, both sites stop accepting at once, every STOMP session is
told (:meth:`~server.session.StompService.drain`) while open HTTP connections are still served,
then the runner's cleanup lets in-flight requests finish under its shutdown timeout and the
app's resources are released, well within 10 s.

With ``--workers N`` (:mod:`server.workers`) each worker process runs :func:`run` with
``reuse_port`` (both listeners share the node's ports) and a directory where the workers' metrics
meet, so ``/metrics`` answers for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import signal
import socket
import threading
import time
from pathlib import Path

from aiohttp import web

from booking.keyring import Keyring
from booking.migrate import DatabaseNotReady
from server.app import create_app, stop_accepting
from server.bad_requests import NodeRunner
from server.client_addresses import ClientAddresses
from server.http_connections import ConnectionGate
from server.keys import EXPOSITION, METRICS, NODE_METRICS, STOMP
from server.settings import Settings
from server.tcp import StompTcpSite
from server.workers import METRICS_EVERY_S, merged_metrics, worker_name, write_metrics

try:
    import uvloop
except ImportError:  # not on this platform: the stock loop works, only slower
    uvloop = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: How long requests in flight when the node stops may take after the sessions are drained
#: (aiohttp's shutdown timeout): a checkout under way gets this beside the drain to commit.
REQUESTS_GRACE_S = 3.0
#: aiohttp's default lingering close: the most a connection is read after an early answer.
LINGERING_S = 10.0
#: How long the process may take to end once the node has stopped (the event loop's own close,
#: the interpreter's exit) before it ends anyway: see :func:`_exit_within`.
EXIT_GRACE_S = 2.0
#: File descriptors a node needs beside its client connections (listeners, database, logs...).
FD_HEADROOM = 64


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


class CannotListen(Exception):
    """A listener could not be opened; the message names the address and the flag."""

    def __init__(self, host: str, port: int, flag: str, error: OSError) -> None:
        if error.errno == errno.EADDRINUSE:
            why = f"port {port} is already in use (address already in use)"
        else:
            why = f"cannot listen on {host}:{port}: {error.strerror or error}"
        super().__init__(f"{why}; choose another with {flag} (or stop what holds it)")


#: Why a node may refuse to start, each with a one-line message for the operator (the command
#: line prints it and exits 1, not a traceback).
StartRefused = (CannotListen, DatabaseNotReady)


def check_ports(settings: Settings) -> None:
    """Refuse (:class:`CannotListen`) a start whose ports are taken before the node creates
    anything: in embedded mode a start creates ``concert-hub.db`` and its secret in the current
    directory, and a newcomer whose port 8080 was taken found them made by a node that never
    ran. A port taken between this look and the real listen is refused there, as before."""
    for port, flag in ((settings.port, "--port"), (settings.stomp_port, "--stomp-port")):
        if not port:
            continue
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                settings.host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )[0]
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the sites do
                probe.bind(address)
        except OSError as exc:
            raise CannotListen(settings.host, port, flag, exc) from None


async def _start_site(site: web.BaseSite, host: str, port: int, flag: str) -> None:
    try:
        await site.start()
    except OSError as exc:
        raise CannotListen(host, port, flag, exc) from None


def run(settings: Settings, keyring: Keyring, *, reuse_port: bool = False,
        metrics_dir: str | None = None) -> None:  # fmt: skip
    """Serve one node in this process until SIGTERM/SIGINT (on uvloop where there is one), then
    end the process within :data:`EXIT_GRACE_S` (:func:`_exit_within`)."""

    async def node() -> None:
        await serve(settings, keyring, reuse_port=reuse_port, metrics_dir=metrics_dir)
        _exit_within(EXIT_GRACE_S)

    if uvloop is not None:
        uvloop.run(node())
    else:
        asyncio.run(node())


async def _share_metrics(metrics_dir: str, settings: Settings, app: web.Application) -> None:
    """A worker's metrics, written for the others to serve, every ``METRICS_EVERY_S``."""
    while True:
        try:
            write_metrics(metrics_dir, settings.node_id, app[METRICS].registry)
        except OSError as exc:
            log.warning("could not write this worker's metrics to %s: %s", metrics_dir, exc)
        await asyncio.sleep(METRICS_EVERY_S)


async def serve(
    settings: Settings,
    keyring: Keyring,
    *,
    reuse_port: bool = False,
    metrics_dir: str | None = None,
) -> None:
    """One node. ``reuse_port``: share the ports with the other workers of the node (SO_REUSEPORT);
    ``metrics_dir``: where the workers' metrics meet (:mod:`server.workers`)."""
    raise_open_files_limit(settings.max_connections)
    app = create_app(settings, keyring)
    if metrics_dir is not None:
        registry = app[METRICS].registry

        def exposition() -> bytes:
            return merged_metrics(metrics_dir, settings.node_id, registry)

        app[EXPOSITION] = exposition
    gate = ConnectionGate(
        ClientAddresses(settings.trusted_proxy_networks),
        settings.max_http_connections_per_ip,
        app[NODE_METRICS].http.refused_connections,
    )
    runner = NodeRunner(
        app,
        gate,
        handle_signals=False,
        # In-flight requests have had the sessions' drain already; the whole stop, with the
        # teardown after this, must fit in SPEC §1's 10 s (see server.workers.STOP_TIMEOUT_S).
        shutdown_timeout=REQUESTS_GRACE_S,
        access_log=None,
        # aiohttp's keep-alive timer runs from the accept (and from each response) until a
        # request's head is complete: a connection that sends nothing, or dribbles its headers
        # (a slowloris, a stalled WebSocket handshake), is closed when it fires.
        keepalive_timeout=settings.http_idle_timeout_s,
        # After an answer given before the body was all read (a 408 for a body that did not
        # arrive, a 413), aiohttp reads and drops what still comes, so that a client still
        # sending can read the answer, then closes: for at most this long, not its 10 s default.
        lingering_time=min(LINGERING_S, settings.http_idle_timeout_s),
    )
    # Signals are taken from here on: a SIGTERM while the node is still setting up (migrating
    # an embedded database, say) lets that finish, then stops the node as usual (the default
    # handler would end the process in the middle of a migration).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runner.setup()
    try:
        http_site = web.TCPSite(
            runner,
            settings.host,
            settings.port,
            backlog=4096,
            reuse_address=True,
            reuse_port=reuse_port or None,
        )
        await _start_site(http_site, settings.host, settings.port, "--port")
        if settings.stomp_port:
            stomp_site = StompTcpSite(
                runner, app[STOMP], settings.host, settings.stomp_port, reuse_port=reuse_port
            )
            await _start_site(stomp_site, settings.host, settings.stomp_port, "--stomp-port")
        log.info(
            "serving http://%s:%d (WebSocket /ws)%s; %s backplane; database %s",
            settings.host, settings.port,
            f", STOMP tcp://{settings.host}:{settings.stomp_port}" if settings.stomp_port else "",
            "redis" if settings.redis_url else "in-process",
            settings.database_url.split("@")[-1],
        )  # fmt: skip
        sharing = None
        if metrics_dir is not None:
            sharing = asyncio.create_task(_share_metrics(metrics_dir, settings, app))
        await stop.wait()
        if sharing is not None:
            sharing.cancel()
            with contextlib.suppress(OSError):
                (Path(metrics_dir or ".") / f"{worker_name(settings.node_id)}.prom").unlink()
        log.info("stopping: %d sessions to close", len(app[STOMP].sessions))
        # /readyz says 503 from this instant, both listeners stop accepting at once, and the
        # STOMP sessions are told while HTTP connections the node has are still answered (a
        # balancer's health check on one sees the 503, not a hang).
        stop_accepting(app)
        for site in tuple(runner.sites):
            await site.stop()
        await app[STOMP].drain()
    finally:
        await runner.cleanup()
    log.info("stopped")


def _exit_within(seconds: float) -> None:
    """End the process ``seconds`` from now if it has not ended by then.

    Once the node has stopped, nothing of the product's is left to finish: sessions are closed,
    transactions over, the database released. But the process's exit still waits for every
    non-daemon thread and child a library left (the default executor's threads, the renderer's
    pool), and in one CI run of the browser tests one of them held a stopped node for over 15 s,
    past SPEC §1's 10. This watchdog, a daemon thread, names what held it and exits 0.
    """

    def watch() -> None:
        time.sleep(seconds)
        main = threading.main_thread()
        holding = [t.name for t in threading.enumerate() if not t.daemon and t is not main]
        log.warning("exit held up for %.0f s by threads %s: exiting now", seconds, holding)
        logging.shutdown()
        os._exit(0)

    threading.Thread(target=watch, name="exit-watchdog", daemon=True).start()
