"""Hot-sale hold benchmark on MariaDB: many clients racing for the seats of one event.

Usage::

    python scripts/bench_holds.py                                   # 2,000 users, 500 seats, C=500
    python scripts/bench_holds.py --users 500 --seats 100 --concurrency 500
    python scripts/bench_holds.py --strategy concert-hub --duration 10
    python scripts/bench_holds.py --strategy best-available         # explicit seats beside best
    python scripts/bench_holds.py --database-url mysql+aiomysql://root@127.0.0.1:3306/mydb

Prints ONE JSON object on stdout; progress goes to stderr (``--json-only``: warnings only).

Database
--------
Without ``--database-url`` a fresh database ``ch_bench_<hex>`` is created on the MariaDB server of
``--server-url`` (default ``mysql+aiomysql://root@127.0.0.1:3306``, as ``tests/conftest.py``) and
dropped at the end, also after an error, Ctrl-C or SIGTERM (``--keep`` keeps it). The schema is
made with :func:`booking.migrate.upgrade`. Every strategy gets its own event, created with
:func:`booking.catalog.create_event` (on sale now, ``--seats`` seats in rows of 25 in layout
order, hold TTL 3600 s so nothing expires during the run, at most 4 seats per user), so each
starts with all seats free. Every strategy gets a fresh engine from
:func:`server.database.make_engine` (the product's pool: 20 + 10 connections on MariaDB), warmed
with one round trip on every pooled connection before the clock starts.

Workload
--------
``--users`` users each want ``1..4`` seats (uniform). A request is a contiguous block of seats in
layout order (front rows first): its first seat is drawn, with probability ``--hot-share``
(0.6), uniformly from the ``--hot-fraction`` (0.2) best seats, otherwise uniformly from all
seats. Demand (about 2.5 seats per user) is several times the supply and concentrated on the
front rows, so requests overlap heavily. Attempt ``k`` of user ``u`` is a pure function of
``(--seed, u, k)``, so every strategy is offered the same requests in the same order.

``--concurrency`` workers (asyncio tasks, one event loop, uvloop like the server) take users from
one queue in order. A user whose attempt conflicts goes to the back of the queue for a new
attempt (a new seat set) until it has made ``--rounds`` attempts (default 1: each user tries
once); ``--duration T`` instead keeps users who have no hold trying for T seconds (rounds then
unlimited unless given). A user with a hold stops. Once the seats are gone every further attempt
is a conflict, which concert-hub answers from memory: ``--duration`` figures describe the
after-rush steady state more than the rush. The clients run in the benchmark process and call the
booking core directly (no HTTP): this measures the hold decision, not the REST edge. A worker
yields to the event loop after each answer (an answer from memory never suspends, and a real
client would wait for the network), so workers take turns.

Strategies
----------
``concert-hub``
    The product path, ``SeatHolds.hold(event_id, user, seat_ids)`` built like
    ``server/app.py`` does. Its in-memory seat map answers requests for seats it knows are
    taken (``from_memory``); the rest go to the database (``from_database``): one transaction
    with the per-user limit query and one conditional ``UPDATE seats … WHERE`` free that claims
    all seats or none, then ``INSERT`` of the hold; a short claim rolls back and a second query
    names the conflicting seats. The seat map is loaded before the clock starts (a serving node
    has it loaded).
``concert-hub-db-only``
    :func:`booking.holds.place_hold` called directly: the same database decision for every
    request, without the in-memory fast path.
``concert-hub-best``
    Best available, ``SeatHolds.hold_best(event_id, user, BlockRequest(count))``, built like
    ``concert-hub``: each attempt asks for as many seats as the same attempt of the explicit
    workload names (1..4), and the server picks them (:mod:`booking.best_available`: the seat
    map proposes the best block, the same claim decides it, a block lost to a race is followed
    by the next). A refusal is ``NoBlockLeft`` (no block of that size left), counted with the
    ``conflicts``. ``--strategy best-available`` runs it beside ``concert-hub`` (explicit
    seats) and reports both in ``best_vs_explicit``.
``baseline``
    The classic pessimistic lock, as the original Spring project did it, on the same engine and
    pool: in one transaction the same per-user limit query, then ``SELECT … FROM seats WHERE
    event_id=? AND seat_id=? FOR UPDATE`` per seat in seat-id order (``--baseline-lock batch``:
    one ``SELECT … WHERE seat_id IN (…) ORDER BY seat_id FOR UPDATE``), a check in Python that
    each seat is free (not blocked, not sold, no unexpired hold); if any is taken, rollback and
    a conflict naming every taken seat, as the product's answer does (``--baseline-stop-at-first``:
    stop locking at the first taken seat and name only it), else one ``UPDATE`` of the seats and
    the ``INSERT`` of the hold (one statement, kinder to the baseline than JPA's one per seat).
    Deadlocks and lock-wait timeouts are retried like the product's (``in_transaction``).

Method and fields
-----------------
For each strategy, per attempt, the latency is the time from the call to its answer (waiting for a
pooled connection included). ``decisions`` = ``successes`` (a hold was placed) + ``conflicts``
(``SeatsUnavailable``: all-or-nothing refusal; ``NoBlockLeft`` for best available); ``limited``
(``LimitExceeded``, not expected here) and ``errors`` (anything else, including
``--attempt-timeout``) are counted apart, with ``error_kinds`` naming them. ``decisions_per_s`` =
decisions / ``elapsed_s``, the time from the start of the workers to the last answer.
``latency_ms`` {p50, p90, p99, max, mean} covers every decision (nearest-rank percentiles).
``from_memory`` / ``from_database``: the booking core's ``hold_decided`` hook (concert-hub only;
the others decide everything in the database). ``attempts``, ``users_with_hold``, ``seats_held``.
``cpu_pct``: ``bench_process`` (this process, 100 = one core), ``mariadbd`` (the server process,
from /proc, null if not found), ``machine`` (all cores, 100 = every core busy), ``other_processes``
(machine minus the two, 100 = one core: anything else running on the machine competes for the
cores), measured over ``elapsed_s``.

``verification`` (from the tables after the run): ``active_holds``; ``held_seats`` (seats with an
unexpired hold); ``sum_seat_count`` (of active holds; must equal ``held_seats``);
``seats_in_two_holds`` (seats listed in the ``seat_ids`` JSON of more than one active hold);
``holds_not_matching_seats`` (active holds whose ``seat_ids`` are not exactly the seats pointing
at them); ``seats_of_no_active_hold`` (seats pointing at a hold that is not active);
``client_successes_vs_holds`` (holds the clients were told they got vs active holds);
``client_seats_in_two_holds`` (seats the clients were told they hold twice); ``tickets`` and
``double_tickets`` (valid tickets for one seat more than once; none are issued by this run, the
unique index ``(event_id, active_seat_id)`` is reported as ``ticket_unique_index``); ``ok``.

Diagnostics: ``innodb_row_lock`` {``waits``, ``time_ms``}: the server-wide
``Innodb_row_lock_waits`` / ``Innodb_row_lock_time`` counters over the run (row lock waits summed
over all waiters; other clients of the same server would count too). ``database_path``
(concert-hub only; found in the benchmark's client wrapper, which asks the seat map the same
question as the service does, a few set operations per request): ``database_attempts``
(requests the seat map let through to the database), ``database_conflicts`` (of those, refused
by the database), ``overlapping_in_flight`` (database attempts that shared a seat with another
database attempt of this process still in flight when they started), ``overlapping_conflicts``
(of those, refused). ``round_trips`` (``--count-round-trips`` only): pool checkouts that
pinged (a ``COM_PING`` each while the pool has ``pool_pre_ping``), statements, commits,
rollbacks by the code, rollbacks by the pool on return, and their sum per decision.

Top level: ``users``, ``seats``, ``concurrency``, workload parameters, ``strategies``,
``ratio_vs_baseline`` (decisions/s of each strategy over the baseline's), ``best_vs_explicit``
(``--strategy best-available``: decisions/s, p99 and holds of both, and best's decisions/s
over explicit's), ``targets`` (the issue's
targets for concert-hub: >= 1,000 decisions/s, p99 < 250 ms, >= 3x baseline; ``verified``: every
run of every strategy passed), ``cpu_pct`` (per strategy, as above), ``database`` (the name;
``dropped``). With ``--repeat N`` the strategies run N times, interleaved (hub, db-only, baseline,
hub, …) so that a change in the machine's load hits each alike; each strategy then reports its
median run (by decisions/s; the lower middle one for even N) plus ``runs``, a summary of each.

Bounds and exit status
----------------------
Each attempt is bounded by ``--attempt-timeout`` (30 s, then an ``errors`` ``timeout``), each
strategy's run by ``--max-seconds`` (300 s, then ``abandoned``), and the whole process by a
watchdog thread (strategies x repeats x (max-seconds + attempt-timeout + 60) + 120 s) that drops
the temporary database and exits 3. Exit status 0, 1 if a verification failed, 143 when
interrupted (no JSON then).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench.cpu import CpuSample, machine_pct, other_pct, pct, used_us
from bench.harness import install_uvloop, log, print_json, setup_logging, start_watchdog
from bench.mariadb import DEFAULT_SERVER_URL, create_database, drop_database
from bench.stats import ms_summary
from booking import catalog, core, holds
from booking.best_available import BlockRequest
from booking.catalog import EventInfo, EventSpec
from booking.clock import utcnow
from booking.core import BookingPolicy
from booking.errors import LimitExceeded, NoBlockLeft, SeatsUnavailable
from booking.hooks import BookingHooks, HoldDecision
from booking.keyring import Keyring
from booking.layout import LayoutSpec, SectionSpec, TierSpec
from booking.migrate import upgrade
from booking.payments import TestGateway
from booking.schema import holds as holds_table
from booking.schema import seats as seats_table
from booking.schema import tickets as tickets_table
from booking.transactions import COMMITTED, in_transaction
from server.database import make_engine

LATENCY_NAMES = ("p50", "p90", "p99", "max", "mean")


STRATEGIES = ("concert-hub", "concert-hub-db-only", "baseline")
#: ``--strategy`` → the strategies it runs.
STRATEGY_SETS = {
    "both": STRATEGIES,
    "concert-hub": ("concert-hub", "concert-hub-db-only"),
    "baseline": ("baseline",),
    "best-available": ("concert-hub", "concert-hub-best"),
}
SEATS_PER_ROW = 25
HOLD_TTL_S = 3600
MAX_SEATS_PER_USER = 4
SECRET = "bench-holds-secret"

#: A hold attempt: (user, seat ids) → (hold id, seat ids held); raises SeatsUnavailable etc.
AttemptFn = Callable[[str, list[str]], Awaitable[tuple[str, list[str]]]]


# -- workload ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    seed: int
    users: int
    seat_ids: list[str]  # layout order, best first
    hot_fraction: float
    hot_share: float

    def user(self, index: int) -> str:
        return f"bench-user-{index:06d}"

    def request(self, index: int, attempt: int) -> list[str]:
        """Attempt ``attempt`` of user ``index``: 1..4 contiguous seats, hot zone favoured."""
        rng = random.Random(f"{self.seed}/{index}/{attempt}")
        total = len(self.seat_ids)
        count = min(rng.randint(1, MAX_SEATS_PER_USER), total)
        hot = max(1, int(total * self.hot_fraction))
        start = rng.randrange(hot) if rng.random() < self.hot_share else rng.randrange(total)
        start = min(start, total - count)
        return self.seat_ids[start : start + count]


def layout_for(seats: int) -> LayoutSpec:
    """``seats`` seats: sections of up to 200 rows of 25, then one row with the remainder."""
    sections: list[SectionSpec] = []
    full_rows, rest = divmod(seats, SEATS_PER_ROW)
    name = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    while full_rows:
        rows = min(full_rows, 200)
        sections.append(
            SectionSpec(name=next(name), rows=rows, seats_per_row=SEATS_PER_ROW, tier="std")
        )
        full_rows -= rows
    if rest:
        sections.append(SectionSpec(name=next(name), rows=1, seats_per_row=rest, tier="std"))
    return LayoutSpec(tiers=[TierSpec(name="std", price_cents=5000)], sections=sections)


def event_spec(seats: int, label: str) -> EventSpec:
    now = utcnow().replace(microsecond=0)
    return EventSpec(
        name=f"bench-holds {label}",
        venue="Bench Arena",
        starts_at=now + timedelta(days=2),
        sale_opens_at=now - timedelta(hours=1),
        sale_closes_at=now + timedelta(days=1),
        status="on_sale",
        hold_ttl_s=HOLD_TTL_S,
        max_seats_per_user=MAX_SEATS_PER_USER,
        layout=layout_for(seats),
    )


# -- CPU accounting -----------------------------------------------------------------------------


def find_mariadbd() -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in ("mariadbd", "mysqld"):
            return int(entry.name)
    return None


def cpu_report(start: CpuSample, end: CpuSample, db_pid: int | None) -> dict[str, Any]:
    """This process, mariadbd, the machine, and what the rest of the machine used meanwhile
    (100 = one core; another load on the machine competes for the cores)."""
    wall = max(end.mono - start.mono, 1e-9)
    return {
        "bench_process": pct(used_us(start, end, [os.getpid()]), wall),
        "mariadbd": pct(used_us(start, end, [db_pid]), wall) if db_pid else None,
        "machine": machine_pct(start, end),
        "other_processes": other_pct(start, end),
    }


# -- the run ------------------------------------------------------------------------------------


@dataclass
class RunResult:
    latencies: array[float] = field(default_factory=lambda: array("d"))
    successes: int = 0
    conflicts: int = 0
    limited: int = 0
    errors: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)
    first_error: str | None = None
    attempts: int = 0
    granted: list[tuple[str, list[str]]] = field(default_factory=list)
    elapsed_s: float = 0.0
    abandoned: bool = False


async def drive(
    workload: Workload,
    attempt_fn: AttemptFn,
    *,
    concurrency: int,
    rounds: int | None,
    duration: float | None,
    attempt_timeout: float,
    max_seconds: float,
    label: str,
) -> RunResult:
    """Offer the workload to ``attempt_fn`` from ``concurrency`` workers; see the module doc."""
    result = RunResult()
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for index in range(workload.users):
        queue.put_nowait((index, 0))
    first = [workload.request(index, 0) for index in range(workload.users)]  # before the clock
    stop = asyncio.Event()
    last_answer = time.perf_counter()

    async def worker() -> None:
        nonlocal last_answer
        while True:
            index, attempt = await queue.get()
            try:
                if stop.is_set():  # past the deadline: drain the queue without attempting
                    continue
                seat_ids = first[index] if attempt == 0 else workload.request(index, attempt)
                result.attempts += 1
                retry = False
                t0 = time.perf_counter()
                try:
                    async with asyncio.timeout(attempt_timeout):
                        hold_id, held = await attempt_fn(workload.user(index), seat_ids)
                except (SeatsUnavailable, NoBlockLeft):
                    result.conflicts += 1
                    result.latencies.append(time.perf_counter() - t0)
                    retry = True
                except LimitExceeded:
                    result.limited += 1
                except Exception as exc:  # an error is a result to report, not a crash
                    result.errors += 1
                    kind = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
                    result.error_kinds[kind] += 1
                    if result.first_error is None:
                        result.first_error = f"{type(exc).__name__}: {exc}"[:300]
                else:
                    result.successes += 1
                    result.latencies.append(time.perf_counter() - t0)
                    result.granted.append((hold_id, held))
                last_answer = time.perf_counter()
                more = rounds is None or attempt + 1 < rounds
                if retry and more and not stop.is_set():
                    queue.put_nowait((index, attempt + 1))
            finally:
                queue.task_done()
            # An answer from memory never suspends; a real client would wait for the network.
            # Yield, so that one worker cannot keep the loop (and the deadline) to itself.
            await asyncio.sleep(0)

    async def progress() -> None:
        while True:
            await asyncio.sleep(2.0)
            decided = result.successes + result.conflicts
            log.info("%s: %d decisions (%d holds), %d errors, %.1f s", label, decided,
                     result.successes, result.errors, time.perf_counter() - start)  # fmt: skip

    start = time.perf_counter()
    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    ticker = asyncio.create_task(progress())
    limit = max_seconds if duration is None else min(duration, max_seconds)
    try:
        await asyncio.wait_for(queue.join(), timeout=limit)
    except TimeoutError:
        stop.set()
        result.abandoned = duration is None
        if result.abandoned:
            log.warning("%s: stopped after --max-seconds %.0f s", label, max_seconds)
        # Let the attempts in flight answer (each is bounded by --attempt-timeout).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(queue.join(), timeout=attempt_timeout + 5)
    finally:  # also when cancelled (SIGTERM, Ctrl-C)
        stop.set()
        for task in [*workers, ticker]:
            task.cancel()
        await asyncio.gather(*workers, ticker, return_exceptions=True)
    result.elapsed_s = max(last_answer - start, 1e-9)
    return result


# -- strategies -----------------------------------------------------------------------------------


class _Taken(Exception):
    def __init__(self, seat_ids: list[str]) -> None:
        super().__init__(seat_ids)
        self.seat_ids = seat_ids


async def _user_holds(conn: AsyncConnection, event: EventInfo, user: str, now: Any) -> int:
    """The same per-user limit query as the product's (active holds + valid tickets)."""
    held = (
        select(func.coalesce(func.sum(holds_table.c.seat_count), 0))
        .where(
            holds_table.c.event_id == event.id,
            holds_table.c.user_id == user,
            holds_table.c.status == "active",
            holds_table.c.expires_at > now,
        )
        .scalar_subquery()
    )
    owned = (
        select(func.count())
        .select_from(tickets_table)
        .where(
            tickets_table.c.event_id == event.id,
            tickets_table.c.user_id == user,
            tickets_table.c.status == "valid",
        )
        .scalar_subquery()
    )
    row = (await conn.execute(select(held, owned))).one()
    return int(row[0]) + int(row[1])


