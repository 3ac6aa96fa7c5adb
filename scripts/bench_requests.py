#!/usr/bin/env python3
"""What one hold and one checkout cost the node: CPU and database round trips per request.

Usage::

    python scripts/bench_requests.py                      # 150 buyers, with e-mail
    python scripts/bench_requests.py --buyers 300 --no-email
    python scripts/bench_requests.py --profile /tmp/node.prof   # the node under cProfile

Prints ONE JSON object on stdout; progress goes to stderr (``--json-only``: warnings only).

Set-up (not timed): a fresh database ``ch_bench_<hex>`` on ``--server-url`` (dropped at the end,
``--keep`` keeps it), migrated; a concert-hub node on a free port (REST rate limits lifted,
e-mails written as files), started through this script so that it counts what it sends to the
database (statements: SQLAlchemy's event on every engine of the node; commits, rollbacks (the
pool's on return too) and pings (``pool_pre_ping``) as the aiomysql adapter sends them; each a
round trip); an event on sale with ``--buyers`` seats; one token per
buyer; ``--warmup`` buyers go through the whole path first, unmeasured.

Workload: one buyer after another (nothing concurrent), each over its own keep-alive
connection: phase ``hold``, every buyer ``POST /api/events/{id}/holds`` one seat; then phase
``checkout``, every buyer ``POST /api/holds/{id}/checkout`` (``tok_visa``, an
``Idempotency-Key``, an e-mail address unless ``--no-email``). Each phase is measured on its own:
the node's CPU (utime + stime of all its threads, from /proc; its child processes apart, as
``children``) and the database work its requests caused, divided by the requests. The node's
idle CPU (``idle_ms_per_s``, measured for ``--idle-s`` before the phases) is what its background
tasks cost whatever the load; it is not subtracted.

Fields: per phase ``cpu_ms_per_request``, ``children_cpu_ms_per_request``, ``wall_ms`` {p50,
p99, mean}, ``round_trips_per_request`` {statements, commits, rollbacks, pings, total} and
``statements`` by kind (first word), counted in the requests' own tasks;
``background_round_trips_per_request``: those of the node's background tasks meanwhile (the
reaper, the outbox senders delivering what the checkouts queued, …); ``errors``. Exit status 0,
1 if a request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")

_COUNTING = "--as-counting-node"
_SCRIPT = str(Path(__file__).resolve())


# -- the node, counting its round trips --------------------------------------------------------


def counting_node(out: str, args: list[str]) -> None:
    """Run ``python -m server *args`` counting every engine's round trips; SIGUSR1 writes the
    counts to ``out`` (as JSON), and so does the exit."""
    import contextvars  # noqa: PLC0415

    from sqlalchemy import event  # noqa: PLC0415
    from sqlalchemy.dialects.mysql.aiomysql import (  # noqa: PLC0415
        AsyncAdapt_aiomysql_connection,
    )
    from sqlalchemy.engine import Engine  # noqa: PLC0415

    from bench.profiled import run_server  # noqa: PLC0415

    counts: Counter[str] = Counter()

    from aiohttp import web_protocol  # noqa: PLC0415

    in_request: contextvars.ContextVar[bool] = contextvars.ContextVar("in_request", default=False)
    handle_request = web_protocol.RequestHandler._handle_request

    async def handle(self: Any, *args: Any, **kwargs: Any) -> Any:
        in_request.set(True)  # (in the request's own task: its child tasks inherit it)
        return await handle_request(self, *args, **kwargs)

    web_protocol.RequestHandler._handle_request = handle  # type: ignore[method-assign]

    def whose() -> str:
        """``request`` inside an HTTP request's task or a task it started (SQLAlchemy closes
        a connection in a shielded task of its own), else ``background``."""
        return "request" if in_request.get() else "background"

    def on_execute(*params: Any) -> None:
        statement = str(params[2]).lstrip()
        who = whose()
        counts[f"{who} statement " + (statement.split(None, 1)[0].upper() or "?")] += 1
        counts[f"{who} statements"] += 1

    def bump(name: str) -> Any:
        def handler(*_: Any) -> None:
            counts[f"{whose()} {name}"] += 1

        return handler

    event.listen(Engine, "before_cursor_execute", on_execute)
    # Commits, rollbacks (the Connection's and the pool's on return) and pings as the driver
    # sends them: each a round trip, whichever layer asked for it.
    for method, name in (("commit", "commits"), ("rollback", "rollbacks"), ("ping", "pings")):
        real = getattr(AsyncAdapt_aiomysql_connection, method)
        counted = bump(name)

        def wrapper(self: Any, *args: Any, _real: Any = real, _counted: Any = counted) -> Any:
            _counted()
            return _real(self, *args)

        setattr(AsyncAdapt_aiomysql_connection, method, wrapper)

    def dump(*_: Any) -> None:
        Path(out + ".tmp").write_text(json.dumps(counts))
        os.replace(out + ".tmp", out)

    signal.signal(signal.SIGUSR1, dump)
    try:
        run_server(args, os.environ.get("BENCH_PROFILE") or None)
    finally:
        dump()


def read_counts(pid: int, path: Path, timeout: float = 10.0) -> Counter[str]:
    """Ask the node for its counts (SIGUSR1) and read them."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the node did not write its round-trip counts")
        time.sleep(0.02)
    return Counter(json.loads(path.read_text()))


