"""A waiting room that knows the sale, through a real node and real STOMP clients (issue 15).

A 50-seat event with 200 users in line: admission stops at sell-out, every waiting user is told
``paused`` (all held) and later ``sold_out`` (all sold), and an expired hold's seat goes to the
next user in line, on hold for them, not to a shopper admitted earlier. Once with the
in-process waiting room (SQLite), once with the cluster's in Redis (MariaDB).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from concert_hub_client.sdk import Subscription, connect
from tests.conftest import ServerProcess, free_port, migrated_database_url_for, rest
from tests.redis_server import RedisServer

ROWS, PER_ROW, USERS = 5, 10, 200
PATIENCE_S = 60  # a bound on waiting for what must come, not a timing claim
SEATS = [f"S-{row}-{n}" for row in "ABCDE"[:ROWS] for n in range(1, PER_ROW + 1)]


@pytest.fixture(params=["in-process", "redis"])
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("sellout")
    # Positions every 30 s: a user hears of the sale's state because it changed, not on a timer.
    flags: dict[str, object] = {"position_interval_s": 30}
    if request.param == "in-process":
        proc = ServerProcess(free_port(), free_port(), workdir, flags)
        proc.start()
        yield proc
        proc.stop()
        return
    redis: RedisServer = request.getfixturevalue("redis_server")
    redis.flush(2)
    for url in migrated_database_url_for("mariadb", workdir):
        flags |= {"database_url": url, "redis_url": redis.url_for(2), "node_id": "solo"}
        proc = ServerProcess(free_port(), free_port(), workdir, flags)
        proc.start()
        try:
            yield proc
        finally:
            proc.stop()


async def call(
    node: ServerProcess, method: str, path: str, user: str, body: object = None
) -> tuple[int, Any]:
    token = node.token(user, "admin" if user == "admin" else "user")
    return await asyncio.to_thread(rest, node, method, path, body, token=token)


async def hold(node: ServerProcess, event_id: int, user: str, seat: str, token: str
               ) -> tuple[int, Any]:  # fmt: skip
    return await asyncio.to_thread(
        rest, node, "POST", f"/api/events/{event_id}/holds", {"seats": [seat]},
        token=node.token(user), headers={"X-Admission-Token": token},
    )  # fmt: skip


async def checkout(node: ServerProcess, hold_id: str, user: str) -> tuple[int, Any]:
    return await asyncio.to_thread(
        rest, node, "POST", f"/api/holds/{hold_id}/checkout",
        {"payment": {"method": "card", "token": "tok_visa"}}, token=node.token(user),
        headers={"Idempotency-Key": f"k-{hold_id}"},
    )  # fmt: skip


def iso_in(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


class Heard:
    """Every user's position messages for one event, as they arrive."""

    def __init__(self, event: int) -> None:
        self.event = event
        self.by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.changed = asyncio.Event()

    async def follow(self, user: str, positions: Subscription) -> None:
        """Record what ``user`` hears on its ``/user/queue/position`` subscription."""
        async for message in positions:
            body = json.loads(message.body)
            if body["event_id"] == self.event:
                self.by_user[user].append(body)
                self.changed.set()

    async def listen(
        self, opened: contextlib.AsyncExitStack, node: ServerProcess, users: list[str]
    ) -> None:
        """Connect each of ``users`` (closed with ``opened``) and follow their positions."""
        for user in users:
            client = await opened.enter_async_context(connect(node.ws_url, token=node.token(user)))
            positions = await client.subscribe("/user/queue/position")
            follower = asyncio.create_task(self.follow(user, positions))
            opened.callback(follower.cancel)

    def last(self, user: str) -> dict[str, Any]:
        return self.by_user[user][-1] if self.by_user[user] else {}

    def ever(self, user: str, state: str) -> bool:
        return any(m["state"] == state for m in self.by_user[user])

    async def until(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + PATIENCE_S
        while not done():
            left = deadline - time.monotonic()
            assert left > 0, f"not within {PATIENCE_S}s: {what}"
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))


