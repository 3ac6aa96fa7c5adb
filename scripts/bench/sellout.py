"""The waiting room's sell-out scenario (issue 15): ``bench_queue.py --scenario sellout``.

Usage::

    python scripts/bench_queue.py --scenario sellout --users 10000 --seats 2000 --engine both
    python scripts/bench_queue.py --scenario sellout --users 1000 --seats 200   # a small run

Per engine, a fresh node (throw-away SQLite; Redis engine: a private redis-server) and one event
with ``--seats`` seats, its waiting room on, ``admission_mode`` adaptive between 1 and
``--rate-max`` admissions/s (starting at ``--rate``), status ``paused`` while everyone joins.
Every user joins over REST and SUBSCRIBEs ``/user/queue/position`` over WebSocket/STOMP (the
project's ``concert_hub_client``, one asyncio process). Then the sale opens (``PATCH status
on_sale``: t_open). Each user, when admitted, holds the best available seat
(``best_available.count`` 1) and pays for it at once.

Reported (one JSON object on stdout):

* ``sell_out_s``: t_open to the last seat paid (as the client saw the answer).
* ``stop_push_ms``: for users still in line, from the last seat being held (the hold answer
  that made every seat held or sold) to the first ``paused`` or ``sold_out`` push they got
  (p50/p99/max; target p99 < 2 s); ``sold_out_push_ms`` likewise from the last seat paid to
  their ``sold_out`` push; ``users_not_told``: users in line who got neither.
* ``admitted_without_seat_share``: admitted users whose hold found no seat left, over all
  admitted users (target 0).
* ``admitted``, ``sold``, ``rate_max_seen``: the highest rate the public queue stats showed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import kill_everything, log, print_json, raise_nofile, setup_logging
from bench.rest import http_json, iso_in
from bench.servers import (
    BENCH_SECRET,
    DEFAULT_PYTHON,
    migrate,
    mint_tokens,
    start_node,
    start_redis,
)
from bench.stats import ms_summary
from concert_hub_client import Client, Message, connect

ENGINES = ("in-process", "redis")


class Sale:
    """What the clients saw."""

    def __init__(self, seats: int) -> None:
        self.seats = seats
        self.t_open = 0.0
        self.t_all_held: float | None = None
        self.t_sold: float | None = None
        self.held = 0
        self.sold = 0
        self.admitted: set[str] = set()
        self.no_seat = 0
        self.first_stop: dict[str, float] = {}
        self.sold_out_at: dict[str, float] = {}
        self.rate_max = 0.0
        self.done = asyncio.Event()


async def shop(session: aiohttp.ClientSession, base: str, sale: Sale, user: str, token: str,
               *, admission: str) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "X-Admission-Token": admission}
    async with session.post(f"{base}/holds", json={"best_available": {"count": 1}},
                            headers=headers) as reply:  # fmt: skip
        body = await reply.json()
    if reply.status != 201:
        sale.no_seat += 1
        return
    sale.held += 1
    if sale.held >= sale.seats and sale.t_all_held is None:
        sale.t_all_held = time.monotonic()
    pay = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"k-{user}"}
    async with session.post(f"/api/holds/{body['hold_id']}/checkout",
                            json={"payment": {"method": "card", "token": "tok_visa"}},
                            headers=pay) as reply:  # fmt: skip
        await reply.read()
    if reply.status == 201:
        sale.sold += 1
        if sale.sold >= sale.seats:
            sale.t_sold = time.monotonic()
            sale.done.set()


async def run(args: argparse.Namespace, port: int, admin: str, users: list[tuple[str, str]]
              ) -> dict[str, Any]:  # fmt: skip
    rows = max(1, args.seats // 50)
    status, event = http_json(port, "POST", "/api/admin/events", admin, {
        "name": "Sell-out bench", "venue": "Arena", "starts_at": iso_in(86400),
        "sale_opens_at": iso_in(-60), "sale_closes_at": iso_in(7200), "status": "paused",
        "waiting_room": True, "admission_rate": args.rate, "max_active_shoppers": 1_000_000,
        "admission_mode": "adaptive", "admission_rate_min": 1, "admission_rate_max": args.rate_max,
        "max_seats_per_user": 1,
        "layout": {"tiers": [{"name": "A", "price_cents": 5000}],
                   "sections": [{"name": "S", "rows": rows, "seats_per_row": args.seats // rows,
                                 "tier": "A"}]},
    })  # fmt: skip
    if status != 201:
        raise RuntimeError(f"create event: HTTP {status} {event}")
    event_id = int(event["id"])
    seats = (args.seats // rows) * rows
    sale = Sale(seats)
    base = f"/api/events/{event_id}"
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    tasks: set[asyncio.Task[None]] = set()
    clients: list[Client] = []
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as session:

        def handler(user: str, token: str) -> Any:
            def on_message(message: Message) -> None:
                now = time.monotonic()
                body = json.loads(message.body)
                if "rate" in body:
                    sale.rate_max = max(sale.rate_max, float(body["rate"]))
                    return
                if body.get("event_id") != event_id:
                    return
                state = body["state"]
                if state == "admitted" and user not in sale.admitted:
                    sale.admitted.add(user)
                    task = asyncio.ensure_future(
                        shop(session, base, sale, user, token, admission=body["admission_token"])
                    )
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif state in ("paused", "sold_out"):
                    sale.first_stop.setdefault(user, now)
                    if state == "sold_out":
                        sale.sold_out_at.setdefault(user, now)

            return on_message

        semaphore = asyncio.Semaphore(args.concurrency)

        async def enter(user: str, token: str) -> None:
            async with semaphore:
                auth = {"Authorization": f"Bearer {token}"}
                async with session.post(f"{base}/queue", headers=auth) as reply:
                    await reply.read()
                client = await connect(f"ws://127.0.0.1:{port}/ws", passcode=token,
                                       on_message=handler(user, token))  # fmt: skip
                clients.append(client)
                await client.subscribe("/user/queue/position", "p")

        log.info("%d users join and subscribe", len(users))
        await asyncio.gather(*(enter(u, t) for u, t in users))
        await clients[0].subscribe(f"/topic/events/{event_id}/queue", "stats")
        sale.t_open = time.monotonic()
        http_json(port, "PATCH", f"/api/admin/events/{event_id}", admin, {"status": "on_sale"})
        log.info("sale open: %d seats", seats)
        try:
            await asyncio.wait_for(sale.done.wait(), args.timeout)
            await asyncio.sleep(args.tail)  # the pushes that follow the last sale
        except TimeoutError:
            log.warning("not sold out within %.0f s", args.timeout)
        for client in clients:
            client.close()
    in_line = [u for u, _ in users if u not in sale.admitted]
    stop = [sale.first_stop[u] - sale.t_all_held for u in in_line
            if sale.t_all_held is not None and u in sale.first_stop]  # fmt: skip
    sold_out = [sale.sold_out_at[u] - sale.t_sold for u in in_line
                if sale.t_sold is not None and u in sale.sold_out_at]  # fmt: skip
    admitted = len(sale.admitted)
    return {
        "seats": seats,
        "sold": sale.sold,
        "admitted": admitted,
        "sell_out_s": None if sale.t_sold is None else round(sale.t_sold - sale.t_open, 2),
        "stop_push_ms": ms_summary(max(0.0, s) for s in stop),
        "sold_out_push_ms": ms_summary(max(0.0, s) for s in sold_out),
        "users_in_line": len(in_line),
        "users_not_told": sum(1 for u in in_line if u not in sale.first_stop),
        "admitted_without_seat_share": round(sale.no_seat / admitted, 4) if admitted else None,
        "rate_max_seen": sale.rate_max,
    }


def bench_engine(args: argparse.Namespace, engine: str, tmp: Path) -> dict[str, Any]:
    redis = None
    database_url = f"sqlite+aiosqlite:///{tmp}/s.db"
    flags = ["--max-connections", str(args.users + 500), "--rest-rate-per-ip", "1e9",
             "--rest-rate-per-user", "1e9", "--max-send-rate", "1e9"]  # fmt: skip
    if engine == "redis":
        redis, redis_port = start_redis(tmp)
        migrate(args.python, database_url)
        flags += ["--redis-url", f"redis://127.0.0.1:{redis_port}/0"]
    child, port = start_node(args.python, database_url, args.secret, flags, tmp / "server.log",
                             ready_path="/readyz")  # fmt: skip
    try:
        names = [f"so-{i:06d}" for i in range(args.users)]
        *tokens, admin = mint_tokens(args.secret, [*((n, "user") for n in names),
                                                   ("bench-admin", "admin")])  # fmt: skip
        users = list(zip(names, tokens, strict=True))
        return {"engine": engine, **asyncio.run(run(args, port, admin, users))}
    finally:
        child.stop()
        if redis is not None:
            redis.stop()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Waiting-room sell-out benchmark (JSON on stdout).")
    p.add_argument("--scenario", choices=("sellout",), default="sellout")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--seats", type=int, default=2_000)
    p.add_argument("--rate", type=float, default=50.0, help="adaptive: starting rate")
    p.add_argument("--rate-max", type=float, default=200.0, help="adaptive: highest rate")
    p.add_argument("--engine", choices=(*ENGINES, "both"), default="both")
    p.add_argument("--concurrency", type=int, default=128, help="joins and handshakes in flight")
    p.add_argument("--timeout", type=float, default=300.0, help="give up on selling out after")
    p.add_argument("--tail", type=float, default=3.0, help="seconds listening after the sell-out")
    p.add_argument("--secret", default=BENCH_SECRET)
    p.add_argument("--python", default=DEFAULT_PYTHON)
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.quiet)
    raise_nofile()
    engines = list(ENGINES) if args.engine == "both" else [args.engine]
    out: dict[str, Any] = {"scenario": "sellout", "users": args.users, "seats": args.seats,
                           "rate": args.rate, "rate_max": args.rate_max, "engines": {}}  # fmt: skip
    try:
        for engine in engines:
            with tempfile.TemporaryDirectory(prefix="bench-sellout-") as tmp:
                out["engines"][engine] = bench_engine(args, engine, Path(tmp))
    except KeyboardInterrupt:
        kill_everything()
        out["error"] = "interrupted"
        print_json(out)
        return 130
    print_json(out)
    return 0 if all(r.get("sell_out_s") is not None for r in out["engines"].values()) else 1
