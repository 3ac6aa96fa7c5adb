"""Benchmark the waiting room: N users join one event over REST, then watch their positions.

Usage::

    python scripts/bench_queue.py --users 1000 --duration 10 --engine both
    python scripts/bench_queue.py --users 10000 --rate 50 --interval 2 --duration 20 --engine both
    python scripts/bench_queue.py --scenario sellout --users 10000 --seats 2000  # bench/sellout.py

Prints ONE JSON object on stdout; progress goes to stderr (``--quiet``: warnings only). Only
127.0.0.1 is ever contacted. Targets (2-core machine): joins >= 5,000/s with the Redis engine;
every waiting user updated at least every ``--interval`` s, p99 lateness < 500 ms, at 10,000 users.

Method (per engine, each on a fresh server)
-------------------------------------------
The script starts ``<python> -m server serve`` on a free port with a throw-away SQLite database,
``--position-interval-s --interval``, REST and STOMP rate limits out of the way and, for the Redis
engine, a private ``redis-server`` on a free port (no persistence; database ``--redis-db``, 0 by
default) with ``--redis-url redis://127.0.0.1:<port>/<db>``: the machine's shared Redis is never
touched. It creates one event
(on sale, waiting room on, ``admission_rate --rate``) with ``max_active_shoppers`` 1, so the first
joiner is admitted and then the queue stands still: every later user's position stays
``seq - 1``, which is its rank in the admission order to come. Users are split over
``--client-procs`` worker processes (uvloop; the WebSocket/STOMP client is the project's
``concert_hub_client``), each user a JWT minted with ``--secret``.

1. Join: every user POSTs ``/api/events/{id}/queue`` once (``Authorization: Bearer``), over
   ``--join-concurrency`` keep-alive HTTP/1.1 connections in total (``--http-client raw``: a
   minimal client on an asyncio Protocol; ``aiohttp``: ``ClientSession`` with one connector per
   worker). raw is the default: the client shares the two cores with the server, and at 10,000
   joins raw cost ~50 us of client CPU per join against ~160 us for aiohttp. A request that
   fails is retried once on a new connection (joining is idempotent).
2. Subscribe: each user whose join succeeded opens a WebSocket (``v12.stomp``), CONNECTs with its
   token as ``passcode`` and SUBSCRIBEs ``/user/queue/position`` with a receipt (at most
   ``--connect-concurrency`` handshakes in flight in total). Then ``--settle`` seconds of quiet.
3. Measure: ``PATCH max_active_shoppers --cap`` starts admission at ``--rate``/s; for
   ``--duration`` seconds every position message is time-stamped on arrival (CLOCK_MONOTONIC,
   shared by all processes of the machine).

Definitions
-----------
* Lateness of position updates: for each user, the gaps between consecutive position messages
  while its state is ``waiting`` (the gap ending with its ``admitted`` message included), counted
  when the gap ends inside the measure window; lateness = max(0, gap - interval). A user still
  waiting at the end of the window whose last message is older than ``interval`` adds that open
  gap too, so a user who hears nothing at all cannot hide. ``users_late``: users with any such
  gap longer than ``interval + --late-slack`` (0.5 s).
* Admission latency ("from due to pushed"): the server paces admissions with a token bucket that
  holds one second's worth (``burst = max(rate, 1)``) and starts full. With t0 = arrival of the
  first ``admitted`` message after the PATCH, the user of rank r (its position before admission
  started, 1 = next) is due at ``t0 + max(0, r - burst) / rate``; latency = arrival of its
  ``admitted`` message - due, clipped at 0. It includes the admission tick (100 ms) and delivery.
* CPU: utime+stime from ``/proc/PID/stat`` (all threads) over a phase, 100 = one core; server =
  the concert-hub process, client = this process and the workers, redis = ``redis-server`` (the
  pid from ``INFO server``; the whole instance), machine = all cores (also 100 = one core, so 200
  = both cores of the 2-core machine busy); ``other_cpu_pct`` = machine minus the processes
  above: whatever else used the machine meanwhile. Compare runs only when it is small; the
  per-join CPU figures hold up better than rates when it is not.

Output fields
-------------
Top level: users, rate, interval_s, duration_s, cap, client_procs, join_concurrency,
http_client, engines {"in-process": {...}, "redis": {...}}. Per engine:

joined, joins_per_s (successful joins / time from the first request to the last answer),
join_s, join_latency_ms {p50, p99, max}, join_server_cpu_pct, join_client_cpu_pct,
join_redis_cpu_pct, join_machine_cpu_pct, join_server_cpu_us_per_join and
join_client_cpu_us_per_join (CPU time per successful join: comparable even when something else
shares the machine); subscribed, subscribe_s; window_s, window_monotonic ([start, end] on
CLOCK_MONOTONIC, to line up with server-side traces), position_updates (messages in the
window), waiting_users (users waiting at some point of the window), gaps (gaps measured),
gap_ms {p50, p99, max}, lateness_ms {p50, p99, max}, users_late, late_gaps_per_s (gaps over
interval + slack by the second of the window in which they ended: a start-up transient or a
steady state?), users_silent (waiting users with no message at all in the window); admitted
(admitted messages in the window), admitted_expected (burst + rate x window, capped by the
queue), admission_latency_ms {p50, p99, max}, admission_order_inversions (admitted messages
that arrived more than a tick before one of a lower rank); server_cpu_pct, server_rss_mib (at
the end of the window), client_cpu_pct, redis_cpu_pct, machine_cpu_pct, other_cpu_pct (all
over the window); dropped (sessions lost during the run), errors (list of "what: count x"),
checks {joins_5000_per_s, every_user_within_slack, lateness_p99_under_500ms}, redis_db,
server_pid, server_exit_code, server_log (what it logged at --log-level warning, first lines).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from bench.cpu import CpuSample, machine_pct, other_pct, pct, rss_kib, used_us
from bench.cpu import mib as to_mib
from bench.harness import (
    describe,
    kill_everything,
    log,
    print_json,
    raise_nofile,
    recv_msg,
    setup_logging,
    sigterm_interrupts,
    start_watchdog,
    start_worker,
    stop_workers,
)
from bench.rest import HttpConn, HttpError, http_json, iso_in
from bench.servers import (
    BENCH_SECRET,
    DEFAULT_PYTHON,
    ChildProcess,
    log_summary,
    migrate,
    mint_tokens,
    start_node,
    start_redis,
)
from bench.sessions import Endpoint, open_many, open_session
from bench.stats import Errors, ms_summary
from concert_hub_client import Client, Message

POSITION_DESTINATION = "/user/queue/position"
ENGINES = ("in-process", "redis")
ADMISSION_TICK_S = 0.1  # the server's admission tick
WAITING, ADMITTED, OTHER = 0, 1, 2


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# A position subscriber: arrival times, states and positions of its messages.
# ---------------------------------------------------------------------------------------------


class PositionFeed:
    """What one user heard on ``/user/queue/position`` (time-stamped on arrival)."""

    __slots__ = ("bad", "event_id", "positions", "session", "states", "times")

    def __init__(self, event_id: int) -> None:
        self.event_id = event_id
        self.times: list[float] = []
        self.states: list[int] = []
        self.positions: list[int] = []
        self.bad = 0
        self.session: Client | None = None

    def on_message(self, message: Message) -> None:
        now = time.monotonic()
        try:
            data = json.loads(message.body)
        except ValueError:
            self.bad += 1
            return
        if data.get("event_id") != self.event_id:
            return
        state = data.get("state")
        self.times.append(now)
        self.states.append(
            WAITING if state == "waiting" else ADMITTED if state == "admitted" else OTHER
        )
        position = data.get("position")
        self.positions.append(position if isinstance(position, int) else -1)


# ---------------------------------------------------------------------------------------------
# Worker process: joins, subscriptions and arrival times for its share of the users.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerConfig:
    host: str
    port: int
    event_id: int
    users: list[tuple[str, str]]  # (name, token)
    join_concurrency: int
    connect_concurrency: int
    http_client: str
    request_timeout: float
    connect_timeout: float
    phase_timeout: float
    budget_s: float
    verbose: bool


JoinLane = Callable[[Iterator[int], list[float], Errors], Any]


class Worker:
    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.joined = [False] * len(cfg.users)
        self.feeds: list[PositionFeed] = []

    # -- 1. join -------------------------------------------------------------------------------

    async def join(self) -> dict[str, Any]:
        cfg = self.cfg
        latencies: list[float] = []
        errors = Errors()
        pending = iter(range(len(cfg.users)))
        lanes = max(1, min(cfg.join_concurrency, len(cfg.users)))
        t_start = time.monotonic()
        join = self._join_aiohttp if cfg.http_client == "aiohttp" else self._join_raw
        await join(pending, lanes, latencies, errors)
        t_end = time.monotonic()
        return {
            "ok": sum(self.joined),
            "latencies": latencies,
            "t_start": t_start,
            "t_end": t_end,
            "errors": dict(errors),
        }

    @property
    def join_path(self) -> str:
        return f"/api/events/{self.cfg.event_id}/queue"

    def _answered(self, i: int, status: int, body: bytes, errors: Errors) -> None:
        if status == 200:
            self.joined[i] = True
        else:
            errors.add(f"join HTTP {status}: {body[:160].decode('utf-8', 'replace')}")

    async def _join_raw(
        self, pending: Iterator[int], lanes: int, latencies: list[float], errors: Errors
    ) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        prefix = (
            f"POST {self.join_path} HTTP/1.1\r\nHost: {cfg.host}:{cfg.port}\r\n"
            "Authorization: Bearer "
        )
        suffix = "\r\nContent-Length: 0\r\n\r\n"

        async def lane() -> None:
            conn: HttpConn | None = None
            for i in pending:
                raw = (prefix + cfg.users[i][1] + suffix).encode()
                for attempt in range(2):  # joining is idempotent: retry once, on a new connection
                    try:
                        if conn is None or conn.closed:
                            async with asyncio.timeout(cfg.request_timeout):
                                _, conn = await loop.create_connection(HttpConn, cfg.host, cfg.port)
                        t = time.monotonic()
                        async with asyncio.timeout(cfg.request_timeout):
                            status, body, keep = await conn.request(raw)
                        latencies.append(time.monotonic() - t)
                        self._answered(i, status, body, errors)
                        if not keep:
                            conn.close()
                            conn = None
                        break
                    except (OSError, TimeoutError, HttpError) as exc:
                        errors.add(f"join (attempt {attempt + 1}): {describe(exc)}")
                        if conn is not None:
                            conn.close()
                        conn = None
            if conn is not None:
                conn.close()

        await asyncio.gather(*(lane() for _ in range(lanes)))

    async def _join_aiohttp(
        self, pending: Iterator[int], lanes: int, latencies: list[float], errors: Errors
    ) -> None:
        import aiohttp  # noqa: PLC0415  (only for --http-client aiohttp)

        cfg = self.cfg
        url = f"http://{cfg.host}:{cfg.port}{self.join_path}"
        timeout = aiohttp.ClientTimeout(total=cfg.request_timeout)
        connector = aiohttp.TCPConnector(limit=lanes, limit_per_host=lanes)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

            async def lane() -> None:
                for i in pending:
                    headers = {"Authorization": "Bearer " + cfg.users[i][1]}
                    for attempt in range(2):
                        try:
                            t = time.monotonic()
                            async with http.post(url, headers=headers) as response:
                                body = await response.read()
                            latencies.append(time.monotonic() - t)
                            self._answered(i, response.status, body, errors)
                            break
                        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
                            errors.add(f"join (attempt {attempt + 1}): {describe(exc)}")

            await asyncio.gather(*(lane() for _ in range(lanes)))

    # -- 2. subscribe --------------------------------------------------------------------------

    async def subscribe(self) -> dict[str, Any]:
        cfg = self.cfg
        ep = Endpoint(cfg.host, cfg.port, "/ws", POSITION_DESTINATION)
        errors = Errors()
        t_start = time.monotonic()

        def opener(token: str) -> Callable[[], Any]:
            async def open_one() -> Client:
                feed = PositionFeed(cfg.event_id)
                feed.session = await open_session(
                    ep, passcode=token, on_message=feed.on_message, timeout=cfg.connect_timeout
                )
                self.feeds.append(feed)
                return feed.session

            return open_one

        tokens = [tok for (_, tok), ok in zip(cfg.users, self.joined, strict=True) if ok]
        await open_many(
            [opener(tok) for tok in tokens],
            concurrency=cfg.connect_concurrency,
            on_error=lambda text: errors.add(f"subscribe, {text}"),
            wait_s=cfg.phase_timeout,
        )
        return {
            "subscribed": len(self.feeds),
            "seconds": time.monotonic() - t_start,
            "errors": dict(errors),
        }

    # -- 3. report -----------------------------------------------------------------------------

    def report(self, w0: float, w1: float, interval: float, slack: float) -> dict[str, Any]:
        """Gaps, lateness and admissions of this worker's users over the window [w0, w1]."""
        gaps: list[float] = []
        late_users = silent = waiting_users = updates = dropped = bad = 0
        admissions: list[tuple[int, float]] = []  # (rank, arrival)
        # late gaps by the second of the window they ended in (a transient or steady?)
        late_per_s = [0] * (int(w1 - w0) + 1)
        drop_error: str | None = None
        for feed in self.feeds:
            bad += feed.bad
            if feed.session is not None and feed.session.closed:
                dropped += 1
                drop_error = drop_error or feed.session.error
            times, states, positions = feed.times, feed.states, feed.positions
            # Before admission starts the queue stands still: position = rank (1 = next).
            rank = next(
                (p for t, st, p in zip(times, states, positions, strict=True)
                 if st == WAITING and t < w0 and p > 0),
                -1,
            )  # fmt: skip
            prev: float | None = None  # time of the last message while waiting
            heard = 0  # gaps of this user that ended inside the window
            late = False
            for t, st in zip(times, states, strict=True):
                if t > w1:
                    break
                if t >= w0:
                    updates += 1
                    if prev is not None:
                        gap = t - prev
                        gaps.append(gap)
                        heard += 1
                        if gap > interval + slack:
                            late = True
                            late_per_s[int(t - w0)] += 1
                if st == WAITING:
                    prev = t
                else:
                    if st == ADMITTED and t >= w0:
                        admissions.append((rank, t))
                    prev = None
            if prev is not None:  # still waiting at the end of the window: the open gap
                open_gap = w1 - prev
                if open_gap > interval:
                    gaps.append(open_gap)
                    if open_gap > interval + slack:
                        late = True
                        late_per_s[-1] += 1
                silent += heard == 0
            waiting_users += heard > 0 or prev is not None
            late_users += late
        return {
            "gaps": [round(g, 4) for g in gaps],
            "users_late": late_users,
            "late_per_s": late_per_s,
            "users_silent": silent,
            "waiting_users": waiting_users,
            "updates": updates,
            "admissions": admissions,
            "dropped": dropped,
            "drop_error": drop_error,
            "bad_messages": bad,
        }

    def close(self) -> None:
        for feed in self.feeds:
            if feed.session is not None:
                feed.session.close()


