#!/usr/bin/env python3
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

The client is deliberately lean because it shares the machine with the server: raw asyncio
Protocols (uvloop when importable), a hand-written RFC 6455 client (masked client frames,
incremental parsing of unmasked server frames, pings answered, close frames echoed), and MESSAGE
bodies located by byte search (blank line after the headers, body up to the NUL) without parsing
the headers. Latency therefore includes the time the client needs to read the same message on
N sockets one after the other; ``--client-procs 2`` halves that share.

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
import base64
import contextlib
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

log = logging.getLogger("bench_fanout")

REPO_ROOT = Path(__file__).resolve().parent.parent
ALLOWED_HOSTS = {"127.0.0.1", "localhost"}
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RABBIT_WS_URL = "ws://127.0.0.1:15674/ws"
CONCERT_HUB_DESTINATION = "/topic/announcements"
RABBIT_DESTINATION = "/topic/bench"
BENCH_SECRET = "bench-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------------------
# Latency histogram: exact below 128 us, then 64 sub-buckets per power of two (~1.6 % error).
# ---------------------------------------------------------------------------------------------

HIST_SIZE = 64 * 128


def hist_index(us: int) -> int:
    if us < 128:
        return us if us > 0 else 0
    e = us.bit_length() - 7
    idx = (e << 7) + (us >> e)
    return idx if idx < HIST_SIZE else HIST_SIZE - 1


def hist_value(idx: int) -> float:
    """Midpoint (in microseconds) of the bucket ``idx``."""
    if idx < 128:
        return float(idx)
    e, m = idx >> 7, idx & 127
    return float((m << e) + ((1 << e) >> 1))


def hist_percentiles(hist: dict[int, int], qs: Sequence[float]) -> list[float | None]:
    total = sum(hist.values())
    if total == 0:
        return [None for _ in qs]
    out: list[float | None] = []
    keys = sorted(hist)
    for q in qs:
        rank = max(1, math.ceil(q * total))
        seen = 0
        for k in keys:
            seen += hist[k]
            if seen >= rank:
                out.append(hist_value(k))
                break
    return out


# ---------------------------------------------------------------------------------------------
# Minimal WebSocket + STOMP client on a raw asyncio Protocol.
# ---------------------------------------------------------------------------------------------