def baseline_attempt(
    engine: AsyncEngine, event: EventInfo, lock: str, stop_at_first: bool
) -> AttemptFn:
    """The pessimistic SELECT … FOR UPDATE hold, as the original Spring project did it.

    By default every requested seat is locked and checked, so that a refusal names all taken
    seats like the product's (SPEC §5: 409 ``conflicts``); ``stop_at_first`` gives up at the
    first taken seat and names only it (cheaper, but a different answer).
    """
    s = seats_table

    async def attempt(user: str, seat_ids: list[str]) -> tuple[str, list[str]]:
        now = utcnow()
        holds.validate_request(event, seat_ids, now)
        amount, currency = event.price(seat_ids)
        hold_id = holds.new_id("h")
        ordered = sorted(seat_ids)
        expires_at = now + timedelta(seconds=event.hold_ttl_s)

        def free(row: Any) -> bool:
            held = row.hold_id is not None and row.hold_expires_at > now
            return not row.blocked and row.order_id is None and not held

        async def work(conn: AsyncConnection) -> None:
            have = await _user_holds(conn, event, user, now)
            if have + len(ordered) > event.max_seats_per_user:
                raise LimitExceeded("over the per-user limit", have=have)
            columns = (s.c.seat_id, s.c.blocked, s.c.order_id, s.c.hold_id, s.c.hold_expires_at)
            taken: list[str] = []
            if lock == "per-seat":
                for seat_id in ordered:
                    query = select(*columns).where(s.c.event_id == event.id, s.c.seat_id == seat_id)
                    row = (await conn.execute(query.with_for_update())).one()
                    if not free(row):
                        taken.append(seat_id)
                        if stop_at_first:
                            break
            else:
                query = (
                    select(*columns)
                    .where(s.c.event_id == event.id, s.c.seat_id.in_(ordered))
                    .order_by(s.c.seat_id)
                    .with_for_update()
                )
                taken = [row.seat_id for row in (await conn.execute(query)).all() if not free(row)]
                if stop_at_first:
                    taken = taken[:1]
            if taken:
                raise _Taken(taken)
            await conn.execute(
                update(s)
                .where(s.c.event_id == event.id, s.c.seat_id.in_(ordered))
                .values(hold_id=hold_id, hold_user=user, hold_expires_at=expires_at)
            )
            await conn.execute(
                insert(holds_table).values(
                    id=hold_id,
                    event_id=event.id,
                    user_id=user,
                    seat_ids=json.dumps(ordered),
                    seat_count=len(ordered),
                    amount_cents=amount,
                    currency=currency,
                    status="active",
                    created_at=now,
                    expires_at=expires_at,
                )
            )

        try:
            await in_transaction(engine, work)
        except _Taken as exc:
            raise SeatsUnavailable("some seats are not available", conflicts=exc.seat_ids) from None
        return hold_id, ordered

    return attempt