def children_cpu_us(pid: int) -> float:
    """CPU of the processes whose parent is ``pid`` (the node's renderer, say)."""
    from bench.cpu import cpu_us  # noqa: PLC0415

    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        if int(raw[raw.rindex(")") + 2 :].split()[1]) == pid:
            total += cpu_us(int(entry.name)) or 0.0
    return total


# -- the buyers --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from bench.mariadb import DEFAULT_SERVER_URL  # noqa: PLC0415
    from bench.servers import DEFAULT_PYTHON  # noqa: PLC0415

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--buyers", type=int, default=150)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--no-email", action="store_true", help="check out without an e-mail address")
    p.add_argument("--idle-s", type=float, default=2.0)
    p.add_argument("--profile", help="run the node under cProfile (thread time), write here")
    p.add_argument("--node-flag", action="append", default=[], help="one more serve flag")
    p.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    p.add_argument("--keep", action="store_true", help="keep the database")
    p.add_argument("--python", default=DEFAULT_PYTHON)
    p.add_argument("--json-only", action="store_true")
    return p.parse_args(argv)


def event_body(seats: int) -> dict[str, Any]:
    from bench.rest import iso_in  # noqa: PLC0415

    rows = -(-seats // 50)
    return {
        "name": "Request cost", "venue": "Bench Hall", "starts_at": iso_in(7 * 86400),
        "sale_opens_at": iso_in(-3600), "sale_closes_at": iso_in(86400), "status": "on_sale",
        "layout": {"tiers": [{"name": "A", "price_cents": 5000, "currency": "EUR"}],
                   "sections": [{"name": "Floor", "rows": rows, "seats_per_row": 50,
                                 "tier": "A"}]},
    }  # fmt: skip


class Buyer:
    def __init__(self, name: str, token: str, seat: str) -> None:
        self.name = name
        self.token = token
        self.seat = seat
        self.hold_id: str | None = None


async def call(
    port: int, method: str, path: str, token: str, body: object, *, extra: str = ""
) -> tuple[int, Any, float]:
    from bench.rest import HttpConn  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(HttpConn, "127.0.0.1", port)
    try:
        data = json.dumps(body).encode()
        raw = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n{extra}"
               f"Content-Length: {len(data)}\r\n\r\n").encode() + data  # fmt: skip
        started = time.perf_counter()
        async with asyncio.timeout(30):
            status, answer, _ = await conn.request(raw)
        return status, json.loads(answer) if answer else None, time.perf_counter() - started
    finally:
        conn.close()


async def hold(port: int, event_id: int, buyer: Buyer) -> tuple[int, Any, float]:
    status, body, seconds = await call(
        port, "POST", f"/api/events/{event_id}/holds", buyer.token, {"seats": [buyer.seat]}
    )
    if status == 201:
        buyer.hold_id = body["hold_id"]
    return status, body, seconds


async def checkout(port: int, buyer: Buyer, email: bool) -> tuple[int, Any, float]:
    body: dict[str, Any] = {"payment": {"method": "card", "token": "tok_visa"}}
    if email:
        body["email"] = f"{buyer.name}@example.com"
    return await call(
        port, "POST", f"/api/holds/{buyer.hold_id}/checkout", buyer.token, body,
        extra=f"Idempotency-Key: {uuid.uuid4().hex}\r\n",
    )  # fmt: skip