async def worker_main(conn: Connection, cfg: WorkerConfig) -> None:
    worker = Worker(cfg)
    conn.send({"type": "ready", "pid": os.getpid()})
    try:
        while True:
            msg = await recv_msg(conn, cfg.budget_s)
            kind = msg["type"]
            if kind == "join":
                async with asyncio.timeout(cfg.phase_timeout):
                    conn.send(await worker.join())
            elif kind == "subscribe":
                async with asyncio.timeout(cfg.phase_timeout):
                    conn.send(await worker.subscribe())
            elif kind == "report":
                conn.send(worker.report(msg["w0"], msg["w1"], msg["interval"], msg["slack"]))
            else:
                break
    except Exception as exc:  # tell the parent why, rather than let it time out
        log.warning("worker stopping: %s", describe(exc))
        with contextlib.suppress(OSError, ValueError):
            conn.send({"type": "error", "error": describe(exc)})
    finally:
        worker.close()
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# Main process: server, event, phases, measurements.
# ---------------------------------------------------------------------------------------------


def create_event(args: argparse.Namespace, port: int, admin: str) -> int:
    status, event = http_json(port, "POST", "/api/admin/events", admin, {
        "name": "Queue bench", "venue": "Arena", "starts_at": iso_in(86400),
        "sale_opens_at": iso_in(-60), "sale_closes_at": iso_in(7200), "status": "on_sale",
        "waiting_room": True, "admission_rate": args.rate, "max_active_shoppers": 1,
        "layout": {"tiers": [{"name": "A", "price_cents": 5000}],
                   "sections": [{"name": "S", "rows": 2, "seats_per_row": 10, "tier": "A"}]},
    })  # fmt: skip
    if status != 201:
        raise BenchError(f"create event: HTTP {status} {event}")
    return int(event["id"])