# -- verification ---------------------------------------------------------------------------------


async def verify(engine: AsyncEngine, event_id: int, result: RunResult) -> dict[str, Any]:
    now = utcnow()
    s, h, t = seats_table, holds_table, tickets_table
    async with engine.connect() as conn:
        seat_rows = (
            await conn.execute(
                select(s.c.seat_id, s.c.hold_id, s.c.hold_expires_at).where(
                    s.c.event_id == event_id
                )
            )
        ).all()
        hold_rows = (
            await conn.execute(
                select(h.c.id, h.c.seat_ids, h.c.seat_count, h.c.status, h.c.expires_at).where(
                    h.c.event_id == event_id
                )
            )
        ).all()
        tickets = (
            await conn.execute(select(func.count()).select_from(t).where(t.c.event_id == event_id))
        ).scalar_one()
        doubled = (
            select(t.c.active_seat_id)
            .where(t.c.event_id == event_id, t.c.active_seat_id.is_not(None))
            .group_by(t.c.active_seat_id)
            .having(func.count() > 1)
            .subquery()
        )
        double_tickets = (
            await conn.execute(select(func.count()).select_from(doubled))
        ).scalar_one()
        index_rows = (await conn.execute(text("SHOW INDEX FROM tickets"))).mappings().all()
    unique_cols: dict[str, list[str]] = {}
    for ix in index_rows:
        if not ix["Non_unique"]:
            unique_cols.setdefault(ix["Key_name"], []).append(ix["Column_name"])
    ticket_unique_index = ["event_id", "active_seat_id"] in unique_cols.values()

    active = {r.id: r for r in hold_rows if r.status == "active" and r.expires_at > now}
    pointing: dict[str, set[str]] = {}
    for r in seat_rows:
        if r.hold_id is not None and r.hold_expires_at > now:
            pointing.setdefault(r.hold_id, set()).add(r.seat_id)
    listed = Counter(seat for r in active.values() for seat in json.loads(r.seat_ids))
    held_seats = sum(len(v) for v in pointing.values())
    sum_seat_count = sum(int(r.seat_count) for r in active.values())
    not_matching = sum(
        1 for hid, r in active.items() if set(json.loads(r.seat_ids)) != pointing.get(hid, set())
    )
    orphans = sum(len(v) for hid, v in pointing.items() if hid not in active)
    client_seats = Counter(seat for _, held in result.granted for seat in held)
    client_ids = {hid for hid, _ in result.granted}
    report: dict[str, Any] = {
        "active_holds": len(active),
        "held_seats": held_seats,
        "sum_seat_count": sum_seat_count,
        "seats_in_two_holds": sum(1 for c in listed.values() if c > 1),
        "holds_not_matching_seats": not_matching,
        "seats_of_no_active_hold": orphans,
        "client_successes_vs_holds": [result.successes, len(active)],
        "client_holds_missing": len(client_ids - set(active)),
        "client_seats_in_two_holds": sum(1 for c in client_seats.values() if c > 1),
        "tickets": int(tickets),
        "double_tickets": int(double_tickets),
        "ticket_unique_index": ticket_unique_index,
    }
    report["ok"] = (
        held_seats == sum_seat_count
        and report["seats_in_two_holds"] == 0
        and not_matching == 0
        and orphans == 0
        and result.successes == len(active)
        and report["client_holds_missing"] == 0
        and report["client_seats_in_two_holds"] == 0
        and report["double_tickets"] == 0
        and ticket_unique_index
    )
    return report


