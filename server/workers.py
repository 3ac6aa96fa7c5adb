"""``concert-hub serve --workers N``: one node's ports served by N processes (issue 16).

One event loop is one core. With ``--workers N`` the command becomes a small supervisor: it does
the once-only work (the demo event), checks that the ports are free, then starts N worker
processes. Each worker is a full node of the cluster, named ``<node-id>-w<i>``, that binds the
HTTP port and the STOMP/TCP port with ``SO_REUSEPORT``: the kernel spreads new connections over
the workers, and the workers share everything else through the Redis backplane exactly as the
nodes of a cluster do. Hence N > 1 needs ``--redis-url``; an in-process engine would split the
node into N nodes that cannot hear each other.

Supervision, as an orchestrator expects of one container: SIGTERM or SIGINT is passed to every
worker, which drains as a node does (SPEC §1), and the supervisor exits once all have (after
:data:`STOP_TIMEOUT_S` it kills what is left). A worker that dies unexpectedly is not restarted:
the others are stopped the same graceful way and the command exits 1, so the orchestrator
restarts the whole node and counts the crash. A worker whose supervisor dies (SIGKILL) gets
SIGTERM from the kernel (``PR_SET_PDEATHSIG``), so no worker outlives it.

``/metrics`` on the shared port reaches one worker per request; that worker answers for all of
them: every worker writes its exposition to a directory the supervisor made (every
:data:`METRICS_EVERY_S`), and the answer merges them, each sample labelled ``worker="w<i>"``
(:func:`merged_metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from booking.keyring import Keyring
from server import logs
from server.settings import Settings

log = logging.getLogger(__name__)

#: Time the workers have to stop after SIGTERM before they are killed. SPEC §1 allows the node
#: 10 s from SIGTERM to its exit, supervisor included: a late worker is killed in time for the
#: supervisor to exit within them. A worker's own stop is bounded well below this (the sessions'
#: drain, the requests' grace, the teardown: server.runner).
STOP_TIMEOUT_S = 9.0
#: How often each worker writes its metrics for the others to serve.
METRICS_EVERY_S = 5.0
#: Exit status of bad command-line input.
USAGE_EXIT = 2


class WorkersRefused(Exception):
    """``--workers`` cannot work with these settings; the message says why and what to do."""


def check(settings: Settings) -> None:
    """Refuse what N workers cannot do: share state without Redis, or share an unnamed port."""
    if settings.workers <= 1:
        return
    if not settings.redis_url:
        raise WorkersRefused(
            f"--workers {settings.workers} needs --redis-url: the workers are nodes of one "
            "cluster and share holds, seat maps and the waiting room through Redis; without it "
            "each would be a separate in-process node. Give --redis-url, or run --workers 1"
        )
    if settings.port == 0:
        raise WorkersRefused(
            f"--workers {settings.workers} needs a fixed --port: with --port 0 each worker "
            "would listen on a different free port. Give a port number"
        )


def check_ports_free(settings: Settings) -> None:
    """Bind each port once without ``SO_REUSEPORT``: a listener already there (another node, a
    leftover worker) must make us fail, not share its port with it. CannotListen if taken."""
    from server.runner import CannotListen  # noqa: PLC0415  (the runner imports this module)

    ports = [("--port", settings.port)]
    if settings.stomp_port:
        ports.append(("--stomp-port", settings.stomp_port))
    for flag, port in ports:
        for info in socket.getaddrinfo(
            settings.host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            with socket.socket(info[0], info[1], info[2]) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if info[0] == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind(info[4])
                except OSError as exc:
                    if exc.errno == errno.EADDRNOTAVAIL:
                        continue
                    raise CannotListen(settings.host, port, flag, exc) from None


def worker_settings(settings: Settings, index: int) -> Settings:
    """Worker ``index``'s settings: its own node id; the once-only work is the supervisor's."""
    return settings.model_copy(
        update={"node_id": f"{settings.node_id}-w{index}", "workers": 1, "demo": False}
    )


async def _prepare(settings: Settings) -> None:
    """What the supervisor does once, before any worker starts: refuse a database the workers
    would each refuse (one line, not one per worker), and seed the demo event if asked."""
    from booking.inventory import EventDefaults, Inventory  # noqa: PLC0415
    from booking.migrate import require_current  # noqa: PLC0415
    from server.database import make_engine  # noqa: PLC0415

    engine = make_engine(settings.database_url, 1)
    try:
        await require_current(engine)
        if not settings.demo:
            return
        defaults = EventDefaults(settings.hold_ttl_s, settings.max_seats_per_user)
        seeded = await Inventory(engine, defaults).ensure_demo()
        if seeded is not None:
            log.info("seeded demo event %d: %s (%d seats)", seeded.id, seeded.name,
                     len(seeded.seats))  # fmt: skip
    finally:
        await engine.dispose()


def supervise(settings: Settings, keyring: Keyring) -> int:
    """Run ``settings.workers`` worker processes until a signal or a worker's death; the exit
    status of the command (0: stopped as asked; 1: a worker failed)."""
    check_ports_free(settings)
    asyncio.run(_prepare(settings))
    metrics_dir = tempfile.mkdtemp(prefix="concert-hub-metrics-")
    #: The signals received, with when (the stop's deadline runs from the first).
    stopping: list[tuple[int, float]] = []
    workers: list[Any] = []
    told: set[int] = set()

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.append((signum, time.monotonic()))
        # Passed on at once, not at the loop's next look: SPEC §1's 10 s run from now.
        _terminate(workers, told)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    context = multiprocessing.get_context("spawn")
    try:
        for index in range(1, settings.workers + 1):
            process = context.Process(
                target=run_worker,
                args=(worker_settings(settings, index), keyring, metrics_dir, os.getpid()),
                name=f"{settings.node_id}-w{index}",
            )
            process.start()
            workers.append(process)
        log.info("supervising %d workers on port %d%s: %s; up to %d database connections "
                 "(%d x --db-pool-size)", len(workers), settings.port,
                 f" and STOMP port {settings.stomp_port}" if settings.stomp_port else "",
                 ", ".join(f"{p.name} (pid {p.pid})" for p in workers),
                 len(workers) * settings.db_pool_size, len(workers))  # fmt: skip
        failed = False
        while not stopping:
            ended = wait([p.sentinel for p in workers], timeout=0.5)
            if ended and not stopping:
                for process in workers:
                    if process.sentinel in ended:
                        # the sentinel closes as the process exits, a moment before the kernel
                        # has its exit status: wait for that
                        process.join(5)
                        log.error("worker %s (pid %d) exited with %s; stopping the others",
                                  process.name, process.pid, process.exitcode)  # fmt: skip
                failed = True
                break
        if stopping:
            log.info("stopping %d workers (%s)", len(workers),
                     signal.Signals(stopping[0][0]).name)  # fmt: skip
        ended_badly = _stop(workers, told, stopping[0][1] if stopping else time.monotonic())
        log.info("workers stopped: exit codes %s", ", ".join(str(p.exitcode) for p in workers))
        return 1 if failed or ended_badly else 0
    finally:
        for process in workers:
            if process.is_alive():
                process.kill()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _terminate(workers: list[Any], told: set[int]) -> None:
    """SIGTERM every live worker not told yet (once each: a second SIGTERM could reach a worker
    after its loop stopped handling signals, and kill it)."""
    for process in workers:
        if process.pid is not None and process.pid not in told and process.exitcode is None:
            told.add(process.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)


def _stop(workers: list[Any], told: set[int], since: float) -> bool:
    """SIGTERM every live worker (those a signal has not reached already), wait until
    :data:`STOP_TIMEOUT_S` after ``since`` (the signal), kill the late; True when any ended
    badly."""
    _terminate(workers, told)
    deadline = since + STOP_TIMEOUT_S
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            log.warning("worker %s did not stop within %.0f s; killing it", process.name,
                        STOP_TIMEOUT_S)  # fmt: skip
            process.kill()
            process.join(5)
    bad = [p for p in workers if p.exitcode not in (0, -signal.SIGTERM)]
    return bool(bad)


def _die_with_parent() -> None:
    """Ask Linux for SIGTERM when the supervisor dies (nothing elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


def run_worker(settings: Settings, keyring: Keyring, metrics_dir: str, parent: int) -> None:
    """A worker process: one node on the shared ports (the target of ``multiprocessing``)."""
    _die_with_parent()
    if os.getppid() != parent:  # the supervisor died before the request above took effect
        sys.exit(1)
    from server.runner import StartRefused, run  # noqa: PLC0415

    logs.configure(settings.log_level, settings.log_format, settings.node_id)
    try:
        run(settings, keyring, reuse_port=True, metrics_dir=metrics_dir)
    except StartRefused as exc:
        print(f"concert-hub: {settings.node_id}: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # SIGINT from a terminal before the loop took the signals
        sys.exit(0)
    # Stopped, everything released: skip the interpreter's teardown of the worker's large heap
    # (a second or two of CPU on a busy machine, measured) that SPEC §1's 10 s have no room
    # for. Only the log handlers and the standard streams hold anything still to write.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# -- metrics -----------------------------------------------------------------------------------


def worker_name(node_id: str) -> str:
    """``host-42-w3`` → ``w3``."""
    return node_id.rsplit("-", 1)[-1]


def write_metrics(metrics_dir: str, node_id: str, registry: CollectorRegistry) -> None:
    """This worker's exposition, where the others read it (atomically replaced)."""
    path = Path(metrics_dir) / f"{worker_name(node_id)}.prom"
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(generate_latest(registry))
    temporary.replace(path)


class _Families:
    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> list[Any]:
        return self._families


def merged_metrics(metrics_dir: str, node_id: str, registry: CollectorRegistry) -> bytes:
    """Every worker's metrics in one exposition, each sample labelled with its worker: this
    worker's as of now, the others' as last written (at most :data:`METRICS_EVERY_S` old)."""
    texts = {worker_name(node_id): generate_latest(registry).decode()}
    for path in sorted(Path(metrics_dir).glob("*.prom")):
        if path.stem not in texts:
            with contextlib.suppress(OSError):
                texts[path.stem] = path.read_text()
    families: dict[str, Any] = {}
    for worker, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            merged = families.setdefault(family.name, family)
            samples = [s._replace(labels={**s.labels, "worker": worker}) for s in family.samples]
            if merged is family:
                family.samples = samples
            else:
                merged.samples.extend(samples)
    collected = CollectorRegistry()
    collected.register(_Families(list(families.values())))
    return generate_latest(collected)