@dataclass
class Meter:
    """CPU of the server, the client processes and redis-server (one snapshot per call)."""

    server_pid: int
    client_pids: list[int]
    redis_pid: int | None

    def take(self) -> CpuSample:
        return CpuSample.take([self.server_pid, *self.client_pids, self.redis_pid or 0])

    def pct(self, a: CpuSample, b: CpuSample) -> dict[str, float | None]:
        """server, client, redis, machine (100 = one core, like the others) and other."""
        span = b.mono - a.mono
        if span <= 0:
            return {}
        machine = machine_pct(a, b)
        return {
            "server": pct(used_us(a, b, [self.server_pid]), span),
            "client": pct(used_us(a, b, self.client_pids), span),
            "redis": pct(used_us(a, b, [self.redis_pid]), span) if self.redis_pid else None,
            "machine": None if machine is None else round(machine * (os.cpu_count() or 1), 1),
            "other": other_pct(a, b),
        }

    def per_join(self, a: CpuSample, b: CpuSample, pids: list[int], joined: int) -> float | None:
        used = used_us(a, b, pids)
        return None if used is None or not joined else round(used / joined, 1)


def exchange(
    workers: list[tuple[BaseProcess, Connection]], msg: dict[str, Any], timeout: float
) -> list[Any]:
    """Send ``msg`` to every worker and collect one answer from each."""
    for _, conn in workers:
        conn.send(msg)
    deadline = time.monotonic() + timeout
    out = []
    for proc, conn in workers:
        if not conn.poll(max(0.0, deadline - time.monotonic())):
            raise BenchError(
                f"worker {proc.pid}: no answer to {msg['type']} within {timeout:.0f} s"
            )
        answer = conn.recv()
        if answer.get("type") == "error":
            raise BenchError(f"worker {proc.pid}: {answer['error']}")
        out.append(answer)
    return out