def verify_blocks(info: EventInfo, result: RunResult, refused: list[int]) -> dict[str, int]:
    """Best available: every grant is consecutive seats of one row, and every refusal was
    true (nothing is freed during a run, so a block left at the end was there all along)."""
    not_side_by_side = 0
    taken: set[str] = set()
    for _, held in result.granted:
        taken.update(held)
        places = [info.seats[s] for s in held]
        numbers = sorted(number for _, _, number, _ in places)
        one_row = len({(section, row) for section, row, _, _ in places}) == 1
        if not one_row or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
            not_side_by_side += 1
    longest = run = 0
    previous: tuple[str, str, int] | None = None
    for seat_id, (section, row, number, _) in info.seats.items():  # layout order
        beside = previous is not None and previous == (section, row, number - 1)
        free = seat_id not in taken
        run = (run + 1 if beside else 1) if free else 0
        longest = max(longest, run)
        previous = (section, row, number) if free else None
    return {
        "holds_not_side_by_side": not_side_by_side,
        "false_refusals": sum(1 for size in refused if size <= longest),
    }


@dataclass
class RoundTrips:
    """Client-side counts of what reaches the server (``--count-round-trips``; adds event hooks).

    ``checkouts``: pool checkouts that pinged the server first (``pool_pre_ping``, which
    ``make_engine`` no longer sets); ``statements``: cursor executions;
    ``commits``/``rollbacks``: by the ``Connection``; ``reset_rollbacks``: rollbacks the pool
    issued on return (none right after a commit or a rollback, see ``booking.transactions``).
    """

    checkouts: int = 0
    statements: int = 0
    commits: int = 0
    rollbacks: int = 0
    reset_rollbacks: int = 0
    frozen: bool = False

    def bump(self, name: str) -> None:
        if not self.frozen:
            setattr(self, name, getattr(self, name) + 1)

    @classmethod
    def attach(cls, engine: AsyncEngine) -> RoundTrips:
        trips = cls()
        sync = engine.sync_engine
        sa_event.listen(sync, "before_cursor_execute", lambda *_: trips.bump("statements"))
        sa_event.listen(sync, "commit", lambda *_: trips.bump("commits"))
        sa_event.listen(sync, "rollback", lambda *_: trips.bump("rollbacks"))
        if getattr(sync.pool, "_pre_ping", False):
            sa_event.listen(sync.pool, "checkout", lambda *_: trips.bump("checkouts"))

        def on_reset(_dbapi: Any, record: Any, state: Any) -> None:
            # (a connection marked so is not rolled back: booking.transactions)
            if not state.transaction_was_reset and not record.info.get(COMMITTED, False):
                trips.bump("reset_rollbacks")

        sa_event.listen(sync.pool, "reset", on_reset)
        return trips

    def report(self, decisions: int) -> dict[str, Any]:
        counts = {
            "checkouts": self.checkouts,
            "statements": self.statements,
            "commits": self.commits,
            "rollbacks": self.rollbacks,
            "reset_rollbacks": self.reset_rollbacks,
        }
        total = sum(counts.values())
        return {**counts, "per_decision": round(total / max(decisions, 1), 2)}


