"""Door-rush benchmark on MariaDB: many gates redeeming an event's tickets at once.

Usage::

    python scripts/bench_checkin.py                          # 20,000 tickets, 20 gates, REST
    python scripts/bench_checkin.py --tickets 2000 --gates 4  # a short run
    python scripts/bench_checkin.py --via core               # the booking core, no HTTP
    python scripts/bench_checkin.py --workers 2              # one node on both cores

Prints ONE JSON object on stdout; progress goes to stderr (``--json-only``: warnings only).

Set-up (not timed): a fresh database ``ch_bench_<hex>`` on the MariaDB server of
``--server-url`` (dropped at the end, ``--keep`` keeps it), migrated; an event with ``--tickets``
seats; ``--tickets`` valid tickets of one order written straight to the tables, their codes
signed with the database's Ed25519 key (as checkout signs them); with ``--via rest`` (default) a
concert-hub node on a free port (REST rate limits lifted) and one scanner per gate minted
through ``POST /api/admin/scanners``; with ``--workers N`` > 1 that node is N processes on one
port (``serve --workers``, ``--db-pool-size`` each) over a private redis-server.

Workload: the tickets are shuffled (``--seed``) and dealt to ``--gates`` gates; every gate scans
its tickets one after another (``--lanes`` scans in flight per gate, default 1: a scanner waits
for its answer), ``--rescan-share`` of them twice (a holder scanning again: ``already_used``).
``--via rest``: each lane is one keep-alive HTTP connection sending ``POST /api/checkin``
(JWT check, JSON, Ed25519 verify, the conditional UPDATE, the redemption row, the ticket read).
``--via core``: each lane calls :meth:`booking.checkin.DoorCheckIn.redeem` in this process.

Fields: ``redemptions_per_s`` = answered scans / ``elapsed_s`` (first request to last answer);
``latency_ms`` {p50, p90, p99, max, mean} per scan, waiting for a pooled connection included;
``results`` by reason; ``errors`` (non-200 answers, timeouts); ``verification``: tickets let in
(``admitted_in_db``) and redemption rows, each must equal ``--tickets`` (every ticket admitted
exactly once), and ``answers_admitted`` the same; ``targets``: the issue's (>= 2,000
redemptions/s, p99 < 100 ms); ``cpu_pct`` of this process, the node (its supervisor with
``--workers``), each ``worker_N`` and ``mariadbd``.
Exit status 0, 1 if the verification failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.cpu import CpuSample, machine_pct, other_pct, pct, used_us
from bench.harness import describe, install_uvloop, print_json, setup_logging
from bench.holds import find_mariadbd
from bench.mariadb import DEFAULT_SERVER_URL, fresh_database
from bench.rest import HttpConn, http_json, iso_in, listed_nodes
from bench.servers import (
    BENCH_SECRET,
    DEFAULT_PYTHON,
    migrate,
    mint_tokens,
    start_node,
    start_redis,
    worker_pids,
)
from bench.stats import ms_summary

log = logging.getLogger("bench")

TARGET_PER_S = 2000
TARGET_P99_MS = 100.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tickets", type=int, default=20_000)
    p.add_argument("--gates", type=int, default=20)
    p.add_argument("--lanes", type=int, default=1, help="scans in flight per gate")
    p.add_argument("--rescan-share", type=float, default=0.0)
    p.add_argument("--via", choices=("rest", "core"), default="rest")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="the node's processes (serve --workers; >1 starts a private redis)",
    )
    p.add_argument("--db-pool-size", type=int, default=25, help="per worker, with --workers > 1")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--server-url", default=DEFAULT_SERVER_URL)
    p.add_argument("--keep", action="store_true", help="keep the database")
    p.add_argument("--request-timeout", type=float, default=30.0)
    p.add_argument("--python", default=DEFAULT_PYTHON)
    p.add_argument("--json-only", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


# -- set-up ------------------------------------------------------------------------------------


def _layout(tickets: int) -> dict[str, Any]:
    per_row = 100
    rows = -(-tickets // per_row)
    sections = []
    for i in range(-(-rows // 200)):
        sections.append({"name": f"S{i}", "rows": min(200, rows - i * 200),
                         "seats_per_row": per_row, "tier": "Door"})  # fmt: skip
    return {"tiers": [{"name": "Door", "price_cents": 1000, "currency": "EUR"}],
            "sections": sections}  # fmt: skip


def event_body(tickets: int) -> dict[str, Any]:
    return {
        "name": "Door Rush", "venue": "Bench Hall", "starts_at": iso_in(3600),
        "sale_opens_at": iso_in(-3600), "sale_closes_at": iso_in(1800), "status": "on_sale",
        "layout": _layout(tickets),
    }  # fmt: skip


async def issue_tickets(database_url: str, event_id: int, count: int) -> list[str]:
    """``count`` valid tickets of one order, signed as checkout signs them."""
    from sqlalchemy import insert, select  # noqa: PLC0415

    from booking.clock import utcnow  # noqa: PLC0415
    from booking.holds import new_id  # noqa: PLC0415
    from booking.keyring import Keyring  # noqa: PLC0415
    from booking.schema import orders, seats, tickets  # noqa: PLC0415
    from booking.ticket_keys import TicketCodes, TicketKeys  # noqa: PLC0415
    from booking.tickets import TicketSigner  # noqa: PLC0415
    from server.database import make_engine  # noqa: PLC0415

    engine = make_engine(database_url)
    keyring = Keyring(BENCH_SECRET)
    try:
        codes = TicketCodes(TicketKeys(engine, keyring), TicketSigner(keyring))
        await codes.ready()
        async with engine.begin() as conn:
            found = await conn.execute(
                select(seats.c.seat_id)
                .where(seats.c.event_id == event_id)
                .order_by(seats.c.ordinal)
                .limit(count)
            )
            seat_ids = [r.seat_id for r in found]
            order_id = new_id("ord")
            now = utcnow()
            await conn.execute(
                insert(orders).values(
                    id=order_id, event_id=event_id, user_id="crowd", hold_id=new_id("hld"),
                    status="paid", amount_cents=0, currency="EUR", payment_id=new_id("pay"),
                    created_at=now, email="crowd@example.com",
                )
            )  # fmt: skip
            issued = [codes.issue(event_id, s, order_id) for s in seat_ids]
            rows = [
                {"code": c, "order_id": order_id, "event_id": event_id, "seat_id": s,
                 "user_id": "crowd", "active_seat_id": s, "status": "valid", "issued_at": now}
                for c, s in zip(issued, seat_ids, strict=True)
            ]  # fmt: skip
            for i in range(0, len(rows), 2000):
                await conn.execute(insert(tickets), rows[i : i + 2000])
        return issued
    finally:
        await engine.dispose()


async def verify(database_url: str, event_id: int) -> dict[str, int]:
    from sqlalchemy import func, select  # noqa: PLC0415

    from booking.schema import redemptions, tickets  # noqa: PLC0415
    from server.database import make_engine  # noqa: PLC0415

    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            admitted = await conn.execute(
                select(func.count()).where(
                    tickets.c.event_id == event_id, tickets.c.admitted_at.is_not(None)
                )
            )
            rows = await conn.execute(
                select(func.count()).where(redemptions.c.event_id == event_id)
            )
            return {"admitted_in_db": int(admitted.scalar_one()),
                    "redemption_rows": int(rows.scalar_one())}  # fmt: skip
    finally:
        await engine.dispose()


def workload(codes: list[str], gates: int, rescan: float, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    shuffled = list(codes)
    rng.shuffle(shuffled)
    dealt: list[list[str]] = [[] for _ in range(gates)]
    for i, code in enumerate(shuffled):
        dealt[i % gates].append(code)
        if rng.random() < rescan:
            dealt[i % gates].append(code)
    return dealt


# -- the rush ----------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.results: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()


async def rest_lane(
    port: int, token: str, event_id: int, queue: list[str], tally: Tally, *, limit_s: float
) -> None:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(HttpConn, "127.0.0.1", port)
    head = (f"POST /api/checkin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n")  # fmt: skip
    try:
        for code in queue:
            body = json.dumps({"code": code, "event_id": event_id}).encode()
            raw = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
            started = time.perf_counter()
            try:
                async with asyncio.timeout(limit_s):
                    status, answer, keep = await conn.request(raw)
            except Exception as exc:
                tally.errors[describe(exc)] += 1
                _, conn = await loop.create_connection(HttpConn, "127.0.0.1", port)
                continue
            tally.latencies.append(time.perf_counter() - started)
            if status in (200, 404, 409):  # admitted; or a refusal, a problem naming its result
                tally.results[json.loads(answer)["result"]] += 1
            else:
                tally.errors[f"http {status}"] += 1
            if not keep:
                conn.close()
                _, conn = await loop.create_connection(HttpConn, "127.0.0.1", port)
    finally:
        conn.close()


async def core_lane(door: Any, gate: str, event_id: int, queue: list[str], tally: Tally) -> None:
    for code in queue:
        started = time.perf_counter()
        try:
            result = await door.redeem(event_id, code, gate, gate)
        except Exception as exc:
            tally.errors[describe(exc)] += 1
            continue
        tally.latencies.append(time.perf_counter() - started)
        tally.results[result.reason.value] += 1


def lanes_of(queue: list[str], lanes: int) -> list[list[str]]:
    return [queue[i::lanes] for i in range(lanes)]


async def rush(args: argparse.Namespace, database_url: str, workdir: Path) -> dict[str, Any]:
    node = redis = None
    pids: list[int] = []
    if args.via == "rest":
        flags = ["--rest-rate-per-ip", "1000000", "--rest-rate-per-user", "1000000"]
        if args.workers > 1:
            redis, redis_port = start_redis(workdir)
            flags += ["--workers", str(args.workers), "--db-pool-size", str(args.db_pool_size),
                      "--redis-url", f"redis://127.0.0.1:{redis_port}/0"]  # fmt: skip
        node, port = start_node(args.python, database_url, BENCH_SECRET, flags,
                                workdir / "node.log")  # fmt: skip
        pids.append(node.pid)
        if args.workers > 1:  # /healthz reached one worker: wait until the node has them all
            (admin,) = mint_tokens(BENCH_SECRET, [("bench-admin", "admin")])
            node.wait_ready(lambda: len(listed_nodes(port, admin)) >= args.workers, 60,
                            f"{args.workers} workers in /api/admin/stats")  # fmt: skip
            pids += worker_pids(node.pid)
    try:
        (admin,) = mint_tokens(BENCH_SECRET, [("bench-admin", "admin")])
        if args.via == "rest":
            status, event = http_json(port, "POST", "/api/admin/events", admin,
                                      event_body(args.tickets))  # fmt: skip
            assert status == 201, (status, event)
            event_id = int(event["id"])
        else:
            event_id = await create_event_in_core(database_url, args.tickets)
        codes = await issue_tickets(database_url, event_id, args.tickets)
        dealt = workload(codes, args.gates, args.rescan_share, args.seed)
        tally = Tally()
        mariadbd = find_mariadbd()
        watched = {"bench_process": os.getpid(), "node": pids[0] if pids else None,
                   "mariadbd": mariadbd}  # fmt: skip
        watched |= {f"worker_{i + 1}": pid for i, pid in enumerate(pids[1:])}
        if args.via == "rest":
            tokens = []
            for g in range(args.gates):
                status, scanner = http_json(port, "POST", "/api/admin/scanners", admin,
                                            {"device": f"bench-{g}", "gate": f"Gate {g + 1}",
                                             "event_id": event_id})  # fmt: skip
                assert status == 201, (status, scanner)
                tokens.append(scanner["token"])
            log.info("rush: %d tickets, %d gates x %d lanes, REST", len(codes), args.gates,
                     args.lanes)  # fmt: skip
            before = CpuSample.take([p for p in watched.values() if p])
            started = time.perf_counter()
            await asyncio.gather(*(
                rest_lane(port, tokens[g], event_id, lane, tally, limit_s=args.request_timeout)
                for g, queue in enumerate(dealt) for lane in lanes_of(queue, args.lanes)
            ))  # fmt: skip
            elapsed = time.perf_counter() - started
        else:
            door, dispose = await core_door(database_url)
            try:
                await door.inventory.event(event_id)
                await door.codes.ready()
                log.info("rush: %d tickets, %d gates x %d lanes, booking core", len(codes),
                         args.gates, args.lanes)  # fmt: skip
                before = CpuSample.take([p for p in watched.values() if p])
                started = time.perf_counter()
                await asyncio.gather(*(
                    core_lane(door, f"Gate {g + 1}", event_id, lane, tally)
                    for g, queue in enumerate(dealt) for lane in lanes_of(queue, args.lanes)
                ))  # fmt: skip
                elapsed = time.perf_counter() - started
            finally:
                await dispose()
        after = CpuSample.take([p for p in watched.values() if p])
        cpu: dict[str, float | None] = {
            name: pct(used_us(before, after, [pid]), elapsed) if pid else None
            for name, pid in watched.items()
        }
        cpu["machine"] = machine_pct(before, after)
        cpu["other_processes"] = other_pct(before, after)
        checked = await verify(database_url, event_id)
    finally:
        if node is not None:
            node.stop()
        if redis is not None:
            redis.stop()
    answered = len(tally.latencies)
    latency = ms_summary(tally.latencies, ("p50", "p90", "p99", "max", "mean"))
    per_s = answered / elapsed if elapsed > 0 else 0.0
    ok = (
        checked["admitted_in_db"] == args.tickets
        and checked["redemption_rows"] == args.tickets
        and tally.results["admitted"] == args.tickets
        and not tally.errors
    )
    return {
        "via": args.via,
        "tickets": args.tickets,
        "gates": args.gates,
        "lanes_per_gate": args.lanes,
        "scans": sum(len(q) for q in dealt),
        "elapsed_s": round(elapsed, 3),
        "redemptions_per_s": round(per_s, 1),
        "latency_ms": latency,
        "results": dict(tally.results),
        "errors": dict(tally.errors),
        "verification": {**checked, "answers_admitted": tally.results["admitted"], "ok": ok},
        "targets": {
            "redemptions_per_s": TARGET_PER_S,
            "p99_ms": TARGET_P99_MS,
            "met": per_s >= TARGET_PER_S and (latency["p99"] or 1e9) < TARGET_P99_MS,
        },
        "cpu_pct": cpu,
    }


async def create_event_in_core(database_url: str, tickets: int) -> int:
    from booking.catalog import EventSpec  # noqa: PLC0415

    door, dispose = await core_door(database_url)
    try:
        info = await door.inventory.create_event(EventSpec.model_validate(event_body(tickets)))
        return int(info.id)
    finally:
        await dispose()


async def core_door(database_url: str) -> tuple[Any, Any]:
    """The booking core's door, built like ``server/app.py`` builds it."""
    from booking import core  # noqa: PLC0415
    from booking.keyring import Keyring  # noqa: PLC0415
    from booking.payments import TestGateway  # noqa: PLC0415
    from server.database import make_engine  # noqa: PLC0415

    engine = make_engine(database_url)
    booking = core.build(engine, TestGateway(engine), Keyring(BENCH_SECRET))
    return booking.door, engine.dispose


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.json_only)
    install_uvloop()
    out: dict[str, Any] = {}
    with fresh_database(args.server_url, out, keep=args.keep) as url:
        migrate(args.python, url)
        with tempfile.TemporaryDirectory(prefix="bench-checkin-") as tmp:
            out |= asyncio.run(rush(args, url, Path(tmp)))
    print_json(out)
    return 0 if out.get("verification", {}).get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