async def measure(args: argparse.Namespace, database_url: str, workdir: Path) -> dict[str, Any]:
    from bench.cpu import cpu_us  # noqa: PLC0415
    from bench.rest import http_json  # noqa: PLC0415
    from bench.servers import (  # noqa: PLC0415
        BENCH_SECRET,
        ChildProcess,
        free_port,
        http_status,
        mint_tokens,
        serve_cmd,
    )
    from bench.stats import ms_summary  # noqa: PLC0415

    port = free_port()
    serve = serve_cmd(args.python, port, database_url, BENCH_SECRET, [
        "--rest-rate-per-ip", "1000000", "--rest-rate-per-user", "1000000",
        "--outbox-dir", str(workdir / "outbox"), *args.node_flag,
    ])  # fmt: skip
    counts_path = workdir / "counts.json"
    cmd = [args.python, _SCRIPT, _COUNTING, str(counts_path), *serve[3:]]
    node = ChildProcess(cmd, workdir / "node.log", "server")
    errors: Counter[str] = Counter()
    try:
        node.wait_ready(lambda: http_status(port, "/healthz") == 200, 60, "GET /healthz not 200")
        total = args.warmup + args.buyers
        (admin,) = mint_tokens(BENCH_SECRET, [("bench-admin", "admin")])
        status, event = http_json(port, "POST", "/api/admin/events", admin, event_body(total))
        assert status == 201, (status, event)
        event_id = int(event["id"])
        seats = _seat_ids(event_body(total))
        names = [f"buyer-{i}" for i in range(total)]
        tokens = mint_tokens(BENCH_SECRET, [(n, "user") for n in names])
        buyers = [Buyer(n, t, s) for n, t, s in zip(names, tokens, seats, strict=False)]
        warm, measured = buyers[: args.warmup], buyers[args.warmup :]
        for buyer in warm:
            await hold(port, event_id, buyer)
            await checkout(port, buyer, not args.no_email)
        await asyncio.sleep(0.5)
        pid = node.pid
        idle_before, idle_started = cpu_us(pid) or 0.0, time.monotonic()
        await asyncio.sleep(args.idle_s)
        idle_used = (cpu_us(pid) or 0.0) - idle_before
        idle_ms_per_s = idle_used / 1000 / (time.monotonic() - idle_started)
        phases: dict[str, Any] = {}
        for phase in ("hold", "checkout"):
            counts_before = read_counts(pid, counts_path)
            cpu_before, kids_before = cpu_us(pid) or 0.0, children_cpu_us(pid)
            started = time.monotonic()
            walls: list[float] = []
            for buyer in measured:
                if phase == "hold":
                    status, body, seconds = await hold(port, event_id, buyer)
                    wanted = 201
                else:
                    if buyer.hold_id is None:
                        continue
                    status, body, seconds = await checkout(port, buyer, not args.no_email)
                    wanted = 201
                walls.append(seconds)
                if status != wanted:
                    errors[f"{phase} HTTP {status}: {str(body)[:120]}"] += 1
            elapsed = time.monotonic() - started
            cpu_used = (cpu_us(pid) or 0.0) - cpu_before
            kids_used = children_cpu_us(pid) - kids_before
            counts = read_counts(pid, counts_path) - counts_before
            n = max(len(walls), 1)
            kinds = ("statements", "commits", "rollbacks", "pings")
            trips = {k: counts[f"request {k}"] for k in kinds}
            background = sum(counts[f"background {k}"] for k in kinds)
            phases[phase] = {
                "requests": len(walls),
                "elapsed_s": round(elapsed, 2),
                "cpu_ms_per_request": round(cpu_used / 1000 / n, 2),
                "children_cpu_ms_per_request": round(kids_used / 1000 / n, 2),
                "wall_ms": ms_summary(walls, ("p50", "p99", "mean")),
                "round_trips_per_request": {
                    **{k: round(v / n, 2) for k, v in trips.items()},
                    "total": round(sum(trips.values()) / n, 2),
                },
                "statements": {
                    k.split(" ", 2)[2]: round(v / n, 2)
                    for k, v in sorted(counts.items())
                    if k.startswith("request statement ")
                },
                "background_round_trips_per_request": round(background / n, 2),
                "counted": dict(sorted(counts.items())),
            }
    finally:
        node.stop()
    from bench.servers import log_summary  # noqa: PLC0415

    return {
        "buyers": args.buyers,
        "email": not args.no_email,
        "node_flags": args.node_flag,
        "idle_ms_per_s": round(idle_ms_per_s, 2),
        **phases,
        "errors": dict(errors),
        "node_log": log_summary(workdir / "node.log"),
    }


def _seat_ids(body: dict[str, Any]) -> list[str]:
    from booking.layout import LayoutSpec, expand  # noqa: PLC0415

    return [s.seat_id for s in expand(LayoutSpec.model_validate(body["layout"]))]


def main(argv: list[str] | None = None) -> int:
    from bench.harness import install_uvloop, print_json, setup_logging  # noqa: PLC0415
    from bench.mariadb import fresh_database  # noqa: PLC0415
    from bench.servers import migrate  # noqa: PLC0415

    args = parse_args(argv)
    if args.profile:  # (the node reads it)
        os.environ["BENCH_PROFILE"] = str(Path(args.profile).resolve())
    setup_logging(args.json_only)
    install_uvloop()
    out: dict[str, Any] = {}
    with fresh_database(args.server_url, out, keep=args.keep) as url:
        migrate(args.python, url)
        with tempfile.TemporaryDirectory(prefix="bench-requests-") as tmp:
            out |= asyncio.run(measure(args, url, Path(tmp)))
    print_json(out)
    return 0 if not out.get("errors") else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == _COUNTING:
        # the node: the repository first on the path, as ``python -m server`` from its root
        root = Path(__file__).resolve().parent.parent
        sys.path[0:1] = [str(root), str(root / "scripts")]  # (and `bench` for its runner)
        counting_node(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(main())