async def row_lock_status(engine: AsyncEngine) -> dict[str, int]:
    """InnoDB's server-wide row lock wait counters (other clients of the server count too)."""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SHOW GLOBAL STATUS LIKE 'Innodb_row_lock_%'"))
        status = {str(name).lower(): int(value) for name, value in rows}
    return {
        "waits": status.get("innodb_row_lock_waits", 0),
        "time_ms": status.get("innodb_row_lock_time", 0),
    }


# -- orchestration --------------------------------------------------------------------------------


async def warm(engine: AsyncEngine, connections: int) -> None:
    """Open every pooled connection once, so connecting is not part of the measurement."""

    async def one() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(0.05)

    await asyncio.gather(*(one() for _ in range(connections)))


async def run_strategy(
    name: str, url: str, args: argparse.Namespace, db_pid: int | None
) -> dict[str, Any]:
    engine = make_engine(url)
    trips: RoundTrips | None = None
    try:
        pool = engine.pool
        connections = pool.size() + getattr(pool, "_max_overflow", 0)  # type: ignore[attr-defined]
        async with engine.begin() as conn:
            event_id = await catalog.create_event(
                conn,
                event_spec(args.seats, name),
                hold_ttl_s=HOLD_TTL_S,
                max_seats_per_user=MAX_SEATS_PER_USER,
            )
        async with engine.connect() as conn:
            info = await catalog.load_event(conn, event_id)
        workload = Workload(
            args.seed, args.users, list(info.seats), args.hot_fraction, args.hot_share
        )
        decided: Counter[str] | None = None
        overlap = Counter[str]()
        refused_sizes: list[int] = []
        attempt_fn: AttemptFn
        if name in ("concert-hub", "concert-hub-best"):
            counts = decided = Counter({"memory": 0, "database": 0})

            def count(where: HoldDecision) -> None:
                counts[where.value] += 1

            svc = core.build(
                engine,
                TestGateway(engine, 0.0),
                Keyring(SECRET),
                policy=BookingPolicy(hold_ttl_s=HOLD_TTL_S, max_seats_per_user=MAX_SEATS_PER_USER),
                hooks=BookingHooks(hold_decided=count),
            )
            # Loaded before the clock starts, as on a serving node.
            seatmap = await svc.inventory.seat_map(event_id)
            in_flight: Counter[str] = Counter()

        if name == "concert-hub-best":

            async def attempt_fn(user: str, seat_ids: list[str]) -> tuple[str, list[str]]:
                try:
                    hold = await svc.holds.hold_best(event_id, user, BlockRequest(len(seat_ids)))
                except NoBlockLeft:
                    refused_sizes.append(len(seat_ids))
                    raise
                return hold.id, hold.seat_ids

        elif name == "concert-hub":

            async def attempt_fn(user: str, seat_ids: list[str]) -> tuple[str, list[str]]:
                # Diagnostic only (a few set operations): does a request that the seat map
                # sends to the database overlap a database attempt already in flight here?
                if seatmap.unavailable(seat_ids, utcnow()):
                    hold = await svc.holds.hold(event_id, user, seat_ids)
                    return hold.id, hold.seat_ids
                overlapped = any(in_flight[seat] for seat in seat_ids)
                overlap["database_attempts"] += 1
                overlap["overlapping_in_flight"] += overlapped
                in_flight.update(seat_ids)
                try:
                    hold = await svc.holds.hold(event_id, user, seat_ids)
                except SeatsUnavailable:
                    overlap["database_conflicts"] += 1
                    overlap["overlapping_conflicts"] += overlapped
                    raise
                finally:
                    in_flight.subtract(seat_ids)
                return hold.id, hold.seat_ids

        elif name == "concert-hub-db-only":

            async def attempt_fn(user: str, seat_ids: list[str]) -> tuple[str, list[str]]:
                hold = await holds.place_hold(engine, info, user, seat_ids, utcnow())
                return hold.id, hold.seat_ids

        else:
            attempt_fn = baseline_attempt(
                engine, info, args.baseline_lock, args.baseline_stop_at_first
            )
        await warm(engine, connections)
        log.info("%s: event %d, %d seats, %d users, concurrency %d, pool %d", name, event_id,
                 len(info.seats), args.users, args.concurrency, connections)  # fmt: skip
        locks0 = await row_lock_status(engine)
        if args.count_round_trips:
            trips = RoundTrips.attach(engine)
        cpu0 = CpuSample.take([os.getpid(), db_pid or 0])
        result = await drive(
            workload,
            attempt_fn,
            concurrency=args.concurrency,
            rounds=args.rounds,
            duration=args.duration,
            attempt_timeout=args.attempt_timeout,
            max_seconds=args.max_seconds,
            label=name,
        )
        cpu1 = CpuSample.take([os.getpid(), db_pid or 0])
        if trips is not None:
            trips.frozen = True
        locks1 = await row_lock_status(engine)
        cpu = cpu_report(cpu0, cpu1, db_pid)
        cpu["window_s"] = round(result.elapsed_s, 3)
        verification = await verify(engine, event_id, result)
        if name == "concert-hub-best":
            verification.update(verify_blocks(info, result, refused_sizes))
            verification["ok"] = (
                verification["ok"]
                and verification["holds_not_side_by_side"] == 0
                and verification["false_refusals"] == 0
            )
    finally:
        await engine.dispose()
    decisions = result.successes + result.conflicts
    out: dict[str, Any] = {
        "event_id": event_id,
        "decisions": decisions,
        "decisions_per_s": round(decisions / result.elapsed_s, 1),
        "successes": result.successes,
        "conflicts": result.conflicts,
        "limited": result.limited,
        "errors": result.errors,
        "error_kinds": dict(result.error_kinds),
        "first_error": result.first_error,
        "latency_ms": ms_summary(result.latencies, LATENCY_NAMES, digits=2),
        "from_memory": decided["memory"] if decided is not None else 0,
        "from_database": decided["database"] if decided is not None else decisions,
        "attempts": result.attempts,
        "users_with_hold": result.successes,
        "seats_held": sum(len(held) for _, held in result.granted),
        "elapsed_s": round(result.elapsed_s, 3),
        "abandoned": result.abandoned,
        "pool_connections": connections,
        "cpu_pct": cpu,
        "innodb_row_lock": {
            "waits": locks1["waits"] - locks0["waits"],
            "time_ms": locks1["time_ms"] - locks0["time_ms"],
        },
        "verification": verification,
    }
    if decided is not None:
        out["database_path"] = {
            k: overlap[k]
            for k in (
                "database_attempts",
                "database_conflicts",
                "overlapping_in_flight",
                "overlapping_conflicts",
            )
        }
    if trips is not None:
        out["round_trips"] = trips.report(decisions)
    if name == "baseline":
        out["lock"] = args.baseline_lock
        out["conflicts_reported"] = "first" if args.baseline_stop_at_first else "all"
    log.info("%s: %s decisions/s, p99 %s ms, %d holds, %d conflicts, %d errors, verified %s",
             name, out["decisions_per_s"], out["latency_ms"]["p99"], result.successes,
             result.conflicts, result.errors, verification["ok"])  # fmt: skip
    return out


