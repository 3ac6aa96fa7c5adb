"""Benchmark STOMP fan-out over WebSocket: one publisher, N subscribers on one topic.

Usage::

    python scripts/bench_fanout.py --subscribers 1000 --rate 10 --duration 10
    python scripts/bench_fanout.py --target rabbitmq --subscribers 500 --rate 10 --duration 5
    python scripts/bench_fanout.py --compare --subscribers 800 --rate 10 --duration 10
    python scripts/bench_fanout.py --nodes 2 --compare-single --subscribers 5000 --client-procs 2

Prints ONE JSON object on stdout (``--compare``: ``{"concert_hub": {...}, "rabbitmq": {...}}``;
``--nodes 2``: ``{...}``; ``--nodes 2 --compare-single``: ``{"single_node": {...},
"two_nodes": {...}, "p99_ratio": x, "cross_node_p99_ratio": y, "target_met": bool}``);
progress and diagnostics go to stderr (``--json-only`` keeps stderr to warnings and errors).
Only 127.0.0.1 is ever contacted.

Targets
-------
``concert-hub`` (default) starts ``<python> -m server serve`` as a child process on a free port
with a throw-away SQLite database, waits for ``GET /healthz`` 200, benchmarks
``/topic/announcements`` (anonymous subscribers may read it; the publisher authenticates with a
``publisher`` JWT as CONNECT ``passcode``) and stops the child at the end (SIGTERM, then
SIGKILL). ``--url ws://127.0.0.1:PORT/ws`` targets a server that is already running instead;
server metrics then need ``--server-pid``.

``rabbitmq`` runs ``rabbitmq-plugins enable rabbitmq_web_stomp`` (idempotent), waits until
``ws://127.0.0.1:15674/ws`` completes a WebSocket handshake, logs in as guest/guest and uses
``/topic/bench`` (the ``amq.topic`` exchange). The server process is the ``beam.smp`` VM.

Cluster mode (``--nodes N``, N >= 2)
----------------------------------
Starts a private ``redis-server`` on a free port (``--bind 127.0.0.1 --save "" --appendonly no``,
working directory in the temporary directory), runs ``server migrate`` for each node's own
SQLite file (with ``--redis-url`` set the server does not migrate by itself), then starts N nodes
(``--redis-url redis://127.0.0.1:P/0 --node-id bench-<i>``) and waits for each ``/healthz``. The
subscribers are split evenly across the nodes' ``/ws`` URLs (every node gets at least one worker
process, so ``--client-procs`` is raised to N if lower; worker i serves node i mod N). The
publisher has its own connection to node 1 (``bench-1``): subscribers on the other nodes only get
messages through Redis, so their latency is the cross-node figure. Everything is stopped at the
end (nodes first, then Redis). ``--compare-single`` first runs one node (no Redis) with the same
subscribers, rate and duration. ``p99_ratio`` = cluster p99 / single-node p99 over all
subscribers; ``cross_node_p99_ratio`` uses the worst p99 among the nodes without the publisher;
``target_met`` (issue 5) = both ratios <= 2, zero loss, every subscriber connected.

Method
------
1. The publisher connects first (so it always gets a connection slot, even when the broker
   runs out of file descriptors), then the server's RSS is read: ``baseline``. Use a fresh
   server process for memory figures: a process that already served connections keeps its
   freed memory, and the difference then means nothing.
2. Subscribers connect at ``--connect-rate`` per second with at most ``--connect-concurrency``
   handshakes in flight, spread over ``--client-procs`` worker processes (the publisher runs in
   the main process). Each does the WebSocket upgrade (subprotocol ``v12.stomp``), CONNECT
   (``accept-version:1.2``, ``heart-beat:0,0``) and SUBSCRIBE ``id:sub-0`` with a ``receipt``; a
   subscriber counts as connected once its RECEIPT arrived, so every subscription is in place
   before publishing starts. Every step has a timeout (``--connect-timeout``). After
   ``--max-connect-failures`` failed attempts no new ones are started; the run continues with the
   subscribers that connected and the first error (with the step that failed) goes to ``error``.
   For RabbitMQ an fd guard opens at most (beam.smp soft open-files limit - fds in use - 64)
   subscribers: past that RabbitMQ 3.10 hits EMFILE, its memory monitors crash and it stops being
   able to create subscription queues until repaired (``scripts/rabbitmq_webstomp.sh repair``).
   ``--no-fd-guard`` disables it.
3. After one settling second the server's RSS is read again: ``idle``.
4. The publisher sends ``--rate`` messages per second for ``--duration`` seconds, each body the
   JSON ``{"seq":i,"t":time_ns,"pad":"xx…"}`` padded to ``--body-bytes``; the last SEND asks for a
   receipt (waited for at most ``--receipt-timeout`` s). Meanwhile server, client and whole-machine
   CPU counters are sampled every 50 ms.
5. Subscribers count MESSAGE frames and record ``receive time - t`` in a log-bucketed histogram
   (about 1.6 % resolution). They stop waiting when every live subscriber has every message, or
   ``--grace`` (2 s) after the publisher's receipt (or after the end of publishing if the receipt
   did not come). The CPU window runs from the first publish to the last delivery (or the end of
   publishing if that is later), so the waiting above does not dilute the percentages.

The client is deliberately lean because it shares the machine with the server: the project's
own client (``concert_hub_client``: sans-I/O STOMP and RFC 6455 cores on a raw asyncio Protocol,
uvloop when importable) with one message handler per subscriber, called from ``data_received``;
a MESSAGE's headers are never decoded, its body is searched for ``seq`` and ``t``. Latency
therefore includes the time the client needs to read the same message on N sockets one after
the other; ``--client-procs 2`` halves that share.

Output fields
-------------
target, subscribers (requested), connected (subscribers whose SUBSCRIBE was acknowledged),
rate, duration_s, body_bytes, messages_sent, expected (= connected x messages_sent, which is
subscribers x messages_sent whenever every subscriber connected; subscribers that could not
connect are reported through ``connected`` and ``error``, not as message loss), delivered
(MESSAGE frames received), loss (= expected - delivered), loss_pct, deliveries_per_s (delivered /
time from the first publish to the last delivery), latency_ms {p50, p90, p99, max},
server_cpu_us_per_delivery and server_cpu_pct (utime+stime of the server process, all threads,
from /proc/PID/stat over the CPU window; 100 = one core), server_rss_mib_baseline,
server_rss_mib_idle (VmRSS), kib_per_connection (= (idle - baseline) / connected),
client_cpu_pct (all client processes over the same window; 100 = one core), error (null or text).

Extra detail: client_cpu_pct_max_proc (busiest client process; near 100 means the client was the
bottleneck), machine_cpu_pct (whole machine, 100 = every core busy; well above server + client
means something else was using the machine), client_procs, connect_s, publish_s, window_s (the
CPU window), subscribers_complete (received every message), dropped (subscribers whose connection
ended during the run; the first reason is in ``error``), out_of_order (MESSAGEs whose seq was not
above the previous one), server_pid; for a server started by this script also server_exit_code
and server_log (its output at --log-level warning: line count and the first lines).
other_cpu_pct: CPU used on the machine by processes this script does not measure (100 = one
core; the busy-machine check, e.g. a CI run next door).

Cluster runs: server_* figures are all nodes together (server_pid is the list of node pids,
kib_per_connection = summed RSS growth / connected); nodes (count); publisher (where it
connected); nodes_detail, one per node: node_id, url, pid, publisher_here, connected, expected,
delivered, loss, deliveries_per_s, latency_ms {p50, p99, max} of that node's subscribers,
cpu_us_per_delivery (that node's CPU / that node's deliveries), cpu_pct, rss_mib_baseline,
rss_mib_idle, rss_mib_end, subscribers_complete, dropped; redis {pid, cpu_pct,
cpu_us_per_delivery (per delivery on all nodes), cpu_us_per_message (per published message),
rss_mib}; server_exit_code and server_log per node id, redis_exit_code. /proc CPU counters tick
in 1/CLK_TCK (10 ms) steps, so small figures such as Redis's are coarse.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shlex
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import rabbitmq
from bench.cpu import CpuSample, CpuSampler, machine_pct, mib, other_pct, pct, per_pid_us, rss_kib
from bench.cpu import used_us as cpu_used
from bench.harness import (
    describe,
    install_uvloop,
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
from bench.servers import (
    BENCH_SECRET,
    DEFAULT_PYTHON,
    ChildProcess,
    SetupError,
    log_summary,
    migrate,
    mint_tokens,
    start_node,
    start_redis,
)
from bench.sessions import Endpoint, open_many, open_session
from bench.stats import HIST_SIZE, hist_ms, merge_hists
from concert_hub_client import Client, ClientError, Message

ALLOWED_HOSTS = {"127.0.0.1", "localhost"}
CONCERT_HUB_DESTINATION = "/topic/announcements"
_time_ns = time.time_ns


# ---------------------------------------------------------------------------------------------
# Subscribers: one handler per session, counting into the process's histogram.
# ---------------------------------------------------------------------------------------------


@dataclass
class SubStats:
    """Counters shared by all subscriber sessions of one process."""

    hist: list[int] = field(default_factory=lambda: [0] * HIST_SIZE)
    total: int = 0
    closed: int = 0  # sessions that ended
    first_ns: int = 0
    last_ns: int = 0


class Subscriber:
    """What one subscriber session received: a count, the last ``seq``, reorderings."""

    __slots__ = ("count", "last_seq", "out_of_order", "session", "stats")

    def __init__(self, stats: SubStats) -> None:
        self.stats = stats
        self.count = 0
        self.last_seq = -1
        self.out_of_order = 0
        self.session: Client | None = None

    @property
    def closed(self) -> bool:
        return self.session is None or self.session.closed

    def on_close(self, _session: Client) -> None:
        self.stats.closed += 1

    def on_message(self, message: Message) -> None:
        now = _time_ns()
        # The body is {"seq":N,"t":T,"pad":"…"} (see publish); anything else is ignored.
        body = message.body
        j = body.find(b",", 7)
        m = body.find(b",", j + 5) if j >= 0 else -1
        if m < 0 or not body.startswith(b'{"seq":'):
            return
        try:
            seq = int(body[7:j])
            us = (now - int(body[j + 5 : m])) // 1000  # after ',"t":'
        except ValueError:
            return
        if seq <= self.last_seq:
            self.out_of_order += 1
        self.last_seq = seq
        self.count += 1
        stats = self.stats
        # stats.hist_index, inline: this runs once per delivery on every subscriber
        if us < 128:
            index = us if us > 0 else 0
        else:
            e = us.bit_length() - 7
            index = min((e << 7) + (us >> e), HIST_SIZE - 1)
        stats.hist[index] += 1
        stats.total += 1
        if not stats.first_ns:
            stats.first_ns = now
        stats.last_ns = now


# ---------------------------------------------------------------------------------------------
# Subscriber worker process.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerConfig:
    endpoint: Endpoint
    subscribers: int
    connect_rate: float
    concurrency: int
    connect_timeout: float
    max_failures: int
    budget_s: float
    verbose: bool


async def worker_main(conn: Connection, cfg: WorkerConfig) -> None:
    stats = SubStats()
    subs = [Subscriber(stats) for _ in range(cfg.subscribers)]

    def opener(sub: Subscriber) -> Callable[[], Any]:
        async def open_one() -> Client:
            sub.session = await open_session(
                cfg.endpoint, on_message=sub.on_message, timeout=cfg.connect_timeout
            )
            sub.session.on_close = sub.on_close
            return sub.session

        return open_one

    t0 = time.monotonic()
    opened = await open_many(
        [opener(sub) for sub in subs],
        rate=cfg.connect_rate,
        concurrency=cfg.concurrency,
        max_failures=cfg.max_failures,
        wait_s=cfg.connect_timeout * 2 + 5,
    )
    live = [sub for sub in subs if sub.session is not None]  # set once subscribed
    conn.send(
        {
            "type": "connected",
            "connected": len(live),
            "failures": opened.failures,
            "first_error": opened.first_error,
            "last_error": opened.last_error,
            "connect_s": time.monotonic() - t0,
        }
    )
    try:
        msg = await recv_msg(conn, cfg.budget_s)
        if msg.get("type") == "expect":
            per_session: int = msg["messages"]
            deadline: float = msg["deadline"]  # time.time() based
            while time.time() < deadline:
                open_now = len(live) - stats.closed
                if open_now <= 0:
                    break
                # cheap necessary condition first; the full scan only when it holds
                if stats.total >= per_session * open_now and all(
                    s.count >= per_session for s in live if not s.closed
                ):
                    break
                await asyncio.sleep(0.01)
            dropped = [s for s in live if s.closed]
            conn.send(
                {
                    "type": "result",
                    "delivered": stats.total,
                    "first_ns": stats.first_ns,
                    "last_ns": stats.last_ns,
                    "hist": {i: c for i, c in enumerate(stats.hist) if c},
                    "complete": sum(1 for s in live if s.count >= per_session),
                    "min_received": min((s.count for s in live), default=0),
                    "out_of_order": sum(s.out_of_order for s in live),
                    "dropped": len(dropped),
                    "drop_error": dropped[0].session.error
                    if dropped and dropped[0].session
                    else None,
                }
            )
            await recv_msg(conn, 30.0)  # "close"
    except (TimeoutError, EOFError, OSError):
        pass
    finally:
        for session in opened.sessions:
            session.close()
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# Targets: starting or locating the server.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One concert-hub node started by this script."""

    node_id: str
    endpoint: Endpoint
    child: ChildProcess

    @property
    def pid(self) -> int:
        return self.child.pid