async def test_sell_out_pauses_the_queue_and_returned_seats_go_to_the_next_in_line(
    node: ServerProcess,
) -> None:
    status, event = await call(node, "POST", "/api/admin/events", "admin", {
        "name": "Small room", "venue": "Club", "starts_at": iso_in(86400),
        "sale_opens_at": iso_in(-60), "sale_closes_at": iso_in(3600), "status": "on_sale",
        "waiting_room": True, "admission_rate": 50, "max_active_shoppers": 500,
        "hold_ttl_s": 10,
        "layout": {"tiers": [{"name": "A", "price_cents": 5000}],
                   "sections": [{"name": "S", "rows": ROWS, "seats_per_row": PER_ROW,
                                 "tier": "A"}]},
    })  # fmt: skip
    assert status == 201, event
    event_id = int(event["id"])
    users = [f"fan{i:03d}" for i in range(USERS)]
    heard = Heard(event_id)
    async with contextlib.AsyncExitStack() as opened:
        await heard.listen(opened, node, users)
        for user in users:  # in this order: first come, first served
            status, joined = await call(node, "POST", f"/api/events/{event_id}/queue", user)
            assert status == 200, joined

        # 50 seats: the first 50 in line are admitted, and each holds a seat.
        first, rest_ = users[:50], users[50:]
        await heard.until(lambda: all(heard.ever(u, "admitted") for u in first), "50 admitted")
        tokens = {u: next(m["admission_token"] for m in heard.by_user[u]
                          if m["state"] == "admitted") for u in first}  # fmt: skip
        holds = {}
        for user, seat in zip(first, SEATS, strict=True):
            status, placed = await hold(node, event_id, user, seat, tokens[user])
            assert status == 201, placed
            holds[user] = placed["hold_id"]

        # Every seat held: everyone still in line hears `paused`, in their place.
        await heard.until(lambda: all(heard.last(u).get("state") == "paused" for u in rest_),
                          "every waiting user paused")  # fmt: skip
        assert [heard.last(u)["position"] for u in rest_] == list(range(1, 151))
        assert not any(heard.ever(u, "admitted") for u in rest_)  # none admitted past sell-out

        # 49 buy; the last holder lets the hold lapse.
        seat = SEATS[49]
        for user in first[:-1]:
            status, order = await checkout(node, holds[user], user)
            assert status == 201, order

        # A shopper admitted earlier (still holding a valid token: the one whose hold lapses;
        # a buyer's is used up) tries for the returning seat the whole time; the seat goes to
        # the next in line instead, on hold for them.
        outsider, nxt = first[-1], rest_[0]
        tries = []
        while not heard.ever(nxt, "admitted"):
            status, _ = await hold(node, event_id, outsider, seat, tokens[outsider])
            tries.append(status)
            assert status != 201, "a shopper outside the queue took the returning seat"
            await asyncio.sleep(0.2)
        assert tries and set(tries) == {409}, tries
        offered = next(m for m in heard.by_user[nxt] if m["state"] == "admitted")
        assert offered["offer"]["seats"] == [seat], offered
        assert heard.last(rest_[1])["state"] == "paused"  # one seat back: one user admitted
        snapshot = (await call(node, "GET", f"/api/events/{event_id}/seats", nxt))[1]
        assert dict(snapshot["seats"])[seat] == "held"
        assert (await hold(node, event_id, outsider, seat, tokens[outsider]))[0] == 409

        # The offered user buys it: nothing left, nothing held: sold out, still a waiting list.
        status, order = await checkout(node, offered["offer"]["hold_id"], nxt)
        assert status == 201, order
        left = rest_[1:]
        await heard.until(lambda: all(heard.last(u).get("state") == "sold_out" for u in left),
                          "every waiting user sold_out")  # fmt: skip
        status, me = await call(node, "GET", f"/api/events/{event_id}/queue/me", rest_[1])
        assert (status, me["state"], me["position"]) == (200, "sold_out", 1)


