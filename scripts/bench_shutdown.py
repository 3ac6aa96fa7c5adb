#!/usr/bin/env python3
"""How long a node holding many STOMP sessions takes to stop on SIGTERM (SPEC §1: exit 0 within
10 s), and whether every session heard why.

Usage::

    python scripts/bench_shutdown.py                          # 5,000 sessions, --workers 2
    python scripts/bench_shutdown.py --sessions 10000 --workers 2

Prints ONE JSON object on stdout; progress goes to stderr (``--json-only``: warnings only).

Set-up (not timed): a fresh database ``ch_bench_<hex>`` on ``--server-url`` (dropped at the end),
migrated; a private redis-server (with ``--workers`` > 1); ``concert-hub serve --workers N`` on a
free port, ready once ``/api/admin/stats`` lists every worker; ``--sessions`` STOMP-over-WebSocket
sessions from this process (STOMP 1.2, no heart-beats, each subscribed to
``/topic/announcements``), spread over the workers by the kernel (``SO_REUSEPORT``).

Measured: SIGTERM goes to the supervisor alone, as an orchestrator sends it; ``stop_s`` is the
time until the supervisor has exited (its ``exit_code``; 0 wanted), with this process's event loop
answering the sessions' close handshakes meanwhile. Each session then reports how it ended:
``told`` counts those that received ERROR ``server shutting down``, ``close_1001`` those whose
WebSocket the server closed with 1001, ``ended`` those whose connection is gone (by then, all
of them, or the node left connections behind). ``node_log``: what the node logged (at warning).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from bench.mariadb import DEFAULT_SERVER_URL  # noqa: PLC0415
    from bench.servers import DEFAULT_PYTHON  # noqa: PLC0415

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sessions", type=int, default=5000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=256, help="handshakes in flight")
    p.add_argument("--wait-s", type=float, default=30.0, help="longest wait for the exit")
    p.add_argument("--node-flag", action="append", default=[], help="one more serve flag")
    p.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    p.add_argument("--python", default=DEFAULT_PYTHON)
    p.add_argument("--json-only", action="store_true")
    return p.parse_args(argv)


async def measure(args: argparse.Namespace, database_url: str, workdir: Path) -> dict[str, Any]:
    from bench.rest import listed_nodes  # noqa: PLC0415
    from bench.servers import (  # noqa: PLC0415
        BENCH_SECRET,
        ChildProcess,
        free_port,
        http_status,
        log_summary,
        mint_tokens,
        serve_cmd,
        start_redis,
    )
    from bench.sessions import Endpoint, open_many, open_session  # noqa: PLC0415

    redis = None
    flags = ["--max-connections", str(args.sessions + 1000), "--idle-timeout-s", "3600",
             "--workers", str(args.workers), *args.node_flag]  # fmt: skip
    if args.workers > 1:
        redis, redis_port = start_redis(workdir)
        flags += ["--redis-url", f"redis://127.0.0.1:{redis_port}/0"]
    port = free_port()
    node = ChildProcess(
        serve_cmd(args.python, port, database_url, BENCH_SECRET, [*flags, "--node-id", "stop"]),
        workdir / "node.log",
        "server",
    )
    try:
        node.wait_ready(lambda: http_status(port, "/readyz") == 200, 60, "GET /readyz not 200")
        (admin,) = mint_tokens(BENCH_SECRET, [("bench-admin", "admin")])
        wanted = {f"stop-w{w}" for w in range(1, args.workers + 1)} if args.workers > 1 else set()
        node.wait_ready(lambda: wanted <= listed_nodes(port, admin), 60, "every worker listed")
        tokens = mint_tokens(BENCH_SECRET, [(f"fan-{i}", "user") for i in range(args.sessions)])
        ep = Endpoint("127.0.0.1", port, "/ws", "/topic/announcements")
        started = time.monotonic()
        opened = await open_many(
            [lambda t=t: open_session(ep, passcode=t) for t in tokens],  # type: ignore[misc]
            concurrency=args.concurrency,
            wait_s=120,
        )
        open_s = time.monotonic() - started
        clients = opened.sessions
        log.info("%d sessions open in %.1f s (%d failed); SIGTERM", len(clients), open_s,
                 opened.failures)  # fmt: skip
        await asyncio.sleep(1.0)
        stopping = time.monotonic()
        os.kill(node.pid, signal.SIGTERM)
        # (waited for in a thread: this loop answers the sessions' close handshakes meanwhile)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(node.proc.wait, args.wait_s)
        stop_s = time.monotonic() - stopping
        exit_code = node.proc.poll()
        await asyncio.sleep(0.5)  # what is still in flight to this process
        ended = Counter[str]()
        for client in clients:
            error = client.error or ""
            ended["told"] += error.startswith("ERROR server shutting down")
            ended["close_1001"] += client._ws.close_code == 1001
            ended["ended"] += client.transport is None or client.transport.is_closing()
        for client in clients:
            if client.transport is not None:
                client.transport.abort()
    finally:
        node.stop()
        if redis is not None:
            redis.stop()
    return {
        "sessions": args.sessions,
        "workers": args.workers,
        "opened": len(clients),
        "open_failures": opened.failures,
        "open_s": round(open_s, 2),
        "stop_s": round(stop_s, 2),
        "exit_code": exit_code,
        **{k: ended[k] for k in ("told", "close_1001", "ended")},
        "node_log": log_summary(workdir / "node.log", limit=40),
    }


def main(argv: list[str] | None = None) -> int:
    from bench.harness import install_uvloop, print_json, raise_nofile, setup_logging  # noqa: PLC0415
    from bench.mariadb import fresh_database  # noqa: PLC0415
    from bench.servers import migrate  # noqa: PLC0415

    args = parse_args(argv)
    setup_logging(args.json_only)
    install_uvloop()
    raise_nofile()
    out: dict[str, Any] = {}
    with fresh_database(args.server_url, out) as url:
        migrate(args.python, url)
        with tempfile.TemporaryDirectory(prefix="bench-shutdown-") as tmp:
            out |= asyncio.run(measure(args, url, Path(tmp)))
    print_json(out)
    return 0 if out.get("exit_code") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