async def bench_until_signal(url: str, args: argparse.Namespace) -> dict[str, Any]:
    """:func:`bench`, cancelled cleanly (engines disposed) by SIGTERM or SIGINT."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    return await bench(url, args)


async def bench(url: str, args: argparse.Namespace) -> dict[str, Any]:
    schema_engine = make_engine(url)
    try:
        await upgrade(schema_engine)
    finally:
        await schema_engine.dispose()
    db_pid = find_mariadbd()
    names = STRATEGY_SETS[args.strategy]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for repeat in range(args.repeat):
        for name in names:  # interleaved, so a change in the machine's load hits every strategy
            if args.repeat > 1:
                log.info("repeat %d/%d", repeat + 1, args.repeat)
            runs[name].append(await run_strategy(name, url, args, db_pid))
    strategies: dict[str, Any] = {}
    for name, done in runs.items():
        # The run with the median decisions/s (the lower middle one for an even count).
        ranked = sorted(done, key=lambda r: r["decisions_per_s"])
        strategies[name] = dict(ranked[(len(ranked) - 1) // 2])
        if args.repeat > 1:
            strategies[name]["runs"] = [
                {
                    "decisions_per_s": r["decisions_per_s"],
                    "p99_ms": r["latency_ms"]["p99"],
                    "other_processes_cpu_pct": r["cpu_pct"]["other_processes"],
                    "verified": r["verification"]["ok"],
                }
                for r in done
            ]
    out: dict[str, Any] = {
        "users": args.users,
        "seats": args.seats,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "seed": args.seed,
        "hot_fraction": args.hot_fraction,
        "hot_share": args.hot_share,
        "cores": os.cpu_count(),
        "repeat": args.repeat,
        "strategies": strategies,
    }
    base = strategies.get("baseline")
    if base and base["decisions_per_s"]:
        out["ratio_vs_baseline"] = {
            name: round(s["decisions_per_s"] / base["decisions_per_s"], 2)
            for name, s in strategies.items()
            if name != "baseline"
        }
    else:
        out["ratio_vs_baseline"] = None
    best = strategies.get("concert-hub-best")
    if best and "concert-hub" in strategies:

        def figures(s: dict[str, Any]) -> dict[str, Any]:
            return {"decisions_per_s": s["decisions_per_s"], "p99_ms": s["latency_ms"]["p99"],
                    "holds": s["successes"], "seats_held": s["seats_held"]}  # fmt: skip

        explicit = strategies["concert-hub"]
        out["best_vs_explicit"] = {
            "explicit": figures(explicit),
            "best": figures(best),
            "decisions_ratio": round(best["decisions_per_s"] / explicit["decisions_per_s"], 2)
            if explicit["decisions_per_s"]
            else None,
        }
    hub = strategies.get("concert-hub")
    if hub:
        ratio = (out["ratio_vs_baseline"] or {}).get("concert-hub")
        p99 = hub["latency_ms"]["p99"]
        out["targets"] = {
            "decisions_per_s>=1000": hub["decisions_per_s"] >= 1000,
            "p99_ms<250": p99 is not None and p99 < 250,
            "ratio_vs_baseline>=3": None if ratio is None else ratio >= 3,
            "verified": all(r["verification"]["ok"] for done in runs.values() for r in done),
        }
    out["cpu_pct"] = {name: s["cpu_pct"] for name, s in strategies.items()}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    p.add_argument("--database-url", help="an existing MariaDB database (kept); default: a "
                   "fresh ch_bench_<hex> database on --server-url, dropped at the end")  # fmt: skip
    p.add_argument("--server-url", default=DEFAULT_SERVER_URL,
                   help="MariaDB server for the temporary database")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="do not drop the temporary database")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--seats", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=500)
    p.add_argument("--rounds", type=int, default=None,
                   help="attempts per user at most (a user retries after a conflict); default 1, "
                   "unlimited with --duration")  # fmt: skip
    p.add_argument("--duration", type=float, default=None,
                   help="keep users without a hold trying for this many seconds")  # fmt: skip
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--hot-fraction", type=float, default=0.2,
                   help="share of the seats (front rows) forming the hot zone")  # fmt: skip
    p.add_argument("--hot-share", type=float, default=0.6,
                   help="share of requests starting in the hot zone")  # fmt: skip
    p.add_argument("--strategy", choices=tuple(STRATEGY_SETS), default="both",
                   help="concert-hub runs concert-hub and concert-hub-db-only; best-available "
                   "runs concert-hub and concert-hub-best")  # fmt: skip
    p.add_argument("--baseline-lock", choices=("per-seat", "batch"), default="per-seat")
    p.add_argument("--baseline-stop-at-first", action="store_true",
                   help="baseline refuses at the first taken seat, naming only it")  # fmt: skip
    p.add_argument("--repeat", type=int, default=1,
                   help="run the strategies N times, interleaved; report the median")  # fmt: skip
    p.add_argument("--attempt-timeout", type=float, default=30.0)
    p.add_argument("--max-seconds", type=float, default=300.0,
                   help="bound on each strategy's run")  # fmt: skip
    p.add_argument("--count-round-trips", action="store_true",
                   help="count checkouts, statements, commits, rollbacks (adds hooks)")  # fmt: skip
    p.add_argument("--json-only", action="store_true", help="stderr: warnings and errors only")
    args = p.parse_args(argv)
    if args.rounds is None and args.duration is None:
        args.rounds = 1
    if args.seats < MAX_SEATS_PER_USER or args.users < 1 or args.concurrency < 1:
        p.error("need --seats >= 4, --users >= 1, --concurrency >= 1")
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.json_only)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    created: str | None = None
    url = args.database_url
    if url is None:
        created, url = create_database(args.server_url)
        log.info("created database %s", created)

    def drop() -> None:
        if created is not None and not args.keep:
            drop_database(args.server_url, created)
            log.info("dropped database %s", created)

    # Last resort, should the run hang anyway: drop the database and exit from a thread.
    strategies = len(STRATEGY_SETS[args.strategy])
    start_watchdog(
        args.repeat * strategies * (args.max_seconds + args.attempt_timeout + 60) + 120, drop
    )
    try:
        install_uvloop()
        out = asyncio.run(bench_until_signal(url, args))
    except asyncio.CancelledError:
        log.error("interrupted")
        return 143
    finally:
        drop()
    out["database"] = {"name": created or make_url(url).database,
                       "dropped": created is not None and not args.keep}  # fmt: skip
    print_json(out)
    return 0 if out.get("targets", {}).get("verified", True) else 1
