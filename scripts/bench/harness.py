"""What every benchmark run needs around its measurement: the event loop, the open-files
limit, logging, worker processes, a watchdog, and one JSON object on stdout.

Worker processes are started with ``spawn`` and talk to the main process over a pipe of pickled
dicts; they ignore Ctrl-C (the main process handles it and stops them). The watchdog is the last
resort: if a run overstays its budget it kills every child and worker and exits 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing as mp
import os
import resource
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from bench.servers import ACTIVE_CHILDREN

log = logging.getLogger("bench")

ACTIVE_WORKERS: list[BaseProcess] = []


def setup_logging(quiet: bool, name: str = "") -> None:
    """Progress to stderr (``quiet``: warnings and errors only); stdout is for the JSON."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {name}%(message)s",
    )


def install_uvloop() -> str:
    """uvloop when importable (the server uses it too); returns the loop's name."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def raise_nofile() -> None:
    """Soft open-files limit up to the hard one: thousands of sockets per process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer (timeout)"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def print_json(out: dict[str, Any]) -> None:
    print(json.dumps(out, indent=2), flush=True)


# -- worker processes ------------------------------------------------------------------------


def start_worker(
    main: Callable[[Connection, Any], Coroutine[Any, Any, None]], cfg: WorkerSettings
) -> tuple[BaseProcess, Connection]:
    """A ``spawn``ed process running ``main(pipe, cfg)`` (see :func:`async_worker`); returns
    it and our end of the pipe. ``main`` must be a module-level function (it is pickled)."""
    ctx = mp.get_context("spawn")
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=async_worker, args=(child_end, main, cfg), daemon=True)
    ACTIVE_WORKERS.append(proc)
    proc.start()
    child_end.close()
    return proc, parent_end


class WorkerSettings(Protocol):
    @property
    def verbose(self) -> bool: ...

    @property
    def budget_s(self) -> float: ...


def async_worker(
    conn: Connection,
    main: Callable[[Connection, Any], Coroutine[Any, Any, None]],
    cfg: WorkerSettings,
) -> None:
    """A worker process's whole life (the target :func:`start_worker` gives ``spawn``):
    logging, Ctrl-C left to the parent, sockets, uvloop, then ``main(conn, cfg)`` within
    ``cfg.budget_s``. A worker that fails says so on stderr; the parent reports its silence."""
    logging.basicConfig(
        level=logging.INFO if cfg.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s worker[%(process)d] %(message)s",
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_nofile()
    install_uvloop()
    try:
        asyncio.run(asyncio.wait_for(main(conn, cfg), cfg.budget_s))
    except Exception:
        log.exception("worker failed")


def stop_workers(workers: list[tuple[BaseProcess, Connection]], timeout: float = 5.0) -> None:
    """Tell each worker to close (also when interrupted early), then join or terminate it."""
    for _, conn in workers:
        with contextlib.suppress(OSError, ValueError):
            conn.send({"type": "close"})
    for proc, conn in workers:
        proc.join(timeout=timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)
        conn.close()
        if proc in ACTIVE_WORKERS:
            ACTIVE_WORKERS.remove(proc)


async def recv_msg(conn: Connection, wait_s: float) -> Any:
    """Receive one message from a pipe without blocking the event loop."""
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, conn.poll, max(0.0, wait_s))
    if not ready:
        raise TimeoutError("no message from peer process")
    return conn.recv()


# -- stopping --------------------------------------------------------------------------------


def kill_everything() -> None:
    """Kill every child server and worker of this run (interrupted, or the watchdog fired)."""
    for child in list(ACTIVE_CHILDREN):
        with contextlib.suppress(Exception):
            child.kill()
    for proc in list(ACTIVE_WORKERS):
        with contextlib.suppress(Exception):
            proc.kill()


def start_watchdog(seconds: float, cleanup: Callable[[], None] = lambda: None) -> None:
    """Last resort: if the run overstays ``seconds``, clean up, say so on stdout, exit 3."""

    def fire() -> None:
        log.error("watchdog: no result after %.0f s, aborting", seconds)
        kill_everything()
        with contextlib.suppress(Exception):
            cleanup()
        print(json.dumps({"error": f"watchdog: aborted after {seconds:.0f} s"}), flush=True)
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def sigterm_interrupts() -> None:
    """SIGTERM raises KeyboardInterrupt, so one ``except`` stops the servers for both."""

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