@dataclass
class Target:
    name: str
    endpoint: Endpoint
    publisher_login: str | None
    publisher_passcode: str | None
    server_pid: int | None
    limit_hint: Callable[[], str | None] = lambda: None
    fd_headroom: Callable[[], int | None] = lambda: None
    nodes: list[Node] = field(default_factory=list)  # started by this script (one or more)
    redis: ChildProcess | None = None

    def cleanup(self) -> None:
        for node in reversed(self.nodes):  # nodes first, redis last
            node.child.stop()
        if self.redis is not None:
            self.redis.stop()


def parse_ws_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname or parts.hostname not in ALLOWED_HOSTS:
        raise SetupError(f"only ws://127.0.0.1 URLs are allowed, got {url!r}")
    return "127.0.0.1", parts.port or 80, parts.path or "/"


def node_flags(args: argparse.Namespace, *extra: str) -> list[str]:
    return [
        *extra,
        "--max-connections", str(args.subscribers + 100),
        "--max-send-rate", "100000",
        *shlex.split(args.server_cmd_extra),
    ]  # fmt: skip


def hub_endpoint(port: int) -> Endpoint:
    return Endpoint("127.0.0.1", port, "/ws", CONCERT_HUB_DESTINATION)


def setup_concert_hub(args: argparse.Namespace, tmpdir: Path) -> Target:
    """A running node (``--url``), one node of our own, or a cluster (``--nodes N``)."""
    (publisher_token,) = mint_tokens(args.secret, [("bench-publisher", "publisher")], 3600)
    if args.url:
        host, port, path = parse_ws_url(args.url)
        ep = Endpoint(host, port, path, CONCERT_HUB_DESTINATION)
        return Target("concert-hub", ep, "bench", publisher_token, args.server_pid)
    target = Target("concert-hub", hub_endpoint(0), "bench", publisher_token, None)
    try:
        extra: list[str] = []
        if args.nodes > 1:
            target.redis, redis_port = start_redis(tmpdir, args.startup_timeout)
            extra = ["--redis-url", f"redis://127.0.0.1:{redis_port}/0"]
        for i in range(1, args.nodes + 1):
            single = args.nodes == 1
            db_url = f"sqlite+aiosqlite:///{tmpdir}/{'bench' if single else f'n{i}'}.db"
            node_id = f"bench-{i}"
            if not single:  # with --redis-url set the server does not migrate SQLite by itself
                migrate(args.python, db_url)
            flags = node_flags(args, *extra, *([] if single else ["--node-id", node_id]))
            child, port = start_node(
                args.python, db_url, args.secret, flags,
                tmpdir / ("server.log" if single else f"server-{i}.log"),
                what="server" if single else f"node {node_id}", timeout=args.startup_timeout,
            )  # fmt: skip
            target.nodes.append(Node(node_id, hub_endpoint(port), child))
    except BaseException:
        target.cleanup()
        raise
    target.endpoint = target.nodes[0].endpoint
    target.server_pid = target.nodes[0].pid
    return target


