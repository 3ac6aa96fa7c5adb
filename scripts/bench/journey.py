"""The whole on-sale, end to end: U buyers, one or several nodes, MariaDB (issue 16).

Usage::

    python scripts/bench_journey.py --users 2000                       # one node
    python scripts/bench_journey.py --users 10000 --seats 2000         # the issue's target run
    python scripts/bench_journey.py --users 200 --nodes 2 --seats 100  # a cluster (own Redis)
    python scripts/bench_journey.py --users 2000 --workers 2           # one node, 2 processes
    python scripts/bench_journey.py --users 2000 --profile-server prof # cProfile node 0

Prints ONE JSON object on stdout; progress goes to stderr (``--quiet``: warnings only). Only
127.0.0.1 is contacted; the machine's shared Redis is never touched. Exit status 0 when every user
finished and the integrity check passed, 1 otherwise, 3 from the watchdog.

Set-up
------
A fresh MariaDB database ``ch_journey_<hex>`` on ``--server-url`` (dropped at the end unless
``--keep``), migrated with ``concert-hub migrate``; with ``--nodes`` or ``--workers`` > 1 a
private ``redis-server`` on a free port and every node in cluster mode over it (``--redis-url``:
that Redis instead, keys under a prefix of this run's own). ``--nodes`` concert-hub
nodes (``python -m server serve``, each ``--workers`` processes on its port (``serve
--workers``; ready once ``/api/admin/stats`` lists every worker), REST/STOMP rate limits out of
the way,
``--position-interval-s --interval``, ``--payment-latency-ms``; ``--server-cmd-extra`` adds
flags). One event, created over REST by an admin: ``--seats`` seats in rows of 25 (front rows
first), waiting room on, ``--admission-rate`` admissions/s, ``--max-active`` active shoppers
(default: as many as users: a buyer who found nothing stays active until its admission lapses,
so a cap stalls the queue), hold TTL 600 s, at most 4 seats per user, status ``paused`` (so
joiners wait in the pre-queue).

The journey
-----------
Users are split over ``--client-procs`` worker processes (uvloop, the project's
``concert_hub_client``; REST over a lean keep-alive HTTP/1.1 client, ``--rest-concurrency``
connections per worker and node) and round-robin over the nodes. Each user:

1. connects a STOMP-over-WebSocket session to its node (its token as passcode) and subscribes
   ``/user/queue/position`` and ``/topic/events/{id}/seats`` (with receipts; at most
   ``--connect-concurrency`` handshakes in flight in total);
2. joins the waiting room (``POST /api/events/{id}/queue``) while the sale is paused: the
   pre-queue;
3. an admin ``PATCH`` sets the event ``on_sale`` (on node 0: the other nodes learn it through the
   backplane) — the clock starts (``t_open``); the pre-queue is shuffled and admission begins;
4. once its ``admitted`` message arrives, the user picks 1..4 seats (uniform) from the live seat
   map its worker process follows: with probability ``--hot-share`` a block starting in the best
   ``--hot-fraction`` of the seats still available, else anywhere; ``POST
   /api/events/{id}/holds`` with its ``X-Admission-Token``; a 409 marks the conflicting seats
   taken and the user tries another pick, up to ``--attempts`` times;
5. with a hold, after ``--think-ms``, ``POST /api/holds/{id}/checkout`` (``tok_visa``, an
   ``Idempotency-Key``) → a paid order.

A user ends ``paid``, ``sold_out`` (no seat left in its view, or the waiting room said
``sold_out``/``closed``), ``gave_up`` (``--attempts`` conflicts), ``expired`` (its admission
lapsed), ``error`` or ``unfinished`` (still going after ``--max-seconds``). Sessions stay open to
the end: every buyer follows the seat map throughout, as in the issue.

Figures
-------
All times are CLOCK_MONOTONIC (shared by the processes of the machine), in ms.

* ``hold_ms`` / ``checkout_ms`` {p50, p99, max}: request written → answer read, every answer
  (201 and 409 for holds).
* ``propagation_ms`` {p50, p99, max}: for each 201 hold, its 201's arrival at the holder → the
  arrival at each observer session of the delta that shows its first seat held (or sold);
  ``--observers`` sessions per worker (spread over its users and nodes) decode every delta,
  clipped at 0 (a delta may beat the 201).
* ``delta_spread_ms`` {p50, p99, max}: for each delta, its first arrival at an observer → its
  last: how long one delta takes to reach every follower (the node writing it to each socket in
  turn, and the clients reading it). Propagation is the wait for the tick plus up to this.
* ``position_lateness_ms`` {p50, p99, max}: as in the queue benchmark, the gaps between one
  user's consecutive position messages while waiting (from ``t_open`` on), lateness =
  max(0, gap - interval), plus the open gap of a user still waiting at its end.
* ``healthz_ms`` {p50, p99, max}: ``GET /healthz`` on every node every ``--probe-ms`` from a
  thread of the main process (keep-alive): the event loop's lag as a client sees it.
* ``server_ms``: the same work timed by the nodes themselves, from their ``/metrics``
  histograms over the journey (summed over nodes; bucket upper bounds, :mod:`bench.scrape`):
  hold and checkout requests, hold decisions, payments, database pool waits, event-loop lag,
  seat-delta lag, position lateness. Far below the clients' figures: the time went beside the
  node (a loaded client process), not in it.
* ``sold_out_s``: ``t_open`` → the last checkout's 201, when every seat was sold; ``seats_sold``.
* ``outcomes`` {paid, sold_out, gave_up, expired, error, unfinished}; ``paid_by_node``; ``holds``,
  ``hold_conflicts``, ``checkouts``; ``seq_gaps`` (a seat delta whose ``seq`` was not the last
  plus one, over every session); ``dropped`` (sessions lost).
* ``cpu_pct`` over the journey (100 = one core): each node (with ``--workers`` > 1: its
  supervisor and its workers together), each node's workers (``workers``: a list per node,
  empty for one worker), each node's other child processes (the e-mail renderers, started
  during the journey: their whole CPU), clients, redis, mariadbd, machine, ``other`` (machine
  minus all of those but the children: another load next door); ``rss_mib`` of each node (all
  its processes but the renderers) and of each worker.
* ``integrity`` (from the tables afterwards): ``seats_with_two_valid_tickets``,
  ``paid_orders_without_all_tickets`` (valid tickets ≠ the hold's seat count),
  ``paid_orders_without_charge`` (no test-gateway charge of the order's amount),
  ``charges_without_paid_order``, ``sold_seats`` vs ``valid_tickets``,
  ``seats_told_sold_twice`` (seats two clients were told they bought); ``ok``.
* ``plots``: PNG files in ``--plot-dir`` (holds/s, admissions/s, hold and checkout latency
  over time, queue length over time); ``--no-plots`` skips them (needs matplotlib, in the
  ``test`` extra).
* ``targets``: the issue's targets at 10,000 users on a quiet machine (hold p99 ≤ 100 ms,
  checkout p99 ≤ 300 ms, propagation p99 ≤ 200 ms, lateness p99 ≤ 250 ms, /healthz p99 ≤ 50 ms),
  each true/false for this run, whatever its size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import random
import shlex
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from bench import scrape
from bench.cpu import CpuSample, cpu_us, machine_pct, other_pct, pct, rss_kib, used_us
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
from bench.mariadb import DEFAULT_SERVER_URL, _admin, create_database, drop_database
from bench.rest import HttpConn, HttpError, http_json, iso_in, listed_nodes
from bench.servers import (
    BENCH_SECRET,
    DEFAULT_PYTHON,
    ChildProcess,
    SetupError,
    children_of,
    free_port,
    http_status,
    log_summary,
    migrate,
    mint_tokens,
    serve_cmd,
    start_redis,
    worker_pids,
)
from bench.sessions import Endpoint, open_many, open_session
from bench.stats import Errors, ms_summary
from concert_hub_client import Client, Message

SEATS_PER_ROW = 25
MAX_SEATS_PER_USER = 4
OUTCOMES = ("paid", "sold_out", "gave_up", "expired", "error", "unfinished")
TARGETS_MS = {"hold": 100, "checkout": 300, "propagation": 200, "lateness": 250, "healthz": 50}


class BenchError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Worker process: the users' sessions and journeys.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerConfig:
    index: int
    ports: list[int]
    event_id: int
    users: list[tuple[str, str, int]]  # (name, token, node index)
    observers: int
    interval: float
    attempts: int
    hot_share: float
    hot_fraction: float
    think_s: float
    seed: int
    rest_concurrency: int
    connect_concurrency: int
    request_timeout: float
    connect_timeout: float
    phase_timeout: float
    budget_s: float
    verbose: bool


class RestPool:
    """Keep-alive connections to one node, at most ``size`` requests in flight."""

    def __init__(self, port: int, size: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.idle: list[HttpConn] = []
        self.sem = asyncio.Semaphore(size)

    async def call(
        self, method: str, path: str, token: str, body: object = None, headers: str = ""
    ) -> tuple[int, bytes, float, float]:
        """(status, body, time written, seconds to the answer); raises OSError, HttpError,
        TimeoutError. A request on a connection the server had closed is retried once."""
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        raw = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Bearer {token}\r\n{headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        async with self.sem:
            for attempt in range(2):
                conn = self.idle.pop() if self.idle else None
                fresh = conn is None or conn.closed
                if fresh:
                    async with asyncio.timeout(self.timeout):
                        _, conn = await asyncio.get_running_loop().create_connection(
                            HttpConn, "127.0.0.1", self.port
                        )
                assert conn is not None
                t = time.monotonic()
                try:
                    async with asyncio.timeout(self.timeout):
                        status, answer, keep = await conn.request(raw)
                except HttpError:
                    conn.close()
                    if fresh or attempt:
                        raise
                    continue
                except BaseException:
                    conn.close()
                    raise
                seconds = time.monotonic() - t
                if keep:
                    self.idle.append(conn)
                else:
                    conn.close()
                return status, answer, t, seconds
        raise HttpError("unreachable")

    def close(self) -> None:
        for conn in self.idle:
            conn.close()


class SeatView:
    """The seat map as this worker's observer sessions see it (one per process, not per user)."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.status: dict[str, str] = {}
        self.seq = -1
        self.hints: set[str] = set()  # seats a 409 named, until a delta says otherwise

    def snapshot(self, data: dict[str, Any]) -> None:
        if int(data["seq"]) <= self.seq:
            return
        self.seq = int(data["seq"])
        self.order = [seat for seat, _ in data["seats"]]
        self.status = {seat: status for seat, status in data["seats"]}

    def delta(self, data: dict[str, Any]) -> None:
        seq = int(data["seq"])
        if seq <= self.seq:
            return
        self.seq = seq
        for seat, status in data["changes"]:
            self.status[seat] = status
            self.hints.discard(seat)

    def sold_out(self) -> bool:
        return bool(self.order) and all(s in ("sold", "blocked") for s in self.status.values())

    def available(self) -> list[str]:
        status, hints = self.status, self.hints
        return [s for s in self.order if status[s] == "available" and s not in hints]