def admission_latency(admissions: list[tuple[int, float]], rate: float) -> tuple[list[float], int]:
    """Arrival minus due time (see the module docstring), and rank-order inversions."""
    ranked = sorted((r, t) for r, t in admissions if r > 0)
    if not ranked:
        return [], 0
    t0 = min(t for _, t in ranked)
    burst = max(rate, 1.0)
    lat = [max(0.0, t - (t0 + max(0.0, r - burst) / rate)) for r, t in ranked]
    inversions = 0
    latest = -math.inf
    for _, t in ranked:  # by rank: a later rank arriving more than a tick before an earlier one
        if t < latest - ADMISSION_TICK_S:
            inversions += 1
        latest = max(latest, t)
    return lat, inversions


def start_server(
    args: argparse.Namespace, tmp: Path, redis_url: str | None
) -> tuple[ChildProcess, int]:
    database_url = f"sqlite+aiosqlite:///{tmp}/q.db"
    if redis_url:  # cluster mode does not migrate on start (only the embedded mode does)
        migrate(args.python, database_url)
    flags = [
        "--max-connections", str(args.users + 500),
        "--rest-rate-per-ip", "1e9", "--rest-rate-per-user", "1e9", "--max-send-rate", "1e9",
        "--position-interval-s", str(args.interval),
        *(["--redis-url", redis_url] if redis_url else []),
        *shlex.split(args.server_cmd_extra),
    ]  # fmt: skip
    return start_node(
        args.python, database_url, args.secret, flags, tmp / "server.log",
        ready_path="/readyz", timeout=args.startup_timeout,
    )  # fmt: skip


