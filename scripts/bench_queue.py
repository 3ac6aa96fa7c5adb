#!/usr/bin/env python3
"""Benchmark the waiting room: N users join one event over REST, then watch their positions.

Usage::

    python scripts/bench_queue.py --users 1000 --duration 10 --engine both
    python scripts/bench_queue.py --users 10000 --rate 50 --interval 2 --duration 20 --engine both

Prints ONE JSON object on stdout; progress goes to stderr (``--quiet``: warnings only). Only
127.0.0.1 is ever contacted. Targets (2-core machine): joins >= 5,000/s with the Redis engine;
every waiting user updated at least every ``--interval`` s, p99 lateness < 500 ms, at 10,000 users.

Method (per engine, each on a fresh server)
-------------------------------------------
The script starts ``<python> -m server serve`` on a free port with a throw-away SQLite database,
``--position-interval-s --interval``, REST and STOMP rate limits out of the way and, for the Redis
engine, ``--redis-url redis://127.0.0.1:6379/<db>`` with an empty database index (``--redis-db``,
default: the highest empty one of 1..15) that is FLUSHDB'd before and after. It creates one event
(on sale, waiting room on, ``admission_rate --rate``) with ``max_active_shoppers`` 1, so the first
joiner is admitted and then the queue stands still: every later user's position stays
``seq - 1``, which is its rank in the admission order to come. Users are split over
``--client-procs`` worker processes (raw asyncio with uvloop; the WebSocket/STOMP client is
``scripts/bench_fanout.py``'s), each user a JWT minted with ``--secret``.

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
import logging
import math
import multiprocessing as mp
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

# Reused from bench_fanout: the WebSocket/STOMP Session (subclassed below), Endpoint, stomp_frame,
# subscribe, Progress, the /proc CPU and RSS readers, ChildServer and the server helpers, uvloop,
# open-files limit, pipe and watchdog helpers. Copied: open_session (as open_position_session),
# whose Session class is not a parameter.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fanout as bf

log = logging.getLogger("bench_queue")

POSITION_DESTINATION = "/user/queue/position"
ENGINES = ("in-process", "redis")
ADMISSION_TICK_S = 0.1  # server/queue_stream.py
WAITING, ADMITTED, OTHER = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# Small helpers.
# ---------------------------------------------------------------------------------------------


def percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    """Nearest-rank percentiles of ``values`` (any order)."""
    if not values:
        return [None for _ in qs]
    ordered = sorted(values)
    n = len(ordered)
    return [ordered[min(n - 1, max(0, math.ceil(q * n) - 1))] for q in qs]


def ms_summary(
    seconds: Sequence[float], names: Sequence[str] = ("p50", "p99", "max")
) -> dict[str, float | None]:
    qs = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "max": 1.0}
    values = percentiles(seconds, [qs[n] for n in names])
    return {
        n: (None if v is None else round(v * 1000, 1)) for n, v in zip(names, values, strict=True)
    }


def add_error(errors: Counter[str], what: str) -> None:
    errors[what[:300]] += 1


def error_list(errors: Counter[str]) -> list[str]:
    return [f"{text}: {count} x" if count > 1 else text for text, count in errors.most_common(20)]


# ---------------------------------------------------------------------------------------------
# A minimal keep-alive HTTP/1.1 client (one request in flight per connection).
# ---------------------------------------------------------------------------------------------


class HttpError(Exception):
    pass


class HttpConn(asyncio.Protocol):
    """Answers need ``Content-Length`` (aiohttp's ``web.Response`` with a body always has it)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection lost: {exc!r}" if exc else "closed"))

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = buf[:end].lower()
        i = head.find(b"\r\ncontent-length:")
        if i < 0:
            waiter.set_exception(HttpError("answer without content-length"))
            return
        j = head.find(b"\r\n", i + 2)
        try:
            status = int(head[9:12])
            length = int(head[i + 17 : j if j >= 0 else end])
        except ValueError:
            waiter.set_exception(HttpError(f"malformed answer: {buf[:80]!r}"))
            return
        total = end + 4 + length
        if len(buf) < total:
            return
        self.buf = buf[total:]
        waiter.set_result((status, buf[end + 4 : total], b"\r\nconnection: close" not in head))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        if self.closed or self.transport is None:
            raise HttpError("connection closed")
        self.waiter = self._loop.create_future()
        self.transport.write(raw)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# ---------------------------------------------------------------------------------------------
# Position subscriber: bench_fanout's WebSocket/STOMP session, recording position messages.
# ---------------------------------------------------------------------------------------------


class PositionSession(bf.Session):
    def __init__(self, host_header: str, path: str, event_id: int) -> None:
        super().__init__(host_header, path, None)
        self.event_id = event_id
        self.times: list[float] = []
        self.states: list[int] = []
        self.positions: list[int] = []
        self.bad = 0

    def _on_message(self, buf: bytes, body: int, end: int) -> None:
        now = time.monotonic()
        try:
            data = json.loads(buf[body:end])
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


async def open_position_session(
    ep: bf.Endpoint, token: str, event_id: int, progress: bf.Progress
) -> PositionSession:
    """bench_fanout.open_session with a PositionSession (its factory is not a parameter)."""
    loop = asyncio.get_running_loop()
    _, session = await loop.create_connection(
        lambda: PositionSession(ep.host_header, ep.path, event_id), ep.host, ep.port
    )
    try:
        progress.stage = "WebSocket upgrade"
        await session.handshake
        progress.stage = "STOMP CONNECT"
        connected = session.expect("CONNECTED")
        session.send_frame(bf.stomp_frame("CONNECT", ep.connect_headers(None, token)))
        await connected
    except BaseException:
        if session.transport is not None:
            session.transport.abort()
        raise
    return session


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


class Worker:
    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.joined = [False] * len(cfg.users)
        self.sessions: list[PositionSession] = []

    # -- 1. join -------------------------------------------------------------------------------

    async def join(self) -> dict[str, Any]:
        cfg = self.cfg
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        pending = iter(range(len(cfg.users)))
        path = f"/api/events/{cfg.event_id}/queue"
        lanes = max(1, min(cfg.join_concurrency, len(cfg.users)))
        t_start = time.monotonic()
        if cfg.http_client == "aiohttp":
            await self._join_aiohttp(pending, path, lanes, latencies, errors)
        else:
            await self._join_raw(pending, path, lanes, latencies, errors)
        t_end = time.monotonic()
        return {
            "ok": sum(self.joined),
            "latencies": latencies,
            "t_start": t_start,
            "t_end": t_end,
            "errors": dict(errors),
        }

    async def _join_raw(
        self, pending: Any, path: str, lanes: int, latencies: list[float], errors: Counter[str]
    ) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        prefix = f"POST {path} HTTP/1.1\r\nHost: {cfg.host}:{cfg.port}\r\nAuthorization: Bearer "
        suffix = "\r\nContent-Length: 0\r\n\r\n"

        async def lane() -> None:
            conn: HttpConn | None = None
            for i in pending:
                raw = (prefix + cfg.users[i][1] + suffix).encode()
                for attempt in range(2):
                    try:
                        if conn is None or conn.closed:
                            async with asyncio.timeout(cfg.request_timeout):
                                _, conn = await loop.create_connection(HttpConn, cfg.host, cfg.port)
                        t = time.monotonic()
                        async with asyncio.timeout(cfg.request_timeout):
                            status, body, keep = await conn.request(raw)
                        latencies.append(time.monotonic() - t)
                        if status == 200:
                            self.joined[i] = True
                        else:
                            add_error(
                                errors,
                                f"join HTTP {status}: {body[:160].decode('utf-8', 'replace')}",
                            )
                        if not keep:
                            conn.close()
                            conn = None
                        break
                    except (OSError, TimeoutError, HttpError) as exc:
                        add_error(errors, f"join (attempt {attempt + 1}): {bf.describe(exc)}")
                        if conn is not None:
                            conn.close()
                        conn = None
            if conn is not None:
                conn.close()

        await asyncio.gather(*(lane() for _ in range(lanes)))

    async def _join_aiohttp(
        self, pending: Any, path: str, lanes: int, latencies: list[float], errors: Counter[str]
    ) -> None:
        import aiohttp  # noqa: PLC0415  (only for --http-client aiohttp)

        cfg = self.cfg
        url = f"http://{cfg.host}:{cfg.port}{path}"
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
                            if response.status == 200:
                                self.joined[i] = True
                            else:
                                add_error(errors, f"join HTTP {response.status}: {body[:160]!r}")
                            break
                        except (OSError, TimeoutError, aiohttp.ClientError) as exc:
                            add_error(errors, f"join (attempt {attempt + 1}): {bf.describe(exc)}")

            await asyncio.gather(*(lane() for _ in range(lanes)))

    # -- 2. subscribe --------------------------------------------------------------------------

    async def subscribe(self) -> dict[str, Any]:
        cfg = self.cfg
        ep = bf.Endpoint(cfg.host, cfg.port, "/ws", POSITION_DESTINATION, None, None, None)
        errors: Counter[str] = Counter()
        sem = asyncio.Semaphore(max(1, cfg.connect_concurrency))
        t_start = time.monotonic()

        async def one(token: str) -> None:
            progress = bf.Progress()
            async with sem:
                try:
                    session = await asyncio.wait_for(
                        open_position_session(ep, token, cfg.event_id, progress),
                        cfg.connect_timeout,
                    )
                    try:
                        await asyncio.wait_for(
                            bf.subscribe(session, ep, progress), cfg.connect_timeout
                        )
                    except BaseException:
                        session.close()
                        raise
                    self.sessions.append(session)
                except Exception as exc:
                    add_error(errors, f"subscribe, {progress.stage}: {bf.describe(exc)}")

        tokens = [tok for (_, tok), ok in zip(cfg.users, self.joined, strict=True) if ok]
        await asyncio.gather(*(one(tok) for tok in tokens))
        return {
            "subscribed": len(self.sessions),
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
        for s in self.sessions:
            bad += s.bad
            if s.closed:
                dropped += 1
                drop_error = drop_error or s.error
            times, states, positions = s.times, s.states, s.positions
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
        for s in self.sessions:
            s.close()


async def worker_main(conn: Connection, cfg: WorkerConfig) -> None:
    worker = Worker(cfg)
    conn.send({"type": "ready", "pid": os.getpid()})
    try:
        while True:
            msg = await bf.recv_msg(conn, cfg.budget_s)
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
        log.warning("worker stopping: %s", bf.describe(exc))
        with contextlib.suppress(OSError, ValueError):
            conn.send({"type": "error", "error": bf.describe(exc)})
    finally:
        worker.close()
        await asyncio.sleep(0.2)


def worker_entry(conn: Connection, cfg: WorkerConfig) -> None:
    logging.basicConfig(
        level=logging.INFO if cfg.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s worker[%(process)d] %(message)s",
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    bf.raise_nofile()
    bf.install_uvloop()
    with contextlib.suppress(Exception):
        asyncio.run(asyncio.wait_for(worker_main(conn, cfg), cfg.budget_s))


# ---------------------------------------------------------------------------------------------
# Main process: server, event, phases, measurements.
# ---------------------------------------------------------------------------------------------


class BenchError(Exception):
    pass


def http_json(
    port: int, method: str, path: str, token: str, body: object = None, *, timeout: float = 15.0
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=data,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw or b"null")
        except ValueError:
            return error.code, raw[:300].decode("utf-8", "replace")


def iso_in(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def mint_tokens(secret: str, names: Sequence[str]) -> tuple[list[str], str]:
    sys.path.insert(0, str(bf.REPO_ROOT))
    from server.auth import TokenAuthority  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about the short fixed bench secret
        authority = TokenAuthority(secret)
        return [authority.issue(n, "user", 7200) for n in names], authority.issue(
            "bench-admin", "admin", 7200
        )


def redis_client(db: int) -> Any:
    import redis  # noqa: PLC0415  (a dependency of the project; only for the Redis engine)

    return redis.Redis(host="127.0.0.1", port=6379, db=db, socket_timeout=5)


def pick_redis_db(wanted: int | None) -> int:
    """An empty database index (so nobody else's keys are flushed), FLUSHDB'd."""
    candidates = [wanted] if wanted is not None else list(range(15, 0, -1))
    for db in candidates:
        client = redis_client(db)
        try:
            if wanted is not None or client.dbsize() == 0:
                client.flushdb()
                return db
        finally:
            client.close()
    raise BenchError("no empty Redis database index in 1..15; pass --redis-db N")


def redis_pid() -> int | None:
    try:
        client = redis_client(0)
        pid = int(client.info("server")["process_id"])
        client.close()
    except Exception:
        return None
    return pid if Path(f"/proc/{pid}/stat").exists() else None


def start_server(
    args: argparse.Namespace, tmp: Path, redis_url: str | None
) -> tuple[bf.ChildServer, int]:
    """Start ``server serve`` and wait for ``/readyz``; returns the child and its HTTP port."""
    port = bf.free_port()
    database_url = f"sqlite+aiosqlite:///{tmp}/q.db"
    if redis_url:  # cluster mode does not migrate on start (only the embedded mode does)
        try:
            done = subprocess.run(
                [args.python, "-m", "server", "migrate", "--database-url", database_url],
                cwd=bf.REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise BenchError("server migrate: timed out") from exc
        if done.returncode != 0:
            raise BenchError(f"server migrate failed: {(done.stderr or done.stdout)[-500:]}")
    cmd = [
        args.python, "-m", "server", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--stomp-port", "0",
        "--secret", args.secret,
        "--database-url", database_url,
        "--max-connections", str(args.users + 500),
        "--rest-rate-per-ip", "1e9", "--rest-rate-per-user", "1e9", "--max-send-rate", "1e9",
        "--position-interval-s", str(args.interval),
        "--log-level", "warning",
        *(["--redis-url", redis_url] if redis_url else []),
        *shlex.split(args.server_cmd_extra),
    ]  # fmt: skip
    log.info("starting: %s", shlex.join(cmd))
    child = bf.ChildServer(cmd, tmp / "server.log")
    bf.ACTIVE_CHILDREN.append(child)
    deadline = time.monotonic() + args.startup_timeout
    while bf.http_status("127.0.0.1", port, "/readyz") != 200:
        if child.proc.poll() is not None:
            raise BenchError(
                f"server exited with {child.proc.returncode}: {bf.tail(child.log_path, 15)}"
            )
        if time.monotonic() > deadline:
            raise BenchError(f"/readyz not 200 within {args.startup_timeout} s")
        time.sleep(0.2)
    return child, port


def stop_server(child: bf.ChildServer) -> int | None:
    code = child.stop()
    if child in bf.ACTIVE_CHILDREN:
        bf.ACTIVE_CHILDREN.remove(child)
    return code


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
class Snapshot:
    t: float
    server: float | None
    clients: float
    redis: float | None
    machine: tuple[float, float]


class Meter:
    """CPU counters of the server, the client processes and redis-server."""

    def __init__(self, server_pid: int, client_pids: list[int], redis: int | None) -> None:
        self.server_pid = server_pid
        self.client_pids = client_pids
        self.redis_pid = redis

    def take(self) -> Snapshot:
        return Snapshot(
            time.monotonic(),
            bf.cpu_us(self.server_pid),
            sum(bf.sum_cpu(self.client_pids).values()),
            bf.cpu_us(self.redis_pid) if self.redis_pid else None,
            bf.machine_cpu(),
        )

    @staticmethod
    def pct(a: Snapshot, b: Snapshot) -> dict[str, float | None]:
        span = (b.t - a.t) * 1e6
        if span <= 0:
            return {}

        def one(x: float | None, y: float | None) -> float | None:
            return None if x is None or y is None else round(100 * (y - x) / span, 1)

        out = {
            "server": one(a.server, b.server),
            "client": one(a.clients, b.clients),
            "redis": one(a.redis, b.redis),
        }
        busy, total = b.machine[0] - a.machine[0], b.machine[1] - a.machine[1]
        cores = os.cpu_count() or 1
        if total > 0:
            machine = 100 * busy / total * cores  # 100 = one core, like the others
            out["machine"] = round(machine, 1)
            out["other"] = round(machine - sum(v or 0.0 for v in list(out.values())[:3]), 1)
        return out


def exchange(
    workers: list[tuple[Any, Connection]], msg: dict[str, Any], timeout: float
) -> list[Any]:
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


def per_join(before: float | None, after: float | None, joined: int) -> float | None:
    if before is None or after is None or not joined:
        return None
    return round((after - before) / joined, 1)


def merge_errors(errors: Counter[str], parts: Sequence[dict[str, int]]) -> None:
    for part in parts:
        for text, count in part.items():
            errors[text] += count


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


def bench_engine(args: argparse.Namespace, engine: str, tmp: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"engine": engine}
    errors: Counter[str] = Counter()
    redis_db = pick_redis_db(args.redis_db) if engine == "redis" else None
    redis_url = f"redis://127.0.0.1:6379/{redis_db}" if redis_db is not None else None
    rpid = redis_pid() if engine == "redis" else None
    result["redis_db"] = redis_db
    child: bf.ChildServer | None = None
    workers: list[tuple[Any, Connection]] = []
    try:
        child, port = start_server(args, tmp, redis_url)
        result["server_pid"] = child.proc.pid
        names = [f"qb-{i:06d}" for i in range(args.users)]
        tokens, admin = mint_tokens(args.secret, names)
        event_id = create_event(args, port, admin)
        users = list(zip(names, tokens, strict=True))

        procs = max(1, min(args.client_procs, args.users))
        budget = bench_budget(args)
        ctx = mp.get_context("spawn")
        for i in range(procs):
            parent_end, child_end = ctx.Pipe()
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
                budget_s=budget,
                verbose=not args.quiet,
            )
            proc = ctx.Process(target=worker_entry, args=(child_end, cfg), daemon=True)
            bf.ACTIVE_WORKERS.append(proc)
            proc.start()
            child_end.close()
            workers.append((proc, parent_end))
        ready = []
        for proc, conn in workers:
            if not conn.poll(60):
                raise BenchError(f"worker {proc.pid} did not start")
            ready.append(conn.recv()["pid"])
        meter = Meter(child.proc.pid, [os.getpid(), *ready], rpid)

        # 1. join
        log.info("%s: event %d; %d users joining", engine, event_id, args.users)
        a = meter.take()
        joins = exchange(workers, {"type": "join"}, phase_timeout(args) + 10)
        b = meter.take()
        merge_errors(errors, [j["errors"] for j in joins])
        joined = sum(j["ok"] for j in joins)
        span = max(j["t_end"] for j in joins) - min(j["t_start"] for j in joins)
        latencies = [x for j in joins for x in j["latencies"]]
        cpu = Meter.pct(a, b)
        result.update(
            joined=joined,
            joins_per_s=round(joined / span, 1) if span > 0 else None,
            join_s=round(span, 3),
            join_latency_ms=ms_summary(latencies),
            join_server_cpu_pct=cpu.get("server"),
            join_client_cpu_pct=cpu.get("client"),
            join_redis_cpu_pct=cpu.get("redis"),
            join_machine_cpu_pct=cpu.get("machine"),
            join_server_cpu_us_per_join=per_join(a.server, b.server, joined),
            join_client_cpu_us_per_join=per_join(a.clients, b.clients, joined),
        )
        log.info("%s: %d/%d joined in %.2f s (%s/s)", engine, joined, args.users, span,
                 result["joins_per_s"])  # fmt: skip

        # 2. subscribe (after a few admission ticks, so the first joiner is surely admitted and
        # every later position is the user's rank in the admission order to come)
        time.sleep(3 * ADMISSION_TICK_S)
        subs = exchange(workers, {"type": "subscribe"}, phase_timeout(args) + 10)
        merge_errors(errors, [s["errors"] for s in subs])
        result["subscribed"] = sum(s["subscribed"] for s in subs)
        result["subscribe_s"] = round(max(s["seconds"] for s in subs), 2)
        log.info("%s: %d subscribed in %.1f s", engine, result["subscribed"], result["subscribe_s"])
        time.sleep(args.settle)

        # 3. measure
        a = meter.take()
        w0 = a.t
        status, body = http_json(port, "PATCH", f"/api/admin/events/{event_id}", admin,
                                 {"max_active_shoppers": args.cap})  # fmt: skip
        if status != 200:
            raise BenchError(f"PATCH max_active_shoppers: HTTP {status} {body}")
        time.sleep(max(0.0, w0 + args.duration - time.monotonic()))
        b = meter.take()
        w1 = b.t
        result["server_rss_mib"] = bf.mib(bf.rss_kib(child.proc.pid))
        reports = exchange(
            workers,
            {"type": "report", "w0": w0, "w1": w1, "interval": args.interval,
             "slack": args.late_slack},
            120,
        )  # fmt: skip
        gaps = [g for r in reports for g in r["gaps"]]
        lateness = [max(0.0, g - args.interval) for g in gaps]
        admissions = [(int(r_), float(t_)) for r in reports for r_, t_ in r["admissions"]]
        adm_lat, inversions = admission_latency(admissions, args.rate)
        waiting_at_start = max(0, result["subscribed"] - 1)
        expected = min(waiting_at_start, int(max(args.rate, 1.0) + args.rate * (w1 - w0)))
        cpu = Meter.pct(a, b)
        dropped = sum(r["dropped"] for r in reports)
        if dropped:
            drop_error = next((r["drop_error"] for r in reports if r["drop_error"]), None)
            add_error(errors, f"{dropped} sessions dropped: {drop_error}")
        bad = sum(r["bad_messages"] for r in reports)
        if bad:
            add_error(errors, f"{bad} position messages were not JSON")
        lat_ms = ms_summary(lateness)
        result.update(
            window_s=round(w1 - w0, 3),
            window_monotonic=[round(w0, 3), round(w1, 3)],  # to line up with server-side logs
            position_updates=sum(r["updates"] for r in reports),
            waiting_users=sum(r["waiting_users"] for r in reports),
            gaps=len(gaps),
            gap_ms=ms_summary(gaps),
            lateness_ms=lat_ms,
            users_late=sum(r["users_late"] for r in reports),
            late_gaps_per_s=[
                sum(col) for col in zip(*(r["late_per_s"] for r in reports), strict=True)
            ],
            users_silent=sum(r["users_silent"] for r in reports),
            admitted=len(admissions),
            admitted_expected=expected,
            admission_latency_ms=ms_summary(adm_lat),
            admission_order_inversions=inversions,
            server_cpu_pct=cpu.get("server"),
            client_cpu_pct=cpu.get("client"),
            redis_cpu_pct=cpu.get("redis"),
            machine_cpu_pct=cpu.get("machine"),
            other_cpu_pct=cpu.get("other"),
            dropped=dropped,
        )
        result["checks"] = {
            "joins_5000_per_s": (result["joins_per_s"] or 0) >= 5000,
            "every_user_within_slack": result["users_late"] == 0 and result["gaps"] > 0,
            "lateness_p99_under_500ms": lat_ms["p99"] is not None and lat_ms["p99"] < 500,
        }
    except BenchError as exc:
        add_error(errors, str(exc))
        log.error("%s: %s", engine, exc)
    except Exception as exc:
        add_error(errors, f"internal: {bf.describe(exc)}")
        log.exception("%s: benchmark failed", engine)
    finally:
        for _, conn in workers:
            with contextlib.suppress(OSError, ValueError):
                conn.send({"type": "close"})
        for proc, conn in workers:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            conn.close()
            if proc in bf.ACTIVE_WORKERS:
                bf.ACTIVE_WORKERS.remove(proc)
        if child is not None:
            code = result["server_exit_code"] = stop_server(child)
            if code not in (0, -signal.SIGTERM):
                add_error(errors, f"server exit code {code} after SIGTERM (-9: killed after 12 s)")
            result["server_log"] = bf.server_log_summary(child.log_path, 5)
        if redis_db is not None:
            with contextlib.suppress(Exception):
                client = redis_client(redis_db)
                client.flushdb()
                client.close()
    result["errors"] = error_list(errors)
    return result


def phase_timeout(args: argparse.Namespace) -> float:
    return float(args.users / 100 + 60)


def bench_budget(args: argparse.Namespace) -> float:
    extra = float(args.startup_timeout + args.settle + args.duration)
    return 2 * phase_timeout(args) + extra + 200


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Waiting-room benchmark (one JSON object on stdout).",
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
    p.add_argument("--redis-db", type=int, help="Redis database index (default: an empty one)")
    p.add_argument("--secret", default=bf.BENCH_SECRET)
    p.add_argument("--python", default=str(bf.REPO_ROOT / ".venv" / "bin" / "python"))
    p.add_argument(
        "--server-cmd-extra",
        default="",
        help='extra flags for `server serve`; write --server-cmd-extra="--flag value"',
    )
    p.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    args = p.parse_args(argv)
    if args.users < 2 or args.rate <= 0 or args.interval <= 0 or args.duration <= 0:
        p.error("--users must be at least 2; --rate, --interval, --duration positive")
    if not Path(args.python).exists():
        args.python = sys.executable
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(message)s",
    )
    bf.raise_nofile()
    engines = list(ENGINES) if args.engine == "both" else [args.engine]
    bf.start_watchdog(len(engines) * bench_budget(args))

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
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
        for child in list(bf.ACTIVE_CHILDREN):
            child.stop()
        for proc in list(bf.ACTIVE_WORKERS):
            proc.kill()
        out["error"] = f"interrupted ({exc})"
        print(json.dumps(out, indent=2))
        return 130
    print(json.dumps(out, indent=2))
    return 0 if all("lateness_ms" in r for r in out["engines"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