def _xor_mask(data: bytes, mask: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final, masked client frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + _xor_mask(payload, mask)


def stomp_frame(command: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [command, *(f"{k}:{v}" for k, v in headers.items())]
    return ("\n".join(lines) + "\n\n").encode() + body + b"\0"


class StompError(Exception):
    """The server answered with an ERROR frame (or closed the session)."""


@dataclass
class SubStats:
    """Counters shared by all subscriber sessions of one process."""

    hist: list[int] = field(default_factory=lambda: [0] * HIST_SIZE)
    total: int = 0
    closed: int = 0
    first_ns: int = 0
    last_ns: int = 0


class Session(asyncio.Protocol):
    """One STOMP-over-WebSocket connection (publisher or subscriber)."""

    def __init__(self, host_header: str, path: str, stats: SubStats | None = None) -> None:
        self.transport: asyncio.Transport | None = None
        self._host_header = host_header
        self._path = path
        self._key = base64.b64encode(os.urandom(16))
        self._handshake_buf = b""
        self._open = False
        self._wbuf = b""
        self._sbuf = b""
        self._pending: dict[str, asyncio.Future[bytes]] = {}
        self._loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[bytes] = self._loop.create_future()
        self._pending["HANDSHAKE"] = self.handshake
        self.stats = stats
        self.count = 0
        self.last_seq = -1
        self.out_of_order = 0
        self.error: str | None = None
        self.closed = False

    # -- waiting -------------------------------------------------------------------------------

    def expect(self, key: str) -> asyncio.Future[bytes]:
        fut: asyncio.Future[bytes] = self._loop.create_future()
        if self.closed:
            fut.set_exception(StompError(self.error or "connection closed"))
        else:
            self._pending[key] = fut
        return fut

    def _resolve(self, key: str, value: bytes) -> None:
        fut = self._pending.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(value)

    def _fail_all(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # nobody may be waiting any more; self.error keeps the reason

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = tr = cast("asyncio.Transport", transport)
        tr.write(
            (
                f"GET {self._path} HTTP/1.1\r\n"
                f"Host: {self._host_header}\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {self._key.decode()}\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: v12.stomp\r\n"
                "\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.stats is not None:
            self.stats.closed += 1
        if self.error is None:
            self.error = f"connection lost: {exc!r}" if exc else "connection closed by server"
        self._fail_all(StompError(self.error))

    def data_received(self, data: bytes) -> None:
        if not self._open:
            data = self._handshake(data)
            if not data:
                return
        buf = self._wbuf + data if self._wbuf else data
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            hlen = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                hlen = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                hlen = 10
            mask = b""
            if b1 & 0x80:  # servers must not mask, but tolerate it
                mask = buf[pos + hlen : pos + hlen + 4]
                hlen += 4
            end = pos + hlen + length
            if end > n:
                break
            payload = buf[pos + hlen : end]
            if mask:
                payload = _xor_mask(payload, mask)
            opcode = b0 & 0x0F
            if opcode <= 0x2:  # continuation / text / binary: STOMP is a byte stream across them
                self._stomp(payload)
            elif opcode == 0x8:
                self._on_ws_close(payload)
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(ws_frame(payload, 0xA))
            pos = end
        self._wbuf = buf[pos:] if pos < n else b""

    # -- protocol internals --------------------------------------------------------------------

    def _handshake(self, data: bytes) -> bytes:
        buf = self._handshake_buf + data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self._handshake_buf = buf
            return b""
        head, rest = buf[:end].decode("latin-1"), buf[end + 4 :]
        self._handshake_buf = b""
        lines = head.split("\r\n")
        status = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1(self._key + WS_GUID).digest()).decode()
        if len(status) < 2 or status[1] != "101":
            self._abort(f"WebSocket upgrade refused: {lines[0]}")
            return b""
        if headers.get("sec-websocket-accept") != want:
            self._abort("WebSocket upgrade: bad Sec-WebSocket-Accept")
            return b""
        self._open = True
        self._resolve("HANDSHAKE", headers.get("sec-websocket-protocol", "").encode())
        return rest

    def _abort(self, why: str) -> None:
        self.error = why
        self._fail_all(StompError(why))
        if self.transport is not None:
            self.transport.abort()

    def _on_ws_close(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        reason = payload[2:].decode("utf-8", "replace")
        if self.error is None:
            self.error = f"WebSocket closed by server: code={code} {reason}".rstrip()
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.write(ws_frame(payload[:2], 0x8))
            self.transport.close()

    def _stomp(self, data: bytes) -> None:
        buf = self._sbuf + data if self._sbuf else data
        n = len(buf)
        pos = 0
        while pos < n:
            c = buf[pos]
            if c in (10, 13):  # heart-beat EOLs between frames
                pos += 1
                continue
            hdr_end = buf.find(b"\n\n", pos)
            crlf = buf.find(b"\n\r\n", pos, hdr_end if hdr_end >= 0 else n)
            if crlf >= 0:
                body = crlf + 3
            elif hdr_end >= 0:
                body = hdr_end + 2
            else:
                break
            end = buf.find(b"\0", body)
            if end < 0:
                break
            if buf.startswith(b"MESSAGE", pos):
                self._on_message(buf, body, end)
            else:
                self._on_frame(buf[pos:body], buf[body:end])
            pos = end + 1
        self._sbuf = buf[pos:] if pos < n else b""

    def _on_message(self, buf: bytes, body: int, end: int) -> None:
        stats = self.stats
        if stats is None:
            return
        now = time.time_ns()
        # The body is {"seq":N,"t":T,"pad":"…"}; anything else on the topic is ignored.
        i = buf.find(b'"seq":', body, end)
        j = buf.find(b",", i + 6, end) if i >= 0 else -1
        k = buf.find(b'"t":', j, end) if j >= 0 else -1
        m = buf.find(b",", k + 4, end) if k >= 0 else -1
        if m < 0:
            return
        try:
            seq = int(buf[i + 6 : j])
            us = (now - int(buf[k + 4 : m])) // 1000
        except ValueError:
            return
        if seq <= self.last_seq:
            self.out_of_order += 1
        self.last_seq = seq
        self.count += 1
        stats.hist[hist_index(us)] += 1
        stats.total += 1
        if not stats.first_ns:
            stats.first_ns = now
        stats.last_ns = now

    def _on_frame(self, head: bytes, body: bytes) -> None:
        lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        command = lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers.setdefault(k, v)
        if command == "CONNECTED":
            self._resolve("CONNECTED", head)
        elif command == "RECEIPT":
            self._resolve("RECEIPT:" + headers.get("receipt-id", ""), head)
        elif command == "ERROR":
            text = headers.get("message", "")
            detail = body.decode("utf-8", "replace").strip()
            self.error = f"ERROR {text}" + (f" ({detail[:200]})" if detail else "")
            self._fail_all(StompError(self.error))

    # -- sending -------------------------------------------------------------------------------

    def send_frame(self, frame: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise StompError(self.error or "connection closed")
        self.transport.write(ws_frame(frame))

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self.transport.write(ws_frame((1000).to_bytes(2, "big"), 0x8))
            self.transport.close()


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    path: str
    destination: str
    login: str | None
    passcode: str | None
    vhost: str | None  # RabbitMQ wants ``host:/``

    @property
    def host_header(self) -> str:
        return f"{self.host}:{self.port}"

    def connect_headers(self, login: str | None, passcode: str | None) -> dict[str, str]:
        headers = {"accept-version": "1.2", "heart-beat": "0,0"}
        headers["host"] = self.vhost or self.host
        if login is not None:
            headers["login"] = login
        if passcode is not None:
            headers["passcode"] = passcode
        return headers


class Progress:
    """Which step of opening a session is under way, for error messages."""

    __slots__ = ("stage",)

    def __init__(self) -> None:
        self.stage = "TCP connect"


async def open_session(
    ep: Endpoint,
    stats: SubStats | None,
    login: str | None,
    passcode: str | None,
    progress: Progress | None = None,
) -> Session:
    """TCP connect, WebSocket upgrade and STOMP CONNECT; returns the connected session."""
    progress = progress or Progress()
    loop = asyncio.get_running_loop()
    _, session = await loop.create_connection(
        lambda: Session(ep.host_header, ep.path, stats), ep.host, ep.port
    )
    try:
        progress.stage = "WebSocket upgrade"
        await session.handshake
        progress.stage = "STOMP CONNECT"
        connected = session.expect("CONNECTED")
        session.send_frame(stomp_frame("CONNECT", ep.connect_headers(login, passcode)))
        await connected
    except BaseException:
        if session.transport is not None:
            session.transport.abort()
        raise
    return session


async def subscribe(session: Session, ep: Endpoint, progress: Progress | None = None) -> None:
    if progress is not None:
        progress.stage = "SUBSCRIBE receipt"
    receipt = session.expect("RECEIPT:sub")
    session.send_frame(
        stomp_frame(
            "SUBSCRIBE",
            {"id": "sub-0", "destination": ep.destination, "ack": "auto", "receipt": "sub"},
        )
    )
    await receipt


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "no answer (timeout)"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def install_uvloop() -> str:
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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


async def recv_msg(conn: Connection, wait_s: float) -> Any:
    """Receive one pickled message from a pipe without blocking the event loop."""
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, conn.poll, max(0.0, wait_s))
    if not ready:
        raise TimeoutError("no message from peer process")
    return conn.recv()


async def connect_subscribers(
    cfg: WorkerConfig, stats: SubStats
) -> tuple[list[Session], int, str | None, str | None]:
    """Connect ``cfg.subscribers`` at ``cfg.connect_rate``/s; returns sessions and failures."""
    ep = cfg.endpoint
    sessions: list[Session] = []
    failures = 0
    first_error: str | None = None
    last_error: str | None = None
    sem = asyncio.Semaphore(cfg.concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def one() -> None:
        nonlocal failures, first_error, last_error
        progress = Progress()
        try:
            session = await asyncio.wait_for(
                open_session(ep, stats, ep.login, ep.passcode, progress), cfg.connect_timeout
            )
            try:
                await asyncio.wait_for(subscribe(session, ep, progress), cfg.connect_timeout)
            except BaseException:
                session.close()
                raise
            sessions.append(session)
        except Exception as exc:
            failures += 1
            last_error = f"{progress.stage}: {describe(exc)}"
            if first_error is None:
                first_error = last_error
                log.warning("subscriber connect failed: %s", first_error)
        finally:
            sem.release()

    start = time.monotonic()
    started = 0
    while started < cfg.subscribers and failures < cfg.max_failures:
        due = min(cfg.subscribers, int((time.monotonic() - start) * cfg.connect_rate) + 1)
        while started < due and failures < cfg.max_failures:
            await sem.acquire()
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            started += 1
        if started < cfg.subscribers:
            await asyncio.sleep(0.002)
    if tasks:
        await asyncio.wait(set(tasks), timeout=cfg.connect_timeout * 2 + 5)
    for task in list(tasks):
        task.cancel()
    return sessions, failures, first_error, last_error


async def worker_main(conn: Connection, cfg: WorkerConfig) -> None:
    stats = SubStats()
    t0 = time.monotonic()
    sessions, failures, first_error, last_error = await connect_subscribers(cfg, stats)
    conn.send(
        {
            "type": "connected",
            "connected": len(sessions),
            "failures": failures,
            "first_error": first_error,
            "last_error": last_error,
            "connect_s": time.monotonic() - t0,
        }
    )
    try:
        msg = await recv_msg(conn, cfg.budget_s)
        if msg.get("type") == "expect":
            per_session: int = msg["messages"]
            deadline: float = msg["deadline"]  # time.time() based
            while time.time() < deadline:
                live = len(sessions) - stats.closed
                if live <= 0:
                    break
                # cheap necessary condition first; the full scan only when it holds
                if stats.total >= per_session * live and all(
                    s.count >= per_session for s in sessions if not s.closed
                ):
                    break
                await asyncio.sleep(0.01)
            hist = {i: c for i, c in enumerate(stats.hist) if c}
            dropped = [s for s in sessions if s.closed]
            conn.send(
                {
                    "type": "result",
                    "delivered": stats.total,
                    "first_ns": stats.first_ns,
                    "last_ns": stats.last_ns,
                    "hist": hist,
                    "complete": sum(1 for s in sessions if s.count >= per_session),
                    "min_received": min((s.count for s in sessions), default=0),
                    "out_of_order": sum(s.out_of_order for s in sessions),
                    "dropped": len(dropped),
                    "drop_error": dropped[0].error if dropped else None,
                }
            )
            await recv_msg(conn, 30.0)  # "close"
    except (TimeoutError, EOFError, OSError):
        pass
    finally:
        for s in sessions:
            s.close()
        await asyncio.sleep(0.2)


def worker_entry(conn: Connection, cfg: WorkerConfig) -> None:
    logging.basicConfig(
        level=logging.INFO if cfg.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s worker[%(process)d] %(message)s",
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    raise_nofile()
    install_uvloop()
    with contextlib.suppress(Exception):
        asyncio.run(asyncio.wait_for(worker_main(conn, cfg), cfg.budget_s))


# ---------------------------------------------------------------------------------------------
# /proc measurements.
# ---------------------------------------------------------------------------------------------


def cpu_us(pid: int) -> float | None:
    """utime + stime of ``pid`` (all threads) in microseconds."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000 / CLK_TCK


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def sum_cpu(pids: Sequence[int]) -> dict[int, float]:
    return {pid: v for pid in pids if (v := cpu_us(pid)) is not None}


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies summed over all cores, from /proc/stat."""
    try:
        with open("/proc/stat") as fh:
            fields = [float(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields)
    return total - idle, total


@dataclass(frozen=True)
class CpuSample:
    t_ns: int
    server: float | None  # all server pids together (None when one could not be read)
    clients: dict[int, float]
    machine: tuple[float, float]
    servers: dict[int, float] = field(default_factory=dict)  # per server pid
    extra: dict[int, float] = field(default_factory=dict)  # e.g. redis-server


class CpuSampler:
    """Reads server and client CPU counters every ``interval`` seconds.

    The measurement window ends at the last delivery, which is only known afterwards, so the
    counters are sampled throughout and the first sample at or after that moment is used.
    """

    def __init__(
        self,
        server_pids: int | Sequence[int] | None,
        client_pids: Sequence[int],
        interval: float = 0.05,
        extra_pids: Sequence[int] = (),
    ):
        if isinstance(server_pids, int):
            server_pids = [server_pids]
        self.server_pids = [p for p in server_pids or () if p]
        self.client_pids = list(client_pids)
        self.extra_pids = [p for p in extra_pids if p]
        self.interval = interval
        self.samples: list[CpuSample] = []

    def take(self) -> None:
        servers = sum_cpu(self.server_pids)
        server = (
            sum(servers.values())
            if self.server_pids and len(servers) == len(self.server_pids)
            else None
        )
        self.samples.append(
            CpuSample(
                time.time_ns(),
                server,
                sum_cpu(self.client_pids),
                machine_cpu(),
                servers,
                sum_cpu(self.extra_pids),
            )
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.take()

    def at(self, t_ns: int) -> CpuSample:
        return next((s for s in self.samples if s.t_ns >= t_ns), self.samples[-1])


# ---------------------------------------------------------------------------------------------
# Targets: starting / locating the server.
# ---------------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    endpoint: Endpoint
    publisher_login: str | None
    publisher_passcode: str | None
    server_pid: int | None
    cleanup: Callable[[], None] = lambda: None
    limit_hint: Callable[[], str | None] = lambda: None
    child: ChildServer | None = None
    fd_headroom: Callable[[], int | None] = lambda: None
    nodes: list[Node] = field(default_factory=list)  # cluster mode (--nodes >= 2) only
    redis: ChildServer | None = None


@dataclass(frozen=True)
class Node:
    """One concert-hub node of a cluster started by this script."""

    node_id: str
    endpoint: Endpoint
    child: ChildServer

    @property
    def pid(self) -> int:
        return self.child.proc.pid


class SetupError(Exception):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def parse_ws_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname or parts.hostname not in ALLOWED_HOSTS:
        raise SetupError(f"only ws://127.0.0.1 URLs are allowed, got {url!r}")
    return "127.0.0.1", parts.port or 80, parts.path or "/"


def http_status(host: str, port: int, path: str, timeout: float = 2.0) -> int | None:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            data = s.recv(64)
    except OSError:
        return None
    parts = data.split(b" ", 2)
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return None


def ws_handshake_ok(host: str, port: int, path: str, timeout: float = 2.0) -> bool:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: v12.stomp\r\n\r\n"
    )
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(request.encode())
            data = s.recv(256)
    except OSError:
        return False
    return data.startswith(b"HTTP/1.1 101")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ChildServer:
    """A concert-hub server started by this script (its own process group)."""

    def __init__(self, cmd: list[str], log_path: Path, cwd: Path = REPO_ROOT) -> None:
        self.cmd = cmd
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stop(self) -> int | None:
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=12)
            except subprocess.TimeoutExpired:
                log.warning("server did not exit within 12 s of SIGTERM; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        else:
            # the leader exited; make sure nothing of its group survives
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._log.close()
        return proc.returncode


ACTIVE_CHILDREN: list[ChildServer] = []
ACTIVE_WORKERS: list[Any] = []


def server_cmd(args: argparse.Namespace, port: int, db_url: str, *extra: str) -> list[str]:
    return [
        args.python,
        "-m",
        "server",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--stomp-port",
        "0",
        *extra,
        "--database-url",
        db_url,
        "--secret",
        args.secret,
        "--log-level",
        "warning",
        "--max-connections",
        str(args.subscribers + 100),
        "--max-send-rate",
        "100000",
        *shlex.split(args.server_cmd_extra),
    ]


def stop_child(child: ChildServer, what: str) -> None:
    code = child.stop()
    if child in ACTIVE_CHILDREN:
        ACTIVE_CHILDREN.remove(child)
    log.info("%s exited with %s", what, code)
    if code not in (0, -signal.SIGTERM):
        log.warning("%s exit code %s; log tail:\n%s", what, code, tail(child.log_path))


def wait_ready(
    child: ChildServer, ready: Callable[[], bool], timeout: float, what: str, check: str
) -> None:
    """Poll ``ready`` until it holds; SetupError when the child dies or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        if child.proc.poll() is not None:
            raise SetupError(
                f"{what} exited with {child.proc.returncode} during start-up: "
                + tail(child.log_path, 15)
            )
        if time.monotonic() > deadline:
            raise SetupError(f"{check} within {timeout} s: " + tail(child.log_path, 15))
        time.sleep(0.2)


def healthz_ok(port: int) -> Callable[[], bool]:
    return lambda: http_status("127.0.0.1", port, "/healthz") == 200


def setup_concert_hub(args: argparse.Namespace, tmpdir: Path) -> Target:
    publisher_token = mint_token(args.secret)
    if args.url:
        host, port, path = parse_ws_url(args.url)
        ep = Endpoint(host, port, path, CONCERT_HUB_DESTINATION, None, None, None)
        return Target("concert-hub", ep, "bench", publisher_token, args.server_pid)
    if args.nodes > 1:
        return setup_cluster(args, tmpdir, publisher_token)
    port = free_port()
    cmd = server_cmd(args, port, f"sqlite+aiosqlite:///{tmpdir}/bench.db")
    log.info("starting: %s", shlex.join(cmd))
    child = ChildServer(cmd, tmpdir / "server.log")
    ACTIVE_CHILDREN.append(child)

    def cleanup() -> None:
        stop_child(child, "server")

    try:
        wait_ready(child, healthz_ok(port), args.startup_timeout, "server", "GET /healthz not 200")
    except SetupError:
        cleanup()
        raise
    ep = Endpoint("127.0.0.1", port, "/ws", CONCERT_HUB_DESTINATION, None, None, None)
    return Target("concert-hub", ep, "bench", publisher_token, child.proc.pid, cleanup, child=child)


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def setup_cluster(args: argparse.Namespace, tmpdir: Path, publisher_token: str) -> Target:
    """A private redis-server plus ``args.nodes`` concert-hub nodes in cluster mode."""
    redis_bin = shutil.which("redis-server")
    if redis_bin is None:
        raise SetupError("redis-server not found (needed for --nodes >= 2)")
    started: list[tuple[ChildServer, str]] = []

    def cleanup() -> None:
        for child, what in reversed(started):  # nodes first, redis last
            stop_child(child, what)

    try:
        rport = free_port()
        rcmd = [redis_bin, "--port", str(rport), "--bind", "127.0.0.1"]
        rcmd += ["--save", "", "--appendonly", "no", "--dir", str(tmpdir)]
        log.info("starting: %s", shlex.join(rcmd))
        redis = ChildServer(rcmd, tmpdir / "redis.log", cwd=tmpdir)
        ACTIVE_CHILDREN.append(redis)
        started.append((redis, "redis-server"))
        wait_ready(
            redis, lambda: redis_ping(rport), args.startup_timeout, "redis-server", "no PONG"
        )
        redis_url = f"redis://127.0.0.1:{rport}/0"
        nodes: list[Node] = []
        for i in range(1, args.nodes + 1):
            # with --redis-url set the server does not migrate SQLite by itself
            db_url = f"sqlite+aiosqlite:///{tmpdir}/n{i}.db"
            mig = [args.python, "-m", "server", "migrate", "--database-url", db_url]
            try:
                res = subprocess.run(
                    mig, cwd=REPO_ROOT, check=False, capture_output=True, text=True, timeout=120
                )
            except subprocess.TimeoutExpired as exc:
                raise SetupError(f"{shlex.join(mig)} timed out") from exc
            if res.returncode != 0:
                raise SetupError(
                    f"migrate failed ({res.returncode}): "
                    + (res.stderr or res.stdout).strip()[-500:]
                )
            port = free_port()
            node_id = f"bench-{i}"
            cmd = server_cmd(args, port, db_url, "--redis-url", redis_url, "--node-id", node_id)
            log.info("starting: %s", shlex.join(cmd))
            child = ChildServer(cmd, tmpdir / f"server-{i}.log")
            ACTIVE_CHILDREN.append(child)
            started.append((child, f"node {node_id}"))
            ep = Endpoint("127.0.0.1", port, "/ws", CONCERT_HUB_DESTINATION, None, None, None)
            nodes.append(Node(node_id, ep, child))
        for node in nodes:
            wait_ready(
                node.child,
                healthz_ok(node.endpoint.port),
                args.startup_timeout,
                f"node {node.node_id}",
                f"node {node.node_id}: GET /healthz not 200",
            )
    except BaseException:
        cleanup()
        raise
    first = nodes[0]
    return Target(
        "concert-hub",
        first.endpoint,
        "bench",
        publisher_token,
        first.pid,
        cleanup,
        nodes=nodes,
        redis=redis,
    )


def mint_token(secret: str) -> str:
    sys.path.insert(0, str(REPO_ROOT))
    from server.auth import TokenAuthority  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about the short fixed bench secret
        return TokenAuthority(secret).issue("bench-publisher", "publisher")


def find_beam_pid() -> int | None:
    try:
        out = subprocess.run(
            ["pgrep", "-f", "beam.smp"], check=False, capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for pid_s in out.split():
        try:
            cmdline = Path(f"/proc/{pid_s}/cmdline").read_bytes()
        except OSError:
            continue
        if b"rabbit" in cmdline:
            return int(pid_s)
    if shutil.which("rabbitmqctl"):
        try:
            status = subprocess.run(
                ["rabbitmqctl", "status"], check=False, capture_output=True, text=True, timeout=60
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        for line in status.splitlines():
            if "OS PID" in line:
                digits = "".join(ch for ch in line.split(":")[-1] if ch.isdigit())
                if digits:
                    return int(digits)
    return None


def open_files_limit(pid: int) -> str | None:
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return f"open-files limit {soft} (hard {hard})"
    except (OSError, ValueError):
        return None
    return None


def fd_headroom(pid: int | None, margin: int = 64) -> int | None:
    """How many more sockets ``pid`` can open before hitting its soft open-files limit.

    RabbitMQ keeps accepting Web-STOMP sockets past its own socket budget (they then wait for a
    file handle and time out), and at EMFILE its memory monitors crash, which leaves the node
    unable to create queues until they are restarted. So the benchmark stays below the limit.
    """
    if pid is None:
        return None
    try:
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft = line.split()[3]
                return None if soft == "unlimited" else int(soft) - in_use - margin
    except (OSError, ValueError):
        return None
    return None


def rabbit_limit_hint(pid: int | None) -> str | None:
    """What RabbitMQ says about its socket budget (the 1,024 open-files default)."""
    parts = []
    if pid is not None and (limit := open_files_limit(pid)):
        parts.append(f"beam.smp {limit}")
    for logfile in sorted(Path("/var/log/rabbitmq").glob("rabbit@*.log")):
        if logfile.name.endswith("_upgrade.log"):
            continue
        last = None
        with contextlib.suppress(OSError), logfile.open(errors="replace") as fh:
            for line in fh:
                if "Limiting to approx" in line:
                    last = line
        if last:
            parts.append("RabbitMQ log: " + last[last.index("Limiting") :].strip())
            break
    return "; ".join(parts) or None


def setup_rabbitmq(args: argparse.Namespace) -> Target:
    host, port, path = parse_ws_url(args.rabbit_url)
    if not ws_handshake_ok(host, port, path):
        if not shutil.which("rabbitmq-plugins"):
            raise SetupError("rabbitmq-plugins not found and Web-STOMP is not answering")
        log.info("enabling rabbitmq_web_stomp")
        try:
            res = subprocess.run(
                ["rabbitmq-plugins", "enable", "rabbitmq_web_stomp"],
                check=False,
                capture_output=True,
                text=True,
                timeout=180,
            )
        except subprocess.TimeoutExpired as exc:
            raise SetupError("rabbitmq-plugins enable timed out") from exc
        if res.returncode != 0:
            raise SetupError(
                f"rabbitmq-plugins enable failed ({res.returncode}): "
                + (res.stderr or res.stdout).strip()[-500:]
            )
        deadline = time.monotonic() + args.startup_timeout
        while not ws_handshake_ok(host, port, path):
            if time.monotonic() > deadline:
                raise SetupError(
                    f"{args.rabbit_url} did not answer within {args.startup_timeout} s"
                )
            time.sleep(0.5)
    pid = args.server_pid or find_beam_pid()
    if pid is None:
        log.warning("could not find the beam.smp pid; server metrics will be null")
    ep = Endpoint(host, port, path, RABBIT_DESTINATION, "guest", "guest", "/")
    return Target(
        "rabbitmq",
        ep,
        "guest",
        "guest",
        pid,
        limit_hint=lambda: rabbit_limit_hint(pid),
        fd_headroom=lambda: fd_headroom(pid),
    )


# ---------------------------------------------------------------------------------------------
# One benchmark run.
# ---------------------------------------------------------------------------------------------


def mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024, 1)


async def publish(
    session: Session, ep: Endpoint, rate: float, duration: float, body_bytes: int
) -> tuple[int, float, float]:
    """Send ``rate`` messages/s for ``duration`` s; returns (sent, start_wall, end_wall)."""
    total = max(1, round(rate * duration))
    dest = ep.destination
    loop = asyncio.get_running_loop()
    start = loop.time()
    start_wall = time.time()
    sent = 0
    assert session.transport is not None
    while sent < total:
        due = min(total, int((loop.time() - start) * rate) + 1)
        chunks = []
        while sent < due:
            body = f'{{"seq":{sent},"t":{time.time_ns()},"pad":"'.encode()
            pad = max(0, body_bytes - len(body) - 2)
            body += b"x" * pad + b'"}'
            headers = {
                "destination": dest,
                "content-type": "application/json",
                "content-length": str(len(body)),
            }
            if sent == total - 1:
                headers["receipt"] = "pub-done"
            chunks.append(ws_frame(stomp_frame("SEND", headers, body)))
            sent += 1
        if session.transport.is_closing():
            raise StompError(session.error or "publisher connection closed")
        session.transport.write(b"".join(chunks))
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
        hist: dict[int, int] = {}
        for i in mine:
            for key, c in results[i]["hist"].items():
                hist[key] = hist.get(key, 0) + c
        p50, p99, pmax = hist_percentiles(hist, (0.5, 0.99, 1.0))
        d: dict[str, Any] = {
            "node_id": node.node_id,
            "url": f"ws://{node.endpoint.host_header}{node.endpoint.path}",
            "pid": node.pid,
            "publisher_here": j == 0,
            "connected": connected,
            "expected": connected * sent,
            "delivered": delivered,
            "loss": connected * sent - delivered,
            "deliveries_per_s": (
                round(delivered / ((last_ns - t0_ns) / 1e9), 1)
                if delivered and last_ns > t0_ns
                else None
            ),
            "latency_ms": {
                name: (None if v is None else round(v / 1000, 3))
                for name, v in (("p50", p50), ("p99", p99), ("max", pmax))
            },
            "cpu_us_per_delivery": None,
            "cpu_pct": None,
            "subscribers_complete": sum(results[i]["complete"] for i in mine),
            "dropped": sum(results[i]["dropped"] for i in mine),
        }
        if node.pid in first.servers and node.pid in last.servers and window > 0:
            used = last.servers[node.pid] - first.servers[node.pid]
            d["cpu_pct"] = round(100 * used / (window * 1e6), 1)
            if delivered:
                d["cpu_us_per_delivery"] = round(used / delivered, 2)
        d["rss_mib_end"] = mib(rss_kib(node.pid))
        out.append(d)
    return out


async def run_bench(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    ep = target.endpoint
    n = args.subscribers
    procs = max(1, min(args.client_procs, n))
    result: dict[str, Any] = {
        "target": target.name,
        "subscribers": n,
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
    errors: list[str] = []
    spid = target.server_pid
    nodes = target.nodes
    # subscriber endpoints (one per node) and the server processes measured together
    sub_eps = [nd.endpoint for nd in nodes] or [ep]
    server_pids: list[int] = [nd.pid for nd in nodes] or ([spid] if spid else [])
    redis_pid = target.redis.proc.pid if target.redis is not None else None
    if nodes:
        result["nodes"] = len(nodes)
        result["publisher"] = (
            f"own connection to node {nodes[0].node_id} ({ep.host_header}{ep.path}); its"
            " messages reach the other nodes' subscribers through Redis"
        )
        result["server_pid"] = server_pids

    def rss_total() -> int | None:
        values = [rss_kib(pid) for pid in server_pids]
        return None if not values or None in values else sum(cast("list[int]", values))

    # 1. publisher first, then the baseline
    try:
        publisher = await asyncio.wait_for(
            open_session(ep, None, target.publisher_login, target.publisher_passcode),
            args.connect_timeout,
        )
    except Exception as exc:
        result["error"] = f"publisher connect: {describe(exc)}"
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
    procs = max(1, min(procs, to_open))
    k = len(sub_eps)
    if k > 1:
        procs = max(procs, min(k, to_open))  # every node gets at least one worker process
    result["client_procs"] = procs
    ctx = mp.get_context("spawn")
    workers: list[tuple[Any, Connection]] = []
    # subscribers split evenly over the nodes, each node's share over the workers given to it
    node_of = [i % k for i in range(procs)]
    node_total = [to_open // k + (1 if j < to_open % k else 0) for j in range(k)]
    counts: list[int] = []
    for i in range(procs):
        mates = [w for w in range(procs) if node_of[w] == node_of[i]]
        share, rest = divmod(node_total[node_of[i]], len(mates))
        counts.append(share + (1 if mates.index(i) < rest else 0))
    per_budget = n / args.connect_rate + args.connect_timeout * 3 + args.duration + 120
    try:
        for i in range(procs if to_open else 0):
            count = counts[i]
            parent_end, child_end = ctx.Pipe()
            cfg = WorkerConfig(
                endpoint=sub_eps[node_of[i]],
                subscribers=count,
                connect_rate=args.connect_rate * count / to_open,
                concurrency=max(1, args.connect_concurrency // procs),
                connect_timeout=args.connect_timeout,
                max_failures=max(1, math.ceil(args.max_connect_failures * count / to_open)),
                budget_s=per_budget,
                verbose=not args.json_only,
            )
            proc = ctx.Process(target=worker_entry, args=(child_end, cfg), daemon=True)
            ACTIVE_WORKERS.append(proc)
            proc.start()
            child_end.close()
            workers.append((proc, parent_end))
        connect_timeout_total = n / args.connect_rate + args.connect_timeout * 3 + 30
        t_connect = time.monotonic()
        connected = 0
        first_error: str | None = None
        failures = 0
        worker_connected: list[int] = []
        for _, conn in workers:
            msg = await recv_msg(
                conn, max(1.0, connect_timeout_total - (time.monotonic() - t_connect))
            )
            connected += msg["connected"]
            worker_connected.append(msg["connected"])
            failures += msg["failures"]
            first_error = first_error or msg["first_error"]
        result["connected"] = connected
        result["connect_s"] = round(time.monotonic() - t_connect, 2)
        log.info(
            "%d/%d subscribers connected in %.1f s (%d failed)",
            connected,
            n,
            result["connect_s"],
            failures,
        )
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
        sampler = CpuSampler(server_pids, client_pids, extra_pids=[redis_pid] if redis_pid else [])
        sampler.take()
        t0 = time.monotonic()
        t0_ns = time.time_ns()
        sampling = asyncio.create_task(sampler.run())
        pub_receipt = publisher.expect("RECEIPT:pub-done")
        try:
            sent, _, end_wall = await publish(
                publisher, ep, args.rate, args.duration, args.body_bytes
            )
        except StompError as exc:
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
            except StompError as exc:
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
        hist: dict[int, int] = {}
        for r in results:
            for k, c in r["hist"].items():
                hist[k] = hist.get(k, 0) + c
        delivered = sum(r["delivered"] for r in results)
        expected = connected * sent
        last_ns = max((r["last_ns"] for r in results), default=0)
        result["expected"] = expected
        result["delivered"] = delivered
        result["loss"] = expected - delivered
        result["loss_pct"] = round(100 * (expected - delivered) / expected, 3) if expected else None
        if delivered and last_ns > t0_ns:
            result["deliveries_per_s"] = round(delivered / ((last_ns - t0_ns) / 1e9), 1)
        p50, p90, p99, pmax = hist_percentiles(hist, (0.5, 0.9, 0.99, 1.0))
        result["latency_ms"] = {
            name: (None if v is None else round(v / 1000, 3))
            for name, v in (("p50", p50), ("p90", p90), ("p99", p99), ("max", pmax))
        }
        first, last = sampler.samples[0], sampler.at(max(end_ns, last_ns))
        window = (last.t_ns - first.t_ns) / 1e9
        result["window_s"] = round(window, 3)
        if first.server is not None and last.server is not None and window > 0:
            used = last.server - first.server
            result["server_cpu_pct"] = round(100 * used / (window * 1e6), 1)
            if delivered:
                result["server_cpu_us_per_delivery"] = round(used / delivered, 2)
        per_proc = [last.clients[p] - first.clients[p] for p in last.clients if p in first.clients]
        if per_proc and window > 0:
            result["client_cpu_pct"] = round(100 * sum(per_proc) / (window * 1e6), 1)
            result["client_cpu_pct_max_proc"] = round(100 * max(per_proc) / (window * 1e6), 1)
        busy = last.machine[0] - first.machine[0]
        total = last.machine[1] - first.machine[1]
        if total > 0:
            result["machine_cpu_pct"] = round(100 * busy / total, 1)
        if window > 0 and total > 0:
            # busy jiffies of the whole machine minus everything this benchmark measured
            ours = sum(per_proc)
            ours += sum(
                last.servers[p] - first.servers[p] for p in last.servers if p in first.servers
            )
            ours += sum(last.extra[p] - first.extra[p] for p in last.extra if p in first.extra)
            other = busy * 1e6 / CLK_TCK - ours
            result["other_cpu_pct"] = round(max(0.0, 100 * other / (window * 1e6)), 1)
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
            rd: dict[str, Any] = {"pid": redis_pid, "cpu_pct": None, "cpu_us_per_delivery": None}
            if redis_pid in first.extra and redis_pid in last.extra and window > 0:
                used = last.extra[redis_pid] - first.extra[redis_pid]
                rd["cpu_pct"] = round(100 * used / (window * 1e6), 1)
                if delivered:
                    rd["cpu_us_per_delivery"] = round(used / delivered, 3)
                if sent:
                    rd["cpu_us_per_message"] = round(used / sent, 1)
            rd["rss_mib"] = mib(rss_kib(redis_pid)) if redis_pid else None
            result["redis"] = rd
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
        for _, conn in workers:  # also when interrupted before the normal "close"
            with contextlib.suppress(OSError, ValueError):
                conn.send({"type": "close"})
        for proc, conn in workers:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            conn.close()
            if proc in ACTIVE_WORKERS:
                ACTIVE_WORKERS.remove(proc)
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
        if target.nodes:
            result["server_exit_code"] = {
                nd.node_id: nd.child.proc.returncode for nd in target.nodes
            }
            result["server_log"] = {
                nd.node_id: server_log_summary(nd.child.log_path) for nd in target.nodes
            }
            if target.redis is not None:
                result["redis_exit_code"] = target.redis.proc.returncode
        elif target.child is not None:
            result["server_exit_code"] = target.child.proc.returncode
            result["server_log"] = server_log_summary(target.child.log_path)
        return result


def server_log_summary(path: Path, limit: int = 10) -> dict[str, Any]:
    """The child runs at --log-level warning, so every line it logged deserves a look."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return {"lines": 0, "first": []}
    return {"lines": len(lines), "first": [ln[:300] for ln in lines[:limit]]}


def bench_budget(args: argparse.Namespace) -> float:
    return float(
        args.subscribers / args.connect_rate
        + args.connect_timeout * 4
        + args.duration
        + args.receipt_timeout
        + args.grace
        + 90
    )


def start_watchdog(seconds: float) -> None:
    """Last resort: if the run overstays its budget, kill our children and exit."""

    def fire() -> None:
        log.error("watchdog: no result after %.0f s, aborting", seconds)
        for child in list(ACTIVE_CHILDREN):
            with contextlib.suppress(Exception):
                os.killpg(child.proc.pid, signal.SIGKILL)
        for proc in list(ACTIVE_WORKERS):
            with contextlib.suppress(Exception):
                proc.kill()
        print(json.dumps({"error": f"watchdog: aborted after {seconds:.0f} s"}), flush=True)
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


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
    p.add_argument("--python", default=sys.executable, help="interpreter for the server")
    p.add_argument("--secret", default=BENCH_SECRET)
    p.add_argument(
        "--no-fd-guard",
        action="store_true",
        help="rabbitmq: open every subscriber even past the broker's open-files limit",
    )
    p.add_argument("--rabbit-url", default=RABBIT_WS_URL, help=argparse.SUPPRESS)
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
    logging.basicConfig(
        level=logging.WARNING if args.json_only else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(message)s",
    )
    raise_nofile()
    loop_kind = install_uvloop()
    log.info("event loop: %s", loop_kind)
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

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    out: dict[str, Any] = {}
    try:
        for key, name, run_args in runs:
            res = run_target(run_args, name)
            out[key] = res
            if not args.json_only:
                log.info("%s: %s", key, json.dumps(res))
    except KeyboardInterrupt as exc:
        for child in list(ACTIVE_CHILDREN):
            child.stop()
        for proc in list(ACTIVE_WORKERS):
            proc.kill()
        log.error("interrupted (%s); servers and workers stopped", exc)
        print(json.dumps({**out, "error": f"interrupted ({exc})"}, indent=2))
        return 130
    if args.compare_single:
        out.update(comparison(out["single_node"], out[cluster_key(args.nodes)]))
    print(json.dumps(out if len(runs) > 1 else out[runs[0][0]], indent=2))
    # 1 when a target produced no measurement at all (setup failed or the run crashed)
    return 0 if all("delivered" in out[key] for key, _, _ in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