def setup_rabbitmq(args: argparse.Namespace) -> Target:
    host, port, path = parse_ws_url(args.rabbit_url)
    rabbitmq.enable_web_stomp(host, port, path, args.startup_timeout)
    pid = args.server_pid or rabbitmq.find_beam_pid()
    if pid is None:
        log.warning("could not find the beam.smp pid; server metrics will be null")
    ep = Endpoint(host, port, path, rabbitmq.DESTINATION, "guest", "guest", "/")
    return Target(
        "rabbitmq",
        ep,
        "guest",
        "guest",
        pid,
        limit_hint=lambda: rabbitmq.limit_hint(pid),
        fd_headroom=lambda: rabbitmq.fd_headroom(pid),
    )


# ---------------------------------------------------------------------------------------------
# One benchmark run.
# ---------------------------------------------------------------------------------------------


async def publish(
    session: Client, ep: Endpoint, rate: float, duration: float, body_bytes: int
) -> tuple[int, float, float]:
    """Send ``rate`` messages/s for ``duration`` s; returns (sent, start_wall, end_wall)."""
    total = max(1, round(rate * duration))
    loop = asyncio.get_running_loop()
    start = loop.time()
    start_wall = time.time()
    sent = 0
    while sent < total:
        due = min(total, int((loop.time() - start) * rate) + 1)
        while sent < due:
            body = f'{{"seq":{sent},"t":{time.time_ns()},"pad":"'.encode()
            body += b"x" * max(0, body_bytes - len(body) - 2) + b'"}'
            receipt = "pub-done" if sent == total - 1 else None
            session.send(ep.destination, body, content_type="application/json", receipt=receipt)
            sent += 1
        if sent < total:
            await asyncio.sleep(max(0.0, start + sent / rate - loop.time()))
    return sent, start_wall, time.time()