class Observer:
    """A session that decodes every seat message: feeds the view, times first sightings."""

    __slots__ = ("arrived", "seen", "view")

    def __init__(self, view: SeatView) -> None:
        self.view = view
        self.seen: dict[str, float] = {}  # seat → first arrival showing it held or sold
        self.arrived: dict[int, float] = {}  # seq → arrival of that delta

    def on_seats(self, message: Message, now: float) -> None:
        data = json.loads(message.body)
        if data.get("type") == "snapshot":
            self.view.snapshot(data)
            return
        self.view.delta(data)
        self.arrived[data["seq"]] = now
        seen = self.seen
        for seat, status in data["changes"]:
            if status != "available" and seat not in seen:
                seen[seat] = now


class Buyer:
    """One user: its session, what it heard, what it did."""

    __slots__ = (
        "admitted",
        "admitted_at",
        "ended_at",
        "gaps",
        "idx",
        "last_waiting",
        "name",
        "node",
        "observer",
        "outcome",
        "seq",
        "session",
        "token",
        "worker",
    )

    def __init__(self, worker: Worker, idx: int, name: str, token: str, node: int) -> None:
        self.worker = worker
        self.idx = idx
        self.name = name
        self.token = token
        self.node = node
        self.session: Client | None = None
        self.observer: Observer | None = None
        self.seq = -1
        self.admitted: asyncio.Future[tuple[str, str | None]] | None = None
        self.admitted_at: float | None = None
        self.last_waiting: float | None = None  # arrival of the last message while waiting
        self.gaps: list[float] = []  # position gaps while waiting, after t_open
        self.outcome = "unfinished"
        self.ended_at: float | None = None

    def on_message(self, message: Message) -> None:
        now = time.monotonic()
        # (peek: read from the wire, no header decoded; 10,000 sessions get every delta)
        if message.peek("subscription") == "seats":
            seq = message.peek("seq")
            if seq is not None:
                n = int(seq)
                if self.seq >= 0 and n != self.seq + 1 and n > self.seq:
                    self.worker.seq_gaps += 1
                self.seq = max(self.seq, n)
            if self.observer is not None:
                self.observer.on_seats(message, now)
            return
        try:
            data = json.loads(message.body)
        except ValueError:
            self.worker.errors.add("a position message was not JSON")
            return
        state = data.get("state")
        t_open = self.worker.t_open
        if self.last_waiting is not None and t_open is not None and now >= t_open:
            self.gaps.append(now - max(self.last_waiting, t_open))
        self.last_waiting = now if state == "waiting" else None
        future = self.admitted
        if future is None or future.done():
            return
        if state == "admitted":
            self.admitted_at = now
            future.set_result(("admitted", data.get("admission_token")))
        elif state in ("sold_out", "closed", "expired"):
            future.set_result((state, None))


