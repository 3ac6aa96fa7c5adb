"""Best available under a rush, on a real cluster (three nodes, one Redis, one MariaDB).

300 users each ask one of the nodes, all at once, for the best 1-4 seats of one small section
(40 seats; another section beside it must stay untouched). Each node learns the others' holds
only from the seat-map deltas, so blocks are lost to other nodes in the database and the next
one tried. Afterwards, from the tables: no seat is in two holds, every grant is a block of the
requested size side by side in one row of that section, the holds the users were told about are
exactly the ones stored, and every refusal (409 ``no_block``, nothing else) is true: no free
block of that size is left in the section. And wheelchair spaces an admin marks through one node
serve wheelchair users on every node.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from booking.schema import holds, seats
from tests.booking.conftest import call, event_body
from tests.cluster.conftest import NODE_NAMES, Cluster, wait_until

USERS = 300
ROWS, PER_ROW = 4, 10
#: Generous: a healthy cluster answers all of them in a few seconds.
RUSH_TIMEOUT_S = 120


def rush_event(cluster: Cluster) -> int:
    """Section ``S`` (4 rows of 10) for the rush, and section ``T`` that nobody asks for."""
    body = event_body(rows=ROWS, seats_per_row=PER_ROW)
    body["layout"]["sections"].append({"name": "T", "rows": 2, "seats_per_row": 10,
                                       "tier": "Main"})  # fmt: skip
    node = cluster["a"]
    status, event = call(node, "POST", "/api/admin/events", body, token=node.token("root", "admin"))
    assert status == 201, (status, event)
    return int(event["id"])


def free_runs(free: set[str]) -> dict[str, int]:
    """Row → its longest run of free seats side by side, in section S."""
    longest: dict[str, int] = {}
    for row in "ABCD"[:ROWS]:
        run = best = 0
        for n in range(1, PER_ROW + 1):
            run = run + 1 if f"S-{row}-{n}" in free else 0
            best = max(best, run)
        longest[row] = best
    return longest


def is_block(seat_ids: list[str]) -> bool:
    parts = [s.split("-") for s in seat_ids]
    numbers = sorted(int(n) for _, _, n in parts)
    same_row = len({(section, row) for section, row, _ in parts}) == 1
    return same_row and numbers == list(range(numbers[0], numbers[0] + len(numbers)))


async def test_a_rush_on_best_available_across_nodes(cluster: Cluster) -> None:
    event_id = rush_event(cluster)
    nodes = [cluster[name] for name in NODE_NAMES]
    run = uuid.uuid4().hex[:8]
    rng = random.Random(1313)
    users = [f"best-{run}-{i}" for i in range(USERS)]
    wanted = {user: rng.randint(1, 4) for user in users}
    start = asyncio.Event()

    async def ask(http: aiohttp.ClientSession, i: int, user: str) -> tuple[int, Any]:
        node = nodes[i % len(nodes)]
        await start.wait()
        async with http.post(
            f"{node.http_url}/api/events/{event_id}/holds",
            json={"best_available": {"count": wanted[user], "section": "S"}},
            headers={"Authorization": f"Bearer {node.token(user)}"},
        ) as reply:
            return reply.status, await reply.json(content_type=None)

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=90)) as http:  # fmt: skip
        tasks = [asyncio.ensure_future(ask(http, i, u)) for i, u in enumerate(users)]
        await asyncio.sleep(0)
        start.set()
        answers = await asyncio.wait_for(asyncio.gather(*tasks), RUSH_TIMEOUT_S)

    outcomes = Counter(
        (status, body.get("kind")) if status != 201 else (201, None) for status, body in answers
    )
    assert set(outcomes) <= {(201, None), (409, "no_block")}, outcomes
    granted = {body["hold_id"]: (user, body["seats"]) for user, (status, body)
               in zip(users, answers, strict=True) if status == 201}  # fmt: skip
    assert granted, outcomes
    told = [seat for _, held in granted.values() for seat in held]
    assert len(told) == len(set(told)), "a seat granted twice"
    for user, held in granted.values():
        assert len(held) == wanted[user] and is_block(held), (user, wanted[user], held)
        assert all(seat.startswith("S-") for seat in held), held

    engine = create_async_engine(cluster.database_url)
    try:
        async with engine.connect() as conn:
            stored = dict((await conn.execute(
                select(seats.c.seat_id, seats.c.hold_id)
                .where(seats.c.event_id == event_id, seats.c.hold_id.is_not(None))
            )).all())  # fmt: skip
            active = {r.id for r in await conn.execute(
                select(holds.c.id).where(holds.c.event_id == event_id, holds.c.status == "active")
            )}  # fmt: skip
    finally:
        await engine.dispose()
    assert active == set(granted), "the holds users were told about are the ones stored"
    assert stored == {seat: hold for hold, (_, held) in granted.items() for seat in held}

    all_seats = {f"S-{row}-{n}" for row in "ABCD"[:ROWS] for n in range(1, PER_ROW + 1)}
    longest = max(free_runs(all_seats - stored.keys()).values())
    refused = [wanted[user] for user, (status, _) in zip(users, answers, strict=True)
               if status == 409]  # fmt: skip
    assert all(size > longest for size in refused), (longest, Counter(refused))


def test_seats_marked_through_one_node_serve_wheelchair_users_on_every_node(
    cluster: Cluster,
) -> None:
    a, b = cluster["a"], cluster["b"]
    event_id = rush_event(cluster)
    wheelchair = {"best_available": {"count": 2, "accessible": True}}
    for node in (a, b):  # both have the event loaded: neither has wheelchair spaces yet
        status, body = call(node, "GET", f"/api/events/{event_id}")
        assert status == 200 and "accessible" not in json.dumps(body["layout"]), body
    status, body = call(b, "POST", f"/api/events/{event_id}/holds", wheelchair,
                        token=b.token(f"wheel-{uuid.uuid4().hex[:6]}"))  # fmt: skip
    assert (status, body["kind"]) == (409, "no_block"), body

    status, body = call(a, "PATCH", f"/api/admin/events/{event_id}/seats",
                        {"accessible": ["S-D-10"], "companion": ["S-D-9"]},
                        token=a.token("root", "admin"))  # fmt: skip
    assert status == 200, body

    def marked_on_b() -> bool:
        _, body = call(b, "GET", f"/api/events/{event_id}")
        seats = {s["id"]: s for sec in body["layout"]["sections"] for r in sec["rows"]
                 for s in r["seats"]}  # fmt: skip
        return seats["S-D-10"].get("accessible") is True and seats["S-D-9"].get("companion")

    wait_until(marked_on_b, 5, "node b shows the seats marked through node a")
    status, body = call(b, "POST", f"/api/events/{event_id}/holds", wheelchair,
                        token=b.token(f"wheel-{uuid.uuid4().hex[:6]}"))  # fmt: skip
    assert status == 201 and set(body["seats"]) == {"S-D-9", "S-D-10"}, body