def node_details(
    nodes: Sequence[Node],
    *,
    node_of: Sequence[int],
    worker_connected: Sequence[int],
    results: Sequence[dict[str, Any]],
    sent: int,
    t0_ns: int,
    first: CpuSample,
    last: CpuSample,
    window: float,
) -> list[dict[str, Any]]:
    """Per-node figures of a cluster run: each node's own subscribers, deliveries and CPU."""
    out = []
    for j, node in enumerate(nodes):
        mine = [i for i in range(len(results)) if node_of[i] == j]
        connected = sum(worker_connected[i] for i in mine)
        delivered = sum(results[i]["delivered"] for i in mine)
        last_ns = max((results[i]["last_ns"] for i in mine), default=0)
        used = cpu_used(first, last, [node.pid])
        d: dict[str, Any] = {
            "node_id": node.node_id,
            "url": node.endpoint.url,
            "pid": node.pid,
            "publisher_here": j == 0,
            "connected": connected,
            "expected": connected * sent,
            "delivered": delivered,
            "loss": connected * sent - delivered,
            "deliveries_per_s": per_second(delivered, t0_ns, last_ns),
            "latency_ms": hist_ms(
                merge_hists(results[i]["hist"] for i in mine), ("p50", "p99", "max")
            ),
            "cpu_us_per_delivery": per_delivery(used, delivered),
            "cpu_pct": pct(used, window),
            "subscribers_complete": sum(results[i]["complete"] for i in mine),
            "dropped": sum(results[i]["dropped"] for i in mine),
        }
        d["rss_mib_end"] = mib(rss_kib(node.pid))
        out.append(d)
    return out