class Worker:
    def __init__(self, cfg: WorkerConfig) -> None:
        self.cfg = cfg
        self.view = SeatView()
        self.errors = Errors()
        self.seq_gaps = 0
        self.t_open: float | None = None
        self.buyers = [
            Buyer(self, i, name, token, node) for i, (name, token, node) in enumerate(cfg.users)
        ]
        step = max(1, len(self.buyers) // max(1, cfg.observers))
        for buyer in self.buyers[::step][: cfg.observers]:
            buyer.observer = Observer(self.view)
        self.pools: list[RestPool] = []
        self.rng = random.Random(cfg.seed * 1000 + cfg.index)
        # timelines: (time, seconds) per answer; (time, seat, ...) per event
        self.holds: list[tuple[float, float, int]] = []  # (answered at, seconds, status)
        self.held: list[tuple[str, float]] = []  # (first seat, 201 arrival)
        self.checkouts: list[tuple[float, float, int]] = []
        self.bought: list[str] = []  # seats this worker's users were told they bought
        self.queue_stats: list[tuple[float, int, int, int]] = []  # (t, waiting, serving, -1)

    @property
    def seats_path(self) -> str:
        return f"/topic/events/{self.cfg.event_id}/seats"

    # -- 1. connect ----------------------------------------------------------------------------

    async def connect(self) -> dict[str, Any]:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        self.pools = [RestPool(p, cfg.rest_concurrency, cfg.request_timeout) for p in cfg.ports]
        t0 = time.monotonic()

        def opener(buyer: Buyer) -> Callable[[], Any]:
            async def open_one() -> Client:
                buyer.admitted = loop.create_future()
                ep = Endpoint("127.0.0.1", cfg.ports[buyer.node], "/ws", "/user/queue/position")
                session = await open_session(
                    ep,
                    passcode=buyer.token,
                    on_message=buyer.on_message,
                    subscribe=False,
                    timeout=cfg.connect_timeout,
                )
                try:
                    await session.subscribe("/user/queue/position", "position", timeout=30)
                    await session.subscribe(self.seats_path, "seats", timeout=30)
                except BaseException:
                    session.close()
                    raise
                buyer.session = session
                return session

            return open_one

        opened = await open_many(
            [opener(b) for b in self.buyers],
            concurrency=cfg.connect_concurrency,
            on_error=lambda text: self.errors.add(f"connect, {text}"),
            wait_s=cfg.phase_timeout,
        )
        if cfg.index == 0:  # one session follows the public queue figures, for the plot
            ep = Endpoint("127.0.0.1", cfg.ports[0], "/ws", f"/topic/events/{cfg.event_id}/queue")
            with contextlib.suppress(Exception):
                self.stats_session = await open_session(
                    ep, passcode=self.buyers[0].token, on_message=self._on_queue_stats
                )
        return {"connected": len(opened.sessions), "seconds": time.monotonic() - t0}

    def _on_queue_stats(self, message: Message) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            data = json.loads(message.body)
            self.queue_stats.append(
                (time.monotonic(), int(data["waiting"]), int(data["serving"]),
                 int(data.get("active", -1)))
            )  # fmt: skip

    # -- 2. join -------------------------------------------------------------------------------

    async def join(self) -> dict[str, Any]:
        latencies: list[float] = []
        joined = 0

        async def one(buyer: Buyer) -> None:
            nonlocal joined
            if buyer.session is None:
                return
            path = f"/api/events/{self.cfg.event_id}/queue"
            try:
                status, body, _, seconds = await self.pools[buyer.node].call(
                    "POST", path, buyer.token
                )
            except (OSError, TimeoutError, HttpError) as exc:
                self.errors.add(f"join: {describe(exc)}")
                return
            latencies.append(seconds)
            if status == 200:
                joined += 1
            else:
                self.errors.add(f"join HTTP {status}: {body[:160].decode('utf-8', 'replace')}")

        t0 = time.monotonic()
        await asyncio.gather(*(one(b) for b in self.buyers))
        return {"joined": joined, "latencies": latencies, "seconds": time.monotonic() - t0}

    # -- 3. the journey ------------------------------------------------------------------------

    async def journey(self, t_open: float, deadline: float) -> dict[str, Any]:
        self.t_open = t_open
        tasks = [asyncio.create_task(self._buy(b)) for b in self.buyers if b.session is not None]
        # Counted by callbacks: asyncio.wait on 5,000 tasks four times a second took a tenth of
        # this process's CPU, which the node on the same machine would rather have.
        left = len(tasks)

        def finished(_: asyncio.Task[None]) -> None:
            nonlocal left
            left -= 1

        for task in tasks:
            task.add_done_callback(finished)
        while left and time.monotonic() < deadline:
            await asyncio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
            if self.view.sold_out():
                # Every seat is sold: nobody still waiting can buy (the waiting room does not
                # say so itself), so they end "sold_out"; buyers under way finish.
                for buyer in self.buyers:
                    if buyer.admitted is not None and not buyer.admitted.done():
                        buyer.admitted.set_result(("sold_out", None))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {"finished": sum(b.outcome != "unfinished" for b in self.buyers)}

    def _pick(self) -> list[str]:
        avail = self.view.available()
        if not avail:
            return []
        count = min(len(avail), self.rng.randint(1, MAX_SEATS_PER_USER))
        span = len(avail) - count + 1
        if self.rng.random() < self.cfg.hot_share:
            span = max(1, min(span, int(len(avail) * self.cfg.hot_fraction)))
        start = self.rng.randrange(span)
        return avail[start : start + count]

    def _end(self, buyer: Buyer, outcome: str) -> None:
        buyer.outcome = outcome
        buyer.ended_at = time.monotonic()

    async def _buy(self, buyer: Buyer) -> None:
        cfg = self.cfg
        assert buyer.admitted is not None
        state, token = await buyer.admitted
        if state != "admitted" or token is None:
            self._end(buyer, "sold_out" if state in ("sold_out", "closed") else "expired")
            return
        pool = self.pools[buyer.node]
        hold_id: str | None = None
        try:
            for _ in range(cfg.attempts):
                seats = self._pick()
                if not seats:
                    self._end(buyer, "sold_out")
                    return
                status, body, _, seconds = await pool.call(
                    "POST", f"/api/events/{cfg.event_id}/holds", buyer.token,
                    {"seats": seats}, f"X-Admission-Token: {token}\r\n",
                )  # fmt: skip
                now = time.monotonic()
                self.holds.append((now, seconds, status))
                if status == 201:
                    hold_id = json.loads(body)["hold_id"]
                    self.held.append((seats[0], now))
                    break
                if status == 409:
                    data = json.loads(body)
                    conflicts = data.get("conflicts") or []
                    self.view.hints.update(conflicts)
                    if not conflicts and data.get("type", "").endswith("sale_closed"):
                        self._end(buyer, "sold_out")
                        return
                    continue
                self.errors.add(f"hold HTTP {status}: {body[:160].decode('utf-8', 'replace')}")
                self._end(buyer, "error")
                return
            if hold_id is None:
                self._end(buyer, "gave_up")
                return
            if cfg.think_s > 0:
                await asyncio.sleep(cfg.think_s)
            status, body, _, seconds = await pool.call(
                "POST", f"/api/holds/{hold_id}/checkout", buyer.token,
                {"payment": {"method": "card", "token": "tok_visa"},
                 "email": f"{buyer.name}@example.com"},
                f"Idempotency-Key: {uuid.uuid4().hex}\r\n",
            )  # fmt: skip
            now = time.monotonic()
            self.checkouts.append((now, seconds, status))
            if status == 201:
                order = json.loads(body)
                self.bought.extend(t["seat_id"] for t in order.get("tickets", []))
                self._end(buyer, "paid")
            else:
                self.errors.add(f"checkout HTTP {status}: {body[:160].decode('utf-8', 'replace')}")
                self._end(buyer, "error")
        except (OSError, TimeoutError, HttpError, ValueError, KeyError) as exc:
            self.errors.add(f"journey: {describe(exc)}")
            self._end(buyer, "error")

    # -- 4. report -----------------------------------------------------------------------------

    def report(self, t_end: float) -> dict[str, Any]:
        interval = self.cfg.interval
        lateness: list[float] = []
        outcomes = dict.fromkeys(OUTCOMES, 0)
        dropped = 0
        admitted_at: list[float] = []
        paid_by_node = [0] * len(self.cfg.ports)
        for buyer in self.buyers:
            outcomes[buyer.outcome] += 1
            paid_by_node[buyer.node] += buyer.outcome == "paid"
            lateness.extend(max(0.0, g - interval) for g in buyer.gaps)
            if buyer.last_waiting is not None and buyer.outcome == "unfinished":
                lateness.append(max(0.0, t_end - buyer.last_waiting - interval))
            if buyer.admitted_at is not None:
                admitted_at.append(buyer.admitted_at)
            if buyer.session is not None and buyer.session.closed:
                dropped += 1
        return {
            "outcomes": outcomes,
            "paid_by_node": paid_by_node,
            "lateness": [round(x, 4) for x in lateness],
            "admitted_at": admitted_at,
            "holds": self.holds,
            "held": self.held,
            "checkouts": self.checkouts,
            "bought": self.bought,
            "seen": [o.observer.seen for o in self.buyers if o.observer is not None],
            "arrived": [o.observer.arrived for o in self.buyers if o.observer is not None],
            "queue_stats": self.queue_stats,
            "seq_gaps": self.seq_gaps,
            "dropped": dropped,
            "errors": dict(self.errors),
        }

    def close(self) -> None:
        for buyer in self.buyers:
            if buyer.session is not None:
                buyer.session.close()
        for pool in self.pools:
            pool.close()


async def worker_main(conn: Connection, cfg: WorkerConfig) -> None:
    worker = Worker(cfg)
    conn.send({"type": "ready", "pid": os.getpid()})
    try:
        while True:
            msg = await recv_msg(conn, cfg.budget_s)
            kind = msg["type"]
            if kind == "connect":
                async with asyncio.timeout(cfg.phase_timeout):
                    conn.send(await worker.connect())
            elif kind == "join":
                async with asyncio.timeout(cfg.phase_timeout):
                    conn.send(await worker.join())
            elif kind == "journey":
                conn.send(await worker.journey(msg["t_open"], msg["deadline"]))
            elif kind == "report":
                conn.send(worker.report(msg["t_end"]))
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
# Main process.
# ---------------------------------------------------------------------------------------------


class Prober(threading.Thread):
    """``GET /healthz`` on every node every ``interval`` s: (sent at, seconds) per answer."""

    def __init__(self, ports: Sequence[int], interval: float) -> None:
        super().__init__(daemon=True)
        self.ports = list(ports)
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        conns = {p: http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in self.ports}
        while not self.stopping.is_set():
            t_next = time.monotonic() + self.interval
            for port, conn in conns.items():
                t = time.monotonic()
                try:
                    conn.request("GET", "/healthz")
                    response = conn.getresponse()
                    response.read()
                    if response.status == 200:
                        self.samples.append((t, time.monotonic() - t))
                    else:
                        self.failures += 1
                except (OSError, http.client.HTTPException):
                    self.failures += 1
                    conn.close()
                    conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            self.stopping.wait(max(0.0, t_next - time.monotonic()))
        for conn in conns.values():
            conn.close()


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


def renderers_us(processes: Sequence[int]) -> float:
    """The whole CPU time of the children of ``processes`` but the processes themselves (a
    supervisor's workers are among its children)."""
    children = (c for q in processes for c in children_of(q) if c not in processes)
    return sum(cpu_us(c) or 0.0 for c in children)


def mariadb_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                    return int(entry.name)
    return None


def start_nodes(
    args: argparse.Namespace, database_url: str, redis_url: str | None, tmp: Path
) -> list[tuple[ChildProcess, int]]:
    """Every node at once (they start in parallel), then wait for each /readyz."""
    flags = [
        "--max-connections", str(args.users + 1000),
        "--rest-rate-per-ip", "1e9", "--rest-rate-per-user", "1e9", "--max-send-rate", "1e9",
        "--position-interval-s", str(args.interval),
        "--payment-latency-ms", str(args.payment_latency_ms),
        "--outbox-dir", str(tmp / "outbox"),  # the order e-mails, kept out of the checkout
        *(["--redis-url", redis_url] if redis_url else []),
        # a run of its own in a Redis it may share (--redis-url): keys apart from anyone's
        *(["--redis-key-prefix", f"journey-{uuid.uuid4().hex[:8]}:"] if redis_url else []),
        *(["--workers", str(args.workers)] if args.workers > 1 else []),
        *shlex.split(args.server_cmd_extra),
    ]  # fmt: skip
    nodes: list[tuple[ChildProcess, int]] = []
    try:
        for i in range(args.nodes):
            port = free_port()
            cmd = serve_cmd(args.python, port, database_url, args.secret,
                            [*flags, "--node-id", f"journey-{i}"])  # fmt: skip
            if args.profile_server and i == 0:
                out = Path(args.profile_server).resolve()
                out.mkdir(parents=True, exist_ok=True)
                assert cmd[1:3] == ["-m", "server"]
                cmd[1:3] = [str(Path(__file__).with_name("profiled.py")), str(out / "node0.prof")]
            nodes.append((ChildProcess(cmd, tmp / f"node{i}.log", f"node {i}"), port))
        for child, port in nodes:
            child.wait_ready(
                lambda p=port: http_status(p, "/readyz") == 200,  # type: ignore[misc]
                args.startup_timeout,
                "GET /readyz not 200",
            )
        if args.workers > 1:  # /readyz reached one worker: wait until the cluster has them all
            (admin,) = mint_tokens(args.secret, [("bench-admin", "admin")])
            wanted = {f"journey-{i}-w{w}" for i in range(args.nodes)
                      for w in range(1, args.workers + 1)}  # fmt: skip
            nodes[0][0].wait_ready(
                lambda: wanted <= listed_nodes(nodes[0][1], admin),
                args.startup_timeout,
                f"{len(wanted)} workers in /api/admin/stats",
            )
    except BaseException:
        for child, _ in nodes:
            child.stop()
        raise
    return nodes


def create_event(args: argparse.Namespace, port: int, admin: str) -> int:
    rows, rest = divmod(args.seats, SEATS_PER_ROW)
    sections = [{"name": "A", "rows": rows, "seats_per_row": SEATS_PER_ROW, "tier": "T"}]
    if rest:
        sections.append({"name": "B", "rows": 1, "seats_per_row": rest, "tier": "T"})
    sections = [s for s in sections if s["rows"]]
    status, event = http_json(port, "POST", "/api/admin/events", admin, {
        "name": "Journey bench", "venue": "Arena", "starts_at": iso_in(30 * 86400),
        "sale_opens_at": iso_in(-60), "sale_closes_at": iso_in(86400), "status": "paused",
        "waiting_room": True, "admission_rate": args.admission_rate,
        "max_active_shoppers": args.max_active or args.users, "hold_ttl_s": 600,
        "max_seats_per_user": MAX_SEATS_PER_USER,
        "layout": {"tiers": [{"name": "T", "price_cents": 5000}], "sections": sections},
    })  # fmt: skip
    if status != 201:
        raise BenchError(f"create event: HTTP {status} {event}")
    return int(event["id"])


def integrity(server_url: str, database: str, event_id: int, bought: list[str]) -> dict[str, Any]:
    """What the tables say after the run (see the module docstring)."""
    conn = _admin(server_url)
    queries = {
        "seats_with_two_valid_tickets": (
            "SELECT COUNT(*) FROM (SELECT seat_id FROM tickets WHERE event_id=%s AND "
            "status='valid' GROUP BY seat_id HAVING COUNT(*) > 1) x"
        ),
        "paid_orders_without_all_tickets": (
            "SELECT COUNT(*) FROM orders o JOIN holds h ON h.id = o.hold_id WHERE o.event_id=%s "
            "AND o.status='paid' AND h.seat_count <> (SELECT COUNT(*) FROM tickets t "
            "WHERE t.order_id = o.id AND t.status='valid')"
        ),
        "paid_orders_without_charge": (
            "SELECT COUNT(*) FROM orders o LEFT JOIN test_gateway_charges c ON "
            "c.payment_id = o.payment_id AND c.status='charged' AND c.amount_cents = "
            "o.amount_cents WHERE o.event_id=%s AND o.status='paid' AND c.id IS NULL"
        ),
        "charges_without_paid_order": (
            "SELECT COUNT(*) FROM test_gateway_charges c JOIN payments p ON p.id = c.payment_id "
            "JOIN holds h ON h.id = p.hold_id LEFT JOIN orders o ON o.payment_id = "
            "c.payment_id AND o.status='paid' WHERE h.event_id=%s AND c.status='charged' "
            "AND o.id IS NULL"
        ),
        "paid_orders": "SELECT COUNT(*) FROM orders WHERE event_id=%s AND status='paid'",
        "sold_seats": "SELECT COUNT(*) FROM seats WHERE event_id=%s AND order_id IS NOT NULL",
        "valid_tickets": "SELECT COUNT(*) FROM tickets WHERE event_id=%s AND status='valid'",
    }
    out: dict[str, Any] = {}
    try:
        conn.select_db(database)
        with conn.cursor() as cur:
            for name, sql in queries.items():
                try:
                    cur.execute(sql, (event_id,))
                    out[name] = int(cur.fetchone()[0])
                except Exception as exc:  # a schema drift must show, not kill the report
                    out[name] = f"query failed: {describe(exc)}"
    finally:
        conn.close()
    out["seats_told_sold_twice"] = len(bought) - len(set(bought))
    out["ok"] = (
        out.get("seats_with_two_valid_tickets") == 0
        and out.get("paid_orders_without_all_tickets") == 0
        and out.get("paid_orders_without_charge") == 0
        and out.get("charges_without_paid_order") == 0
        and out.get("sold_seats") == out.get("valid_tickets")
        and out["seats_told_sold_twice"] == 0
    )
    return out


def per_second(times: Sequence[float], t0: float, t1: float) -> list[int]:
    counts = [0] * (int(t1 - t0) + 1)
    for t in times:
        if t0 <= t <= t1:
            counts[int(t - t0)] += 1
    return counts


def plot(out_dir: Path, t0: float, t1: float, data: dict[str, Any]) -> list[str]:
    """PNG plots of the journey; the files written."""
    import matplotlib  # noqa: PLC0415  (an extra; only when plotting)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    holds, checkouts = data["holds"], data["checkouts"]
    fig, axes = plt.subplots(5, 1, figsize=(11, 16), sharex=True)
    ax = axes[0]
    ax.plot(per_second([t for t, _, s in holds if s == 201], t0, t1), label="holds 201/s")
    ax.plot(per_second([t for t, _, s in holds if s == 409], t0, t1), label="conflicts 409/s")
    ax.plot(per_second([t for t, _, s in checkouts if s == 201], t0, t1), label="paid/s")
    ax.set_ylabel("per second")
    ax.legend()
    ax = axes[1]
    ax.plot(per_second(data["admitted_at"], t0, t1), label="admissions/s", color="tab:green")
    ax.set_ylabel("admitted per second")
    ax.legend()
    for ax, series, name in ((axes[2], holds, "hold"), (axes[3], checkouts, "checkout")):
        ax.scatter([t - t0 for t, _, _ in series], [s * 1000 for _, s, _ in series], s=2,
                   alpha=0.4, label=f"{name} latency")  # fmt: skip
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.legend()
    ax = axes[4]
    stats = data["queue_stats"]
    ax.plot([t - t0 for t, *_ in stats], [w for _, w, _, _ in stats], label="waiting")
    ax.plot([t - t0 for t, *_ in stats], [s for _, _, s, _ in stats], label="admitted so far")
    ax.set_ylabel("users")
    ax.set_xlabel("seconds since the sale opened")
    ax.legend()
    fig.suptitle(data["title"])
    fig.tight_layout()
    path = out_dir / "journey.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    written.append(str(path))
    return written


def summarize(
    args: argparse.Namespace, reports: list[dict[str, Any]], t_open: float, t_end: float
) -> dict[str, Any]:
    outcomes = dict.fromkeys(OUTCOMES, 0)
    for r in reports:
        for k, v in r["outcomes"].items():
            outcomes[k] += v
    holds = [tuple(h) for r in reports for h in r["holds"]]
    checkouts = [tuple(c) for r in reports for c in r["checkouts"]]
    held = [tuple(h) for r in reports for h in r["held"]]
    propagation = []
    for seen in (s for r in reports for s in r["seen"]):
        for seat, t201 in held:
            t = seen.get(seat)
            if t is not None:
                propagation.append(max(0.0, t - t201))
    arrivals: dict[int, list[float]] = {}
    for arrived in (a for r in reports for a in r["arrived"]):
        for seq, t in arrived.items():
            arrivals.setdefault(seq, []).append(t)
    paid_at = [t for t, _, s in checkouts if s == 201]
    return {
        "outcomes": outcomes,
        "paid_by_node": [
            sum(col) for col in zip(*(r["paid_by_node"] for r in reports), strict=True)
        ],
        "holds": sum(1 for *_, s in holds if s == 201),
        "hold_conflicts": sum(1 for *_, s in holds if s == 409),
        "checkouts": len(paid_at),
        "hold_ms": ms_summary(s for _, s, _ in holds),
        "checkout_ms": ms_summary(s for _, s, _ in checkouts),
        "propagation_ms": ms_summary(propagation),
        "propagation_samples": len(propagation),
        "delta_spread_ms": ms_summary(max(ts) - min(ts) for ts in arrivals.values() if len(ts) > 1),
        "position_lateness_ms": ms_summary(x for r in reports for x in r["lateness"]),
        "last_paid_s": round(max(paid_at) - t_open, 2) if paid_at else None,
        "journey_s": round(t_end - t_open, 2),
        "seq_gaps": sum(r["seq_gaps"] for r in reports),
        "dropped": sum(r["dropped"] for r in reports),
        "_timeline": {
            "holds": holds,
            "checkouts": checkouts,
            "admitted_at": [t for r in reports for t in r["admitted_at"]],
            "queue_stats": sorted(tuple(q) for r in reports for q in r["queue_stats"]),
        },
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    errors = Errors()
    redis: ChildProcess | None = None
    nodes: list[tuple[ChildProcess, int]] = []
    workers: list[tuple[BaseProcess, Connection]] = []
    database = None
    prober: Prober | None = None
    try:
        database, database_url = create_database(args.server_url, "ch_journey")
        result["database"] = database
        migrate(args.python, database_url)
        redis_url = args.redis_url or None
        if (args.nodes > 1 or args.workers > 1) and redis_url is None:
            redis, redis_port = start_redis(tmp, args.startup_timeout)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
        nodes = start_nodes(args, database_url, redis_url, tmp)
        ports = [port for _, port in nodes]
        names = [f"jb-{i:06d}" for i in range(args.users)]
        *tokens, admin = mint_tokens(
            args.secret, [*((n, "user") for n in names), ("bench-admin", "admin")]
        )
        event_id = create_event(args, ports[0], admin)
        result["event_id"] = event_id
        users = [(n, t, i % args.nodes) for i, (n, t) in enumerate(zip(names, tokens, strict=True))]

        procs = max(1, min(args.client_procs, args.users))
        for i in range(procs):
            cfg = WorkerConfig(
                index=i,
                ports=ports,
                event_id=event_id,
                users=users[i::procs],
                observers=args.observers,
                interval=args.interval,
                attempts=args.attempts,
                hot_share=args.hot_share,
                hot_fraction=args.hot_fraction,
                think_s=args.think_ms / 1000,
                seed=args.seed,
                rest_concurrency=max(1, args.rest_concurrency // procs),
                connect_concurrency=max(1, args.connect_concurrency // procs),
                request_timeout=args.request_timeout,
                connect_timeout=args.connect_timeout,
                phase_timeout=phase_timeout(args),
                budget_s=budget(args),
                verbose=not args.quiet,
            )
            workers.append(start_worker(worker_main, cfg))
        client_pids = [os.getpid()]
        for proc, conn in workers:
            if not conn.poll(60):
                raise BenchError(f"worker {proc.pid} did not start")
            client_pids.append(conn.recv()["pid"])

        t = time.monotonic()
        connected = sum(a["connected"] for a in exchange(workers, {"type": "connect"},
                                                         phase_timeout(args) + 10))  # fmt: skip
        result["connected"] = connected
        result["connect_s"] = round(time.monotonic() - t, 2)
        log.info("%d/%d sessions in %.1f s", connected, args.users, result["connect_s"])
        joins = exchange(workers, {"type": "join"}, phase_timeout(args) + 10)
        result["joined"] = sum(j["joined"] for j in joins)
        result["join_ms"] = ms_summary(x for j in joins for x in j["latencies"])
        log.info("%d joined the pre-queue", result["joined"])
        time.sleep(args.settle)

        node_pids = [child.pid for child, _ in nodes]
        # --workers > 1: a node is its supervisor and its workers (each a process on a core)
        workers_of = {p: worker_pids(p) for p in node_pids}
        processes_of = {p: [p, *workers_of[p]] for p in node_pids}
        db_pid = mariadb_pid()
        redis_pid = redis.pid if redis else None
        all_pids = [*(q for p in node_pids for q in processes_of[p]), *client_pids,
                    db_pid or 0, redis_pid or 0]  # fmt: skip
        prober = Prober(ports, args.probe_ms / 1000)
        prober.start()
        scraped = scrape.collect(ports)
        a = CpuSample.take(all_pids)
        t_open = time.monotonic()
        status, body = http_json(ports[0], "PATCH", f"/api/admin/events/{event_id}", admin,
                                 {"status": "on_sale"})  # fmt: skip
        if status != 200:
            raise BenchError(f"PATCH status on_sale: HTTP {status} {body}")
        log.info("sale open: %d users, %d seats", args.users, args.seats)
        ends = exchange(
            workers, {"type": "journey", "t_open": t_open, "deadline": t_open + args.max_seconds},
            args.max_seconds + 60,
        )  # fmt: skip
        t_end = time.monotonic()
        b = CpuSample.take(all_pids)
        result["server_ms"] = scrape.summary(scrape.collect(ports), scraped)
        prober.stopping.set()
        prober.join(timeout=15)
        result["finished"] = sum(e["finished"] for e in ends)
        span = b.mono - a.mono
        machine = machine_pct(a, b)
        result["cpu_pct"] = {
            "nodes": [pct(used_us(a, b, processes_of[p]), span) for p in node_pids],
            "workers": [[pct(used_us(a, b, [w]), span) for w in workers_of[p]] for p in node_pids],
            # born during the journey (the e-mail renderer): its whole life, over the journey
            "node_children": [pct(renderers_us(processes_of[p]), span) for p in node_pids],
            "clients": pct(used_us(a, b, client_pids), span),
            "redis": pct(used_us(a, b, [redis_pid]), span) if redis_pid else None,
            "mariadbd": pct(used_us(a, b, [db_pid]), span) if db_pid else None,
            "machine": None if machine is None else round(machine * (os.cpu_count() or 1), 1),
            "other": other_pct(a, b),
        }
        result["rss_mib"] = {
            "nodes": [to_mib(sum(rss_kib(q) or 0 for q in processes_of[p])) for p in node_pids],
            "workers": [[to_mib(rss_kib(w)) for w in workers_of[p]] for p in node_pids],
        }
        reports = exchange(workers, {"type": "report", "t_end": t_end}, 120)
        for r in reports:
            errors.merge([r["errors"]])
        summary = summarize(args, reports, t_open, t_end)
        timeline = summary.pop("_timeline")
        result.update(summary)
        result["healthz_ms"] = ms_summary(s for _, s in prober.samples)
        result["healthz_failures"] = prober.failures
        bought = [s for r in reports for s in r["bought"]]
        result["integrity"] = integrity(args.server_url, database, event_id, bought)
        sold = result["integrity"].get("sold_seats")
        result["seats_sold"] = sold
        result["sold_out_s"] = result["last_paid_s"] if sold == args.seats else None
        if result["dropped"]:
            errors.add(f"{result['dropped']} sessions dropped")
        if not args.no_plots:
            try:
                title = f"journey: {args.users} users, {args.seats} seats, {args.nodes} node(s)"
                result["plots"] = plot(Path(args.plot_dir), t_open, t_end,
                                       {**timeline, "title": title})  # fmt: skip
            except ImportError:
                result["plots"] = "matplotlib not installed (pip install -e '.[test]')"
        result["targets"] = {
            f"{name}_p99_le_{limit}ms": (
                (fig := result[key].get("p99")) is not None and fig <= limit
            )
            for name, limit, key in (
                ("hold", TARGETS_MS["hold"], "hold_ms"),
                ("checkout", TARGETS_MS["checkout"], "checkout_ms"),
                ("propagation", TARGETS_MS["propagation"], "propagation_ms"),
                ("lateness", TARGETS_MS["lateness"], "position_lateness_ms"),
                ("healthz", TARGETS_MS["healthz"], "healthz_ms"),
            )
        }
    except (BenchError, SetupError) as exc:
        errors.add(str(exc))
        log.error("%s", exc)
    except Exception as exc:
        errors.add(f"internal: {describe(exc)}")
        log.exception("benchmark failed")
    finally:
        if prober is not None:
            prober.stopping.set()
        stop_workers(workers, timeout=10)
        result["node_exit_codes"] = [child.stop() for child, _ in nodes]
        result["node_logs"] = [log_summary(child.log_path, 5) for child, _ in nodes]
        if redis is not None:
            redis.stop()
        if database is not None and not args.keep:
            try:
                drop_database(args.server_url, database)
            except Exception as exc:
                errors.add(f"drop database: {describe(exc)}")
    result["errors"] = errors.as_list()
    return result


def phase_timeout(args: argparse.Namespace) -> float:
    return float(args.users / 50 + 60)


def budget(args: argparse.Namespace) -> float:
    return float(3 * phase_timeout(args) + args.max_seconds + args.startup_timeout + 300)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="The whole on-sale, end to end (one JSON object on stdout).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--users", type=int, default=2000, help="buyers (sessions)")
    p.add_argument("--seats", type=int, default=2000, help="seats of the event (rows of 25)")
    p.add_argument("--nodes", type=int, default=1, help="concert-hub nodes (>1: own redis)")
    p.add_argument(
        "--workers", type=int, default=1, help="processes per node: serve --workers (>1: own redis)"
    )
    p.add_argument("--admission-rate", type=float, default=100.0, help="admissions per second")
    p.add_argument(
        "--max-active", type=int, default=0, help="max active shoppers (0: as many as users)"
    )
    p.add_argument("--interval", type=float, default=2.0, help="--position-interval-s")
    p.add_argument("--attempts", type=int, default=10, help="hold attempts per buyer")
    p.add_argument("--hot-share", type=float, default=0.6, help="picks among the best seats")
    p.add_argument("--hot-fraction", type=float, default=0.2, help="the best seats: this share")
    p.add_argument("--think-ms", type=float, default=200.0, help="hold → checkout pause")
    p.add_argument("--payment-latency-ms", type=int, default=50, help="test gateway latency")
    p.add_argument("--observers", type=int, default=20, help="propagation observers per worker")
    p.add_argument("--probe-ms", type=float, default=100.0, help="/healthz probe interval")
    p.add_argument("--client-procs", type=int, default=2, help="client worker processes")
    p.add_argument("--rest-concurrency", type=int, default=512, help="REST connections in all")
    p.add_argument("--connect-concurrency", type=int, default=256, help="handshakes in flight")
    p.add_argument("--max-seconds", type=float, default=600.0, help="journey time limit")
    p.add_argument("--settle", type=float, default=1.0, help="quiet seconds before opening")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--request-timeout", type=float, default=60.0)
    p.add_argument("--connect-timeout", type=float, default=30.0)
    p.add_argument("--startup-timeout", type=float, default=60.0)
    p.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="MariaDB server")
    p.add_argument(
        "--redis-url",
        default="",
        help="use this Redis (cluster mode even for one node) "
        "instead of starting a private redis-server when --nodes > 1",
    )
    p.add_argument("--keep", action="store_true", help="keep the database")
    p.add_argument("--plot-dir", default="bench-results/journey", help="where the PNGs go")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--profile-server", default="", help="cProfile node 0 into DIR/node0.prof")
    p.add_argument("--secret", default=BENCH_SECRET)
    p.add_argument("--python", default=DEFAULT_PYTHON)
    p.add_argument(
        "--server-cmd-extra",
        default="",
        help='extra flags for `server serve`; write --server-cmd-extra="--flag value"',
    )
    p.add_argument("--quiet", action="store_true", help="only warnings and errors on stderr")
    args = p.parse_args(argv)
    if args.users < 1 or args.seats < 1 or args.nodes < 1 or args.workers < 1:
        p.error("--users, --seats, --nodes and --workers must be positive")
    if args.profile_server and args.workers > 1:
        p.error("--profile-server profiles one process: use it with --workers 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.quiet)
    raise_nofile()
    start_watchdog(budget(args))
    sigterm_interrupts()
    out: dict[str, Any] = {
        "users": args.users,
        "seats": args.seats,
        "nodes": args.nodes,
        "workers": args.workers,
        "admission_rate": args.admission_rate,
        "max_active": args.max_active,
        "client_procs": args.client_procs,
        "command": shlex.join(
            ["scripts/bench_journey.py", *(sys.argv[1:] if argv is None else argv)]
        ),
    }
    try:
        with tempfile.TemporaryDirectory(prefix="bench-journey-") as tmp:
            out.update(run(args, Path(tmp)))
    except KeyboardInterrupt as exc:
        kill_everything()
        out["error"] = f"interrupted ({exc})"
        print_json(out)
        return 130
    print_json(out)
    ok = (
        not out["errors"]
        and out.get("finished") == out.get("connected") == args.users
        and out.get("outcomes", {}).get("error", 1) == 0
        and out.get("integrity", {}).get("ok")
    )
    return 0 if ok else 1