def bench_engine(args: argparse.Namespace, engine: str, tmp: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"engine": engine}
    errors = Errors()
    redis: ChildProcess | None = None
    child: ChildProcess | None = None
    workers: list[tuple[BaseProcess, Connection]] = []
    try:
        redis_url = None
        if engine == "redis":
            redis, redis_port = start_redis(tmp, args.startup_timeout)
            redis_url = f"redis://127.0.0.1:{redis_port}/{args.redis_db}"
        result["redis_db"] = args.redis_db if redis is not None else None
        child, port = start_server(args, tmp, redis_url)
        result["server_pid"] = child.pid
        names = [f"qb-{i:06d}" for i in range(args.users)]
        *tokens, admin = mint_tokens(
            args.secret, [*((n, "user") for n in names), ("bench-admin", "admin")]
        )
        event_id = create_event(args, port, admin)
        users = list(zip(names, tokens, strict=True))

        procs = max(1, min(args.client_procs, args.users))
        for i in range(procs):
            cfg = WorkerConfig(
                host="127.0.0.1",
                port=port,
                event_id=event_id,
                users=users[i::procs],
                join_concurrency=max(1, args.join_concurrency // procs),
                connect_concurrency=max(1, args.connect_concurrency // procs),
                http_client=args.http_client,
                request_timeout=args.request_timeout,
                connect_timeout=args.connect_timeout,
                phase_timeout=phase_timeout(args),
                budget_s=bench_budget(args),
                verbose=not args.quiet,
            )
            workers.append(start_worker(worker_main, cfg))
        ready = []
        for proc, conn in workers:
            if not conn.poll(60):
                raise BenchError(f"worker {proc.pid} did not start")
            ready.append(conn.recv()["pid"])
        meter = Meter(child.pid, [os.getpid(), *ready], redis.pid if redis else None)

        # 1. join
        log.info("%s: event %d; %d users joining", engine, event_id, args.users)
        a = meter.take()
        joins = exchange(workers, {"type": "join"}, phase_timeout(args) + 10)
        b = meter.take()
        errors.merge(j["errors"] for j in joins)
        joined = sum(j["ok"] for j in joins)
        span = max(j["t_end"] for j in joins) - min(j["t_start"] for j in joins)
        cpu = meter.pct(a, b)
        result.update(
            joined=joined,
            joins_per_s=round(joined / span, 1) if span > 0 else None,
            join_s=round(span, 3),
            join_latency_ms=ms_summary(x for j in joins for x in j["latencies"]),
            join_server_cpu_pct=cpu.get("server"),
            join_client_cpu_pct=cpu.get("client"),
            join_redis_cpu_pct=cpu.get("redis"),
            join_machine_cpu_pct=cpu.get("machine"),
            join_server_cpu_us_per_join=meter.per_join(a, b, [meter.server_pid], joined),
            join_client_cpu_us_per_join=meter.per_join(a, b, meter.client_pids, joined),
        )
        log.info("%s: %d/%d joined in %.2f s (%s/s)", engine, joined, args.users, span,
                 result["joins_per_s"])  # fmt: skip

        # 2. subscribe (after a few admission ticks, so the first joiner is surely admitted and
        # every later position is the user's rank in the admission order to come)
        time.sleep(3 * ADMISSION_TICK_S)
        subs = exchange(workers, {"type": "subscribe"}, phase_timeout(args) + 10)
        errors.merge(s["errors"] for s in subs)
        result["subscribed"] = sum(s["subscribed"] for s in subs)
        result["subscribe_s"] = round(max(s["seconds"] for s in subs), 2)
        log.info("%s: %d subscribed in %.1f s", engine, result["subscribed"], result["subscribe_s"])
        time.sleep(args.settle)

        # 3. measure
        a = meter.take()
        w0 = a.mono
        status, body = http_json(port, "PATCH", f"/api/admin/events/{event_id}", admin,
                                 {"max_active_shoppers": args.cap})  # fmt: skip
        if status != 200:
            raise BenchError(f"PATCH max_active_shoppers: HTTP {status} {body}")
        time.sleep(max(0.0, w0 + args.duration - time.monotonic()))
        b = meter.take()
        w1 = b.mono
        result["server_rss_mib"] = to_mib(rss_kib(child.pid))
        reports = exchange(
            workers,
            {"type": "report", "w0": w0, "w1": w1, "interval": args.interval,
             "slack": args.late_slack},
            120,
        )  # fmt: skip
        result.update(
            summarize(args, result["subscribed"], reports=reports, w0=w0, w1=w1, errors=errors)
        )
        cpu = meter.pct(a, b)
        result.update(
            server_cpu_pct=cpu.get("server"),
            client_cpu_pct=cpu.get("client"),
            redis_cpu_pct=cpu.get("redis"),
            machine_cpu_pct=cpu.get("machine"),
            other_cpu_pct=cpu.get("other"),
        )
        result["dropped"] = result.pop("dropped")
        lat_ms = result["lateness_ms"]
        result["checks"] = {
            "joins_5000_per_s": (result["joins_per_s"] or 0) >= 5000,
            "every_user_within_slack": result["users_late"] == 0 and result["gaps"] > 0,
            "lateness_p99_under_500ms": lat_ms["p99"] is not None and lat_ms["p99"] < 500,
        }
    except BenchError as exc:
        errors.add(str(exc))
        log.error("%s: %s", engine, exc)
    except Exception as exc:
        errors.add(f"internal: {describe(exc)}")
        log.exception("%s: benchmark failed", engine)
    finally:
        stop_workers(workers, timeout=10)
        if child is not None:
            code = result["server_exit_code"] = child.stop()
            if code not in (0, -15):
                errors.add(f"server exit code {code} after SIGTERM (-9: killed after 12 s)")
            result["server_log"] = log_summary(child.log_path, 5)
        if redis is not None:
            redis.stop()
    result["errors"] = errors.as_list()
    return result


def summarize(
    args: argparse.Namespace,
    subscribed: int,
    *,
    reports: Sequence[dict[str, Any]],
    w0: float,
    w1: float,
    errors: Errors,
) -> dict[str, Any]:
    """The measure window's figures from the workers' reports (see the module docstring)."""
    gaps = [g for r in reports for g in r["gaps"]]
    lateness = [max(0.0, g - args.interval) for g in gaps]
    admissions = [(int(r_), float(t_)) for r in reports for r_, t_ in r["admissions"]]
    adm_lat, inversions = admission_latency(admissions, args.rate)
    waiting_at_start = max(0, subscribed - 1)
    expected = min(waiting_at_start, int(max(args.rate, 1.0) + args.rate * (w1 - w0)))
    dropped = sum(r["dropped"] for r in reports)
    if dropped:
        drop_error = next((r["drop_error"] for r in reports if r["drop_error"]), None)
        errors.add(f"{dropped} sessions dropped: {drop_error}")
    bad = sum(r["bad_messages"] for r in reports)
    if bad:
        errors.add(f"{bad} position messages were not JSON")
    return {
        "window_s": round(w1 - w0, 3),
        "window_monotonic": [round(w0, 3), round(w1, 3)],  # to line up with server-side logs
        "position_updates": sum(r["updates"] for r in reports),
        "waiting_users": sum(r["waiting_users"] for r in reports),
        "gaps": len(gaps),
        "gap_ms": ms_summary(gaps),
        "lateness_ms": ms_summary(lateness),
        "users_late": sum(r["users_late"] for r in reports),
        "late_gaps_per_s": [
            sum(col) for col in zip(*(r["late_per_s"] for r in reports), strict=True)
        ],
        "users_silent": sum(r["users_silent"] for r in reports),
        "admitted": len(admissions),
        "admitted_expected": expected,
        "admission_latency_ms": ms_summary(adm_lat),
        "admission_order_inversions": inversions,
        "dropped": dropped,
    }


def phase_timeout(args: argparse.Namespace) -> float:
    return float(args.users / 100 + 60)


def bench_budget(args: argparse.Namespace) -> float:
    extra = float(args.startup_timeout + args.settle + args.duration)
    return 2 * phase_timeout(args) + extra + 200


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Waiting-room benchmark (one JSON object on stdout). With --scenario sellout "
        "it runs the sell-out scenario instead (bench/sellout.py; --scenario sellout --help "
        "lists its flags).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--users", type=int, default=10000)
    p.add_argument("--rate", type=float, default=50.0, help="admissions per second")
    p.add_argument("--cap", type=int, default=1_000_000, help="max_active_shoppers once measuring")
    p.add_argument("--interval", type=float, default=2.0, help="--position-interval-s (seconds)")
    p.add_argument("--duration", type=float, default=20.0, help="measure window (seconds)")
    p.add_argument("--engine", choices=(*ENGINES, "both"), default="both")
    p.add_argument("--join-concurrency", type=int, default=256, help="keep-alive connections")
    p.add_argument("--connect-concurrency", type=int, default=256, help="WS handshakes in flight")
    p.add_argument("--client-procs", type=int, default=2, help="client worker processes")
    p.add_argument("--http-client", choices=("raw", "aiohttp"), default="raw")
    p.add_argument("--late-slack", type=float, default=0.5, help="users_late: gap > interval+this")
    p.add_argument("--settle", type=float, default=1.0, help="quiet seconds before measuring")
    p.add_argument("--request-timeout", type=float, default=30.0)
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--startup-timeout", type=float, default=60.0)
    p.add_argument(
        "--redis-db", type=int, default=0, help="database index in the private redis-server"
    )
    p.add_argument("--secret", default=BENCH_SECRET)
    p.add_argument("--python", default=DEFAULT_PYTHON)
    p.add_argument(
        "--server-cmd-extra",
        default="",
        help='extra flags for `server serve`; write --server-cmd-extra="--flag value"',
    )
    p.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    args = p.parse_args(argv)
    if args.users < 2 or args.rate <= 0 or args.interval <= 0 or args.duration <= 0:
        p.error("--users must be at least 2; --rate, --interval, --duration positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if "--scenario" in given or any(a.startswith("--scenario=") for a in given):
        from bench import sellout  # noqa: PLC0415  (the sell-out scenario's own flags)

        return sellout.main(given)
    args = parse_args(argv)
    setup_logging(args.quiet)
    raise_nofile()
    engines = list(ENGINES) if args.engine == "both" else [args.engine]
    start_watchdog(len(engines) * bench_budget(args))
    sigterm_interrupts()
    out: dict[str, Any] = {
        "users": args.users,
        "rate": args.rate,
        "interval_s": args.interval,
        "duration_s": args.duration,
        "cap": args.cap,
        "client_procs": args.client_procs,
        "join_concurrency": args.join_concurrency,
        "http_client": args.http_client,
        "engines": {},
    }
    try:
        for engine in engines:
            with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
                out["engines"][engine] = res = bench_engine(args, engine, Path(tmp))
            log.info("%s: %s", engine, json.dumps(res))
    except KeyboardInterrupt as exc:
        kill_everything()
        out["error"] = f"interrupted ({exc})"
        print_json(out)
        return 130
    print_json(out)
    return 0 if all("lateness_ms" in r for r in out["engines"].values()) else 1