def per_second(delivered: int, t0_ns: int, last_ns: int) -> float | None:
    """Deliveries per second from the first publish to the last delivery."""
    if not delivered or last_ns <= t0_ns:
        return None
    return round(delivered / ((last_ns - t0_ns) / 1e9), 1)


def per_delivery(used: float | None, delivered: int, digits: int = 2) -> float | None:
    return None if used is None or not delivered else round(used / delivered, digits)


def split_subscribers(to_open: int, procs: int, nodes: int) -> tuple[list[int], list[int]]:
    """Worker i serves node ``node_of[i]`` (i mod nodes) and opens ``counts[i]`` subscribers:
    the subscribers split evenly over the nodes, each node's share over its workers."""
    node_of = [i % nodes for i in range(procs)]
    node_total = [to_open // nodes + (1 if j < to_open % nodes else 0) for j in range(nodes)]
    counts: list[int] = []
    for i in range(procs):
        mates = [w for w in range(procs) if node_of[w] == node_of[i]]
        share, rest = divmod(node_total[node_of[i]], len(mates))
        counts.append(share + (1 if mates.index(i) < rest else 0))
    return node_of, counts


def empty_result(args: argparse.Namespace, target: Target, procs: int) -> dict[str, Any]:
    return {
        "target": target.name,
        "subscribers": args.subscribers,
        "connected": 0,
        "rate": args.rate,
        "duration_s": args.duration,
        "body_bytes": args.body_bytes,
        "messages_sent": 0,
        "expected": 0,
        "delivered": 0,
        "loss": 0,
        "loss_pct": None,
        "deliveries_per_s": None,
        "latency_ms": {"p50": None, "p90": None, "p99": None, "max": None},
        "server_cpu_us_per_delivery": None,
        "server_cpu_pct": None,
        "server_rss_mib_baseline": None,
        "server_rss_mib_idle": None,
        "kib_per_connection": None,
        "client_cpu_pct": None,
        "client_cpu_pct_max_proc": None,
        "machine_cpu_pct": None,
        "client_procs": procs,
        "connect_s": None,
        "publish_s": None,
        "window_s": None,
        "subscribers_complete": 0,
        "dropped": 0,
        "out_of_order": 0,
        "server_pid": target.server_pid,
        "error": None,
    }


async def run_bench(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    ep = target.endpoint
    n = args.subscribers
    result = empty_result(args, target, max(1, min(args.client_procs, n)))
    errors: list[str] = []
    nodes = target.nodes if len(target.nodes) > 1 else []
    # subscriber endpoints (one per node) and the server processes measured together
    sub_eps = [nd.endpoint for nd in nodes] or [ep]
    server_pids = [nd.pid for nd in nodes] or ([target.server_pid] if target.server_pid else [])
    redis_pid = target.redis.pid if target.redis is not None else None
    if nodes:
        result["nodes"] = len(nodes)
        result["publisher"] = (
            f"own connection to node {nodes[0].node_id} ({ep.host_header}{ep.path}); its"
            " messages reach the other nodes' subscribers through Redis"
        )
        result["server_pid"] = server_pids

    def rss_total() -> int | None:
        values = [rss_kib(pid) for pid in server_pids]
        return sum(v for v in values if v is not None) if values and None not in values else None

    # 1. publisher first, then the baseline
    try:
        publisher = await open_session(
            ep,
            login=target.publisher_login,
            passcode=target.publisher_passcode,
            subscribe=False,
            timeout=args.connect_timeout,
        )
    except ClientError as exc:
        result["error"] = f"publisher connect: {exc}"
        return result
    await asyncio.sleep(0.5)
    baseline = rss_total()
    node_baseline = [rss_kib(pid) for pid in server_pids]

    # 2. subscribers in worker processes
    to_open = n
    headroom = None if args.no_fd_guard else target.fd_headroom()
    if headroom is not None and headroom < n:
        to_open = max(0, headroom)
        errors.append(
            f"fd guard: opening only {to_open} of {n} subscribers; more would exhaust the"
            f" server's open files ({target.limit_hint()}); --no-fd-guard overrides"
        )
        log.warning("%s", errors[-1])
    procs = max(1, min(args.client_procs, n, to_open))
    if len(sub_eps) > 1:
        procs = max(procs, min(len(sub_eps), to_open))  # every node gets a worker process
    result["client_procs"] = procs
    node_of, counts = split_subscribers(to_open, procs, len(sub_eps))
    per_budget = n / args.connect_rate + args.connect_timeout * 3 + args.duration + 120
    workers: list[tuple[BaseProcess, Connection]] = []
    try:
        for i in range(procs if to_open else 0):
            cfg = WorkerConfig(
                endpoint=sub_eps[node_of[i]],
                subscribers=counts[i],
                connect_rate=args.connect_rate * counts[i] / to_open,
                concurrency=max(1, args.connect_concurrency // procs),
                connect_timeout=args.connect_timeout,
                max_failures=max(1, math.ceil(args.max_connect_failures * counts[i] / to_open)),
                budget_s=per_budget,
                verbose=not args.json_only,
            )
            workers.append(start_worker(worker_main, cfg))
        connect_timeout_total = n / args.connect_rate + args.connect_timeout * 3 + 30
        t_connect = time.monotonic()
        first_error: str | None = None
        failures = 0
        worker_connected: list[int] = []
        for _, conn in workers:
            left = connect_timeout_total - (time.monotonic() - t_connect)
            msg = await recv_msg(conn, max(1.0, left))
            worker_connected.append(msg["connected"])
            failures += msg["failures"]
            first_error = first_error or msg["first_error"]
        connected = result["connected"] = sum(worker_connected)
        result["connect_s"] = round(time.monotonic() - t_connect, 2)
        log.info("%d/%d subscribers connected in %.1f s (%d failed)",
                 connected, n, result["connect_s"], failures)  # fmt: skip
        if connected < to_open:
            hint = None if to_open < n else target.limit_hint()  # the fd guard already said it
            errors.append(
                f"only {connected}/{n} subscribers connected ({failures} failed attempts);"
                f" first error: {first_error}" + (f" [{hint}]" if hint else "")
            )

        # 3. idle RSS
        await asyncio.sleep(1.0)
        idle = rss_total()
        node_idle = [rss_kib(pid) for pid in server_pids]
        result["server_rss_mib_baseline"] = mib(baseline)
        result["server_rss_mib_idle"] = mib(idle)
        if baseline is not None and idle is not None and connected:
            result["kib_per_connection"] = round((idle - baseline) / connected, 2)

        # 4. publish, sampling CPU so the window can end at the last delivery
        client_pids = [os.getpid(), *(p.pid for p, _ in workers if p.pid)]
        sampler = CpuSampler([*server_pids, *client_pids, *([redis_pid] if redis_pid else [])])
        sampler.take()
        t0 = time.monotonic()
        t0_ns = time.time_ns()
        sampling = asyncio.create_task(sampler.run())
        pub_receipt = publisher.expect_receipt("pub-done")
        try:
            sent, _, end_wall = await publish(
                publisher, ep, args.rate, args.duration, args.body_bytes
            )
        except ClientError as exc:
            errors.append(f"publisher: {exc}")
            sent, end_wall = 0, time.time()
        end_ns = time.time_ns()
        result["messages_sent"] = sent
        result["publish_s"] = round(time.monotonic() - t0, 3)
        if sent:
            try:
                await asyncio.wait_for(pub_receipt, args.receipt_timeout)
            except TimeoutError:
                errors.append(
                    f"no RECEIPT for the last SEND within {args.receipt_timeout} s"
                    " (server backlogged?)"
                )
            except ClientError as exc:
                errors.append(f"publisher: {exc}")
        pub_receipt.cancel()
        deadline = max(end_wall, time.time()) + args.grace
        for _, conn in workers:
            conn.send({"type": "expect", "messages": sent, "deadline": deadline})
        results = []
        for _, conn in workers:
            results.append(await recv_msg(conn, max(1.0, deadline - time.time()) + 30))
        sampling.cancel()
        sampler.take()

        # 5. aggregate
        delivered = sum(r["delivered"] for r in results)
        expected = connected * sent
        last_ns = max((r["last_ns"] for r in results), default=0)
        result["expected"] = expected
        result["delivered"] = delivered
        result["loss"] = expected - delivered
        result["loss_pct"] = round(100 * (expected - delivered) / expected, 3) if expected else None
        result["deliveries_per_s"] = per_second(delivered, t0_ns, last_ns)
        result["latency_ms"] = hist_ms(
            merge_hists(r["hist"] for r in results), ("p50", "p90", "p99", "max")
        )
        first, last = sampler.samples[0], sampler.at(max(end_ns, last_ns))
        window = (last.t_ns - first.t_ns) / 1e9
        result["window_s"] = round(window, 3)
        server_used = cpu_used(first, last, server_pids) if server_pids else None
        result["server_cpu_pct"] = pct(server_used, window)
        result["server_cpu_us_per_delivery"] = per_delivery(server_used, delivered)
        per_proc = per_pid_us(first, last, client_pids)
        if per_proc:
            result["client_cpu_pct"] = pct(sum(per_proc), window)
            result["client_cpu_pct_max_proc"] = pct(max(per_proc), window)
        result["machine_cpu_pct"] = machine_pct(first, last)
        if window > 0:
            result["other_cpu_pct"] = other_pct(first, last)
        if nodes:
            result["nodes_detail"] = node_details(
                nodes,
                node_of=node_of,
                worker_connected=worker_connected,
                results=results,
                sent=sent,
                t0_ns=t0_ns,
                first=first,
                last=last,
                window=window,
            )
            for j, nd in enumerate(result["nodes_detail"]):
                nd["rss_mib_baseline"] = mib(node_baseline[j])
                nd["rss_mib_idle"] = mib(node_idle[j])
            redis_used = cpu_used(first, last, [redis_pid]) if redis_pid else None
            result["redis"] = {
                "pid": redis_pid,
                "cpu_pct": pct(redis_used, window),
                "cpu_us_per_delivery": per_delivery(redis_used, delivered, 3),
                **(
                    {"cpu_us_per_message": per_delivery(redis_used, sent, 1)}
                    if redis_used is not None and sent
                    else {}
                ),
                "rss_mib": mib(rss_kib(redis_pid)) if redis_pid else None,
            }
        result["subscribers_complete"] = sum(r["complete"] for r in results)
        result["dropped"] = sum(r["dropped"] for r in results)
        result["out_of_order"] = sum(r["out_of_order"] for r in results)
        if result["dropped"]:
            drop_error = next((r["drop_error"] for r in results if r["drop_error"]), None)
            errors.append(f"{result['dropped']} subscribers lost their connection: {drop_error}")
        if publisher.closed:
            errors.append(f"publisher: {publisher.error}")
    finally:
        publisher.close()
        stop_workers(workers)
    result["error"] = "; ".join(errors) if errors else None
    return result


def run_target(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Set up ``name``, run the benchmark, tear down; never raises for benchmark failures."""
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        try:
            target = (
                setup_rabbitmq(args) if name == "rabbitmq" else setup_concert_hub(args, Path(tmp))
            )
        except (SetupError, ImportError, OSError) as exc:
            log.error("%s: setup failed: %s", name, exc)
            return {"target": name, "subscribers": args.subscribers, "error": f"setup: {exc}"}
        try:
            budget = bench_budget(args)
            result = asyncio.run(asyncio.wait_for(run_bench(args, target), budget))
        except Exception as exc:
            log.exception("%s: benchmark failed", name)
            result = {"target": name, "subscribers": args.subscribers, "error": describe(exc)}
        finally:
            target.cleanup()
        if len(target.nodes) > 1:
            result["server_exit_code"] = {
                nd.node_id: nd.child.proc.returncode for nd in target.nodes
            }
            result["server_log"] = {
                nd.node_id: log_summary(nd.child.log_path) for nd in target.nodes
            }
            if target.redis is not None:
                result["redis_exit_code"] = target.redis.proc.returncode
        elif target.nodes:
            result["server_exit_code"] = target.nodes[0].child.proc.returncode
            result["server_log"] = log_summary(target.nodes[0].child.log_path)
        return result


def bench_budget(args: argparse.Namespace) -> float:
    return float(
        args.subscribers / args.connect_rate
        + args.connect_timeout * 4
        + args.duration
        + args.receipt_timeout
        + args.grace
        + 90
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="STOMP-over-WebSocket fan-out benchmark (one JSON object on stdout).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--rate", type=float, default=10.0, help="messages published per second")
    p.add_argument("--duration", type=float, default=10.0, help="publishing time in seconds")
    p.add_argument("--target", choices=("concert-hub", "rabbitmq"), default="concert-hub")
    p.add_argument("--compare", action="store_true", help="run concert-hub, then rabbitmq")
    p.add_argument(
        "--nodes",
        type=int,
        default=1,
        help="concert-hub nodes; 2 or more start a private redis-server and a cluster",
    )
    p.add_argument(
        "--compare-single",
        action="store_true",
        help="with --nodes >= 2: run one node first with the same load, then the cluster",
    )
    p.add_argument("--connect-rate", type=float, default=2000.0, help="new subscribers per second")
    p.add_argument("--connect-concurrency", type=int, default=256, help="handshakes in flight")
    p.add_argument("--connect-timeout", type=float, default=10.0, help="per-connection seconds")
    p.add_argument(
        "--max-connect-failures",
        type=int,
        default=20,
        help="stop opening subscribers after this many failures",
    )
    p.add_argument("--client-procs", type=int, default=1, help="subscriber processes")
    p.add_argument("--body-bytes", type=int, default=100)
    p.add_argument("--grace", type=float, default=2.0, help="seconds to wait for stragglers")
    p.add_argument(
        "--receipt-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for the RECEIPT of the last SEND before the grace period starts",
    )
    p.add_argument("--startup-timeout", type=float, default=60.0)
    p.add_argument("--url", help="ws://127.0.0.1:PORT/ws of an already running concert-hub")
    p.add_argument("--server-pid", type=int, help="pid to measure when --url is given")
    p.add_argument(
        "--server-cmd-extra",
        default="",
        help='extra flags for `server serve`; write --server-cmd-extra="--flag value"',
    )
    p.add_argument("--python", default=DEFAULT_PYTHON, help="interpreter for the server")
    p.add_argument("--secret", default=BENCH_SECRET)
    p.add_argument(
        "--no-fd-guard",
        action="store_true",
        help="rabbitmq: open every subscriber even past the broker's open-files limit",
    )
    p.add_argument("--rabbit-url", default=rabbitmq.WS_URL, help=argparse.SUPPRESS)
    p.add_argument("--json-only", action="store_true", help="only warnings/errors on stderr")
    args = p.parse_args(argv)
    if args.subscribers < 1 or args.rate <= 0 or args.duration <= 0 or args.connect_rate <= 0:
        p.error("--subscribers, --rate, --duration and --connect-rate must be positive")
    if args.nodes < 1:
        p.error("--nodes must be at least 1")
    if args.nodes > 1 and (args.compare or args.target != "concert-hub" or args.url):
        p.error("--nodes >= 2 starts its own concert-hub cluster: no --compare/--target/--url")
    if args.compare_single and args.nodes < 2:
        p.error("--compare-single needs --nodes 2 (or more)")
    return args


def cluster_key(nodes: int) -> str:
    return "two_nodes" if nodes == 2 else f"nodes_{nodes}"


def comparison(single: dict[str, Any], multi: dict[str, Any]) -> dict[str, Any]:
    """p99 ratios and the issue's target (p99 within 2x single-node, zero loss)."""

    def p99(res: dict[str, Any]) -> float | None:
        return (res.get("latency_ms") or {}).get("p99")

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    base = p99(single)
    remote = [nd["latency_ms"]["p99"] for nd in multi.get("nodes_detail", [])[1:]]
    remote = [v for v in remote if v is not None]
    out: dict[str, Any] = {
        "p99_ratio": ratio(p99(multi), base),
        # subscribers on nodes without the publisher: every message crossed Redis
        "cross_node_p99_ratio": ratio(max(remote) if remote else None, base),
    }
    out["target_met"] = (
        out["p99_ratio"] is not None
        and out["p99_ratio"] <= 2.0
        and (out["cross_node_p99_ratio"] or 0) <= 2.0
        and multi.get("loss") == 0
        and multi.get("connected") == multi.get("subscribers")
        and multi.get("messages_sent", 0) > 0
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.json_only)
    raise_nofile()
    log.info("event loop: %s", install_uvloop())
    targets = ["concert-hub", "rabbitmq"] if args.compare else [args.target]
    # (output key, target, args) per run
    runs = [(name.replace("-", "_"), name, args) for name in targets]
    if args.nodes > 1:
        runs = [(cluster_key(args.nodes), "concert-hub", args)]
        if args.compare_single:
            single = argparse.Namespace(**{**vars(args), "nodes": 1})
            runs.insert(0, ("single_node", "concert-hub", single))
    start_watchdog(
        sum(bench_budget(a) + a.startup_timeout * (1 + a.nodes) + 60 for _, _, a in runs)
    )
    sigterm_interrupts()
    out: dict[str, Any] = {}
    try:
        for key, name, run_args in runs:
            out[key] = res = run_target(run_args, name)
            if not args.json_only:
                log.info("%s: %s", key, json.dumps(res))
    except KeyboardInterrupt as exc:
        kill_everything()
        log.error("interrupted (%s); servers and workers stopped", exc)
        print_json({**out, "error": f"interrupted ({exc})"})
        return 130
    if args.compare_single:
        out.update(comparison(out["single_node"], out[cluster_key(args.nodes)]))
    print_json(out if len(runs) > 1 else out[runs[0][0]])
    # 1 when a target produced no measurement at all (setup failed or the run crashed)
    return 0 if all("delivered" in out[key] for key, _, _ in runs) else 1