async def test_released_and_cancelled_seats_go_to_the_next_in_line(node: ServerProcess) -> None:
    """A hold its holder releases, and an order its buyer cancels, return their seats the way
    a lapsed hold does: one user in line admitted per seat, the seat on hold for them (``held``
    on the seat map), and a shopper outside the queue cannot take it."""
    status, event = await call(node, "POST", "/api/admin/events", "admin", {
        "name": "Tiny room", "venue": "Club", "starts_at": iso_in(3 * 86400),
        "sale_opens_at": iso_in(-60), "sale_closes_at": iso_in(3600), "status": "on_sale",
        "waiting_room": True, "admission_rate": 50, "max_active_shoppers": 500,
        "hold_ttl_s": 600, "refund_cutoff_hours": 1,
        "layout": {"tiers": [{"name": "A", "price_cents": 5000}],
                   "sections": [{"name": "S", "rows": 1, "seats_per_row": 3, "tier": "A"}]},
    })  # fmt: skip
    assert status == 201, event
    event_id = int(event["id"])
    seats = ["S-A-1", "S-A-2", "S-A-3"]
    users = [f"fan{i}" for i in range(8)]
    heard = Heard(event_id)
    async with contextlib.AsyncExitStack() as opened:
        await heard.listen(opened, node, users)
        for user in users:
            status, joined = await call(node, "POST", f"/api/events/{event_id}/queue", user)
            assert status == 200, joined
        first = users[:3]
        await heard.until(lambda: all(heard.ever(u, "admitted") for u in first), "3 admitted")
        tokens = {u: next(m["admission_token"] for m in heard.by_user[u]
                          if m["state"] == "admitted") for u in first}  # fmt: skip
        holds = {}
        for user, seat in zip(first, seats, strict=True):
            status, placed = await hold(node, event_id, user, seat, tokens[user])
            assert status == 201, placed
            holds[user] = placed["hold_id"]
        await heard.until(lambda: heard.last(users[3]).get("state") == "paused", "paused")

        async def returned_to(user: str, seat: str) -> dict[str, Any]:
            await heard.until(lambda: heard.ever(user, "admitted"), f"{user} admitted")
            offered = next(m for m in heard.by_user[user] if m["state"] == "admitted")
            assert offered["offer"]["seats"] == [seat], offered
            # The seat map shows it held by the next tick (the admission may be heard first).
            deadline = time.monotonic() + PATIENCE_S
            while True:
                snapshot = (await call(node, "GET", f"/api/events/{event_id}/seats", user))[1]
                if dict(snapshot["seats"])[seat] == "held":
                    break
                assert time.monotonic() < deadline, f"{seat} not shown held: {snapshot}"
                await asyncio.sleep(0.05)
            # fan2, admitted earlier and still holding a valid token, cannot take it.
            assert (await hold(node, event_id, "fan2", seat, tokens["fan2"]))[0] == 409
            return offered

        # fan0 releases its hold: its seat goes to fan3, the next in line, and only to them.
        status, _ = await call(node, "DELETE", f"/api/holds/{holds['fan0']}", "fan0")
        assert status in (200, 204)
        offered = await returned_to("fan3", seats[0])
        assert heard.last(users[4]).get("state") == "paused"  # one seat back: one admitted

        # fan1 buys, then cancels: the seat goes to fan4.
        status, order = await checkout(node, holds["fan1"], "fan1")
        assert status == 201, order
        cancel = f"/api/orders/{order['order_id']}/cancel"
        status, cancelled = await call(node, "POST", cancel, "fan1")
        assert status == 200 and cancelled["status"] == "cancelled", cancelled
        await returned_to("fan4", seats[1])
        assert heard.last(users[5]).get("state") == "paused"

        # The offered users can buy what they were offered.
        status, bought = await checkout(node, offered["offer"]["hold_id"], "fan3")
        assert status == 201, bought
