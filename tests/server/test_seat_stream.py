"""The live seat map over STOMP (SPEC §6) with stomp.py over TCP, on both backends.

A subscriber to ``/topic/events/{id}/seats`` gets a snapshot first (the same as
``GET /api/events/{id}/seats``), then one conflated delta per tick with each changed seat's
latest status and ``seq`` rising by one. Changes are made through the REST API; a hold's expiry is
brought forward in the database, and the node's reaper (every second) frees it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, update

from booking.clock import utcnow
from booking.schema import holds, seats
from server.seat_stream import MAX_TICK_S, tick_for
from tests.booking.conftest import call, create_event_via_api, sync_url
from tests.conftest import ServerProcess
from tests.seat_feed import DELTA_TIMEOUT_S, SeatFeed
from tests.server.stomp_clients import Clients, unique

VISA = {"payment": {"method": "card", "token": "tok_visa"}}


@pytest.fixture
def clients(booking_server: ServerProcess) -> Iterator[Clients]:
    opened = Clients(booking_server)
    yield opened
    opened.close_all()


@pytest.fixture(scope="module")
def db(booking_server: ServerProcess) -> Iterator[Engine]:
    engine = create_engine(sync_url(str(booking_server.flags["database_url"])))
    yield engine
    engine.dispose()


def rest_seats(server: ServerProcess, event_id: int) -> dict[str, Any]:
    status, body = call(server, "GET", f"/api/events/{event_id}/seats")
    assert status == 200, body
    return dict(body)


def hold(server: ServerProcess, event_id: int, user: str, seat_ids: list[str]) -> str:
    status, body = call(server, "POST", f"/api/events/{event_id}/holds", {"seats": seat_ids},
                        token=server.token(user))  # fmt: skip
    assert status == 201, body
    return str(body["hold_id"])


def release(server: ServerProcess, user: str, hold_id: str) -> None:
    status, body = call(server, "DELETE", f"/api/holds/{hold_id}", token=server.token(user))
    assert status in (200, 204), body


def buy(server: ServerProcess, user: str, hold_id: str) -> dict[str, Any]:
    key = {"Idempotency-Key": unique("k")}
    status, body = call(server, "POST", f"/api/holds/{hold_id}/checkout", VISA,
                        token=server.token(user), headers=key)  # fmt: skip
    assert status == 201, body
    return dict(body)


def expire_now(db: Engine, hold_id: str) -> None:
    """Bring the hold's expiry into the past in the database (the reaper does the rest)."""
    past = utcnow().replace(microsecond=0)
    with db.begin() as conn:
        conn.execute(update(holds).where(holds.c.id == hold_id).values(expires_at=past))
        conn.execute(update(seats).where(seats.c.hold_id == hold_id).values(hold_expires_at=past))


def catch_up(feed: SeatFeed, server: ServerProcess, settle_s: float = 0.5) -> dict[str, str]:
    """Once nothing changes any more: read deltas up to the node's seq, check they add up to
    its map and that no more come, and return that map."""
    time.sleep(settle_s)  # a few ticks: the last changes are out
    final = rest_seats(server, feed.event_id)
    deadline = time.monotonic() + DELTA_TIMEOUT_S
    while feed.seq < final["seq"]:
        feed.next_delta(max(deadline - time.monotonic(), 0.01))
    truth = dict(map(tuple, final["seats"]))
    assert feed.seq == final["seq"] and feed.statuses == truth
    time.sleep(settle_s / 2)
    later = [
        f
        for f in feed.client.listener.pending("MESSAGE")
        if f.headers.get("subscription") == feed.sub_id
    ]
    assert later == [], "a delta after the map stopped changing"
    return truth


def test_first_message_is_the_snapshot_rest_serves(
    booking_server: ServerProcess, clients: Clients
) -> None:
    event_id = create_event_via_api(booking_server)["id"]
    hold(booking_server, event_id, unique("u"), ["S-A-1", "S-B-5"])
    time.sleep(0.5)  # a few ticks: the hold's delta is out, the map is still
    before = rest_seats(booking_server, event_id)
    feed = SeatFeed(clients("tcp"), event_id)  # anonymous: the seat map is public
    snapshot = feed.subscribe()
    assert snapshot == before
    assert snapshot["seq"] >= 1
    assert feed.statuses["S-A-1"] == feed.statuses["S-B-5"] == "held"
    assert list(feed.statuses.values()).count("available") == 8
    assert rest_seats(booking_server, event_id) == before  # nothing changed meanwhile
    assert feed.client.listener.quiet("MESSAGE", 0.3) == []  # no delta without a change


def test_deltas_for_hold_release_sale_and_expiry(
    booking_server: ServerProcess, clients: Clients, db: Engine
) -> None:
    server = booking_server
    event_id = create_event_via_api(server)["id"]
    feed = SeatFeed(clients("tcp", user=unique("watcher")), event_id)
    start = feed.subscribe()["seq"]

    alice = unique("alice")
    held = hold(server, event_id, alice, ["S-A-1", "S-A-2"])
    feed.until({"S-A-1": "held", "S-A-2": "held"})
    release(server, alice, held)
    feed.until({"S-A-1": "available", "S-A-2": "available"})

    bob = unique("bob")
    bought = hold(server, event_id, bob, ["S-A-3"])
    feed.until({"S-A-3": "held"})
    buy(server, bob, bought)
    feed.until({"S-A-3": "sold"})

    carol = unique("carol")
    lapsing = hold(server, event_id, carol, ["S-A-4", "S-B-1"])
    feed.until({"S-A-4": "held", "S-B-1": "held"})
    expire_now(db, lapsing)
    feed.until({"S-A-4": "available", "S-B-1": "available"})  # the reaper runs every second

    # one delta per step, seq contiguous from the snapshot on (checked per delta)
    assert feed.seq == start + len(feed.deltas) and len(feed.deltas) == 6
    for delta in feed.deltas:
        assert all(status in ("available", "held", "sold", "blocked")
                   for _, status in delta["changes"])  # fmt: skip
    assert feed.client.listener.quiet("MESSAGE", 0.3) == []

    # a second subscription (a client that saw a gap) gets a snapshot matching REST
    feed.unsubscribe()
    again = SeatFeed(feed.client, event_id)
    snapshot = again.subscribe()
    assert snapshot == rest_seats(server, event_id)
    assert snapshot["seq"] == feed.seq
    assert again.statuses == feed.statuses
    assert again.statuses["S-A-3"] == "sold"
    assert list(again.statuses.values()).count("available") == 9


def test_a_fresh_connection_sees_the_same_map(
    booking_server: ServerProcess, clients: Clients
) -> None:
    event_id = create_event_via_api(booking_server)["id"]
    first = SeatFeed(clients("tcp"), event_id)
    first.subscribe()
    user = unique("u")
    hold_id = hold(booking_server, event_id, user, ["S-B-2"])
    buy(booking_server, user, hold_id)
    first.until({"S-B-2": "sold"})
    second = SeatFeed(clients("tcp"), event_id)
    snapshot = second.subscribe()
    assert snapshot["seq"] == first.seq and second.statuses == first.statuses
    assert snapshot == rest_seats(booking_server, event_id)


def test_a_burst_of_changes(booking_server: ServerProcess, clients: Clients) -> None:
    """Concurrent holds and releases with the default tick: every delta lists a seat at most
    once, seq never skips, and the deltas end at the true statuses."""
    server = booking_server
    event_id = create_event_via_api(server, rows=2, seats_per_row=10)["id"]
    feed = SeatFeed(clients("tcp"), event_id)
    feed.subscribe()
    wanted = [f"S-{row}-{n}" for row in "AB" for n in range(1, 11)]
    errors: list[BaseException] = []

    def shopper(index: int) -> None:
        user = unique("burst")
        try:
            hold_id = hold(server, event_id, user, wanted[index * 2 : index * 2 + 2])
            release(server, user, hold_id)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=shopper, args=(i,), daemon=True) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    final = catch_up(feed, server)
    assert set(final.values()) == {"available"}
    # at most one delta per tick: never more deltas than the 20 calls that changed seats
    assert 1 <= len(feed.deltas) <= 20


def test_changes_within_one_tick_come_as_one_delta(
    make_server: Callable[..., ServerProcess],
) -> None:
    """A long tick makes "within one tick" certain: everything between two ticks is one delta
    holding each seat's latest status."""
    server = make_server(seat_tick_ms=4000)
    event_id = create_event_via_api(server)["id"]
    opened = Clients(server)
    try:
        feed = SeatFeed(opened("tcp"), event_id)
        feed.subscribe()
        alice, bob, carol = unique("alice"), unique("bob"), unique("carol")
        first = hold(server, event_id, alice, ["S-A-1"])
        feed.until({"S-A-1": "held"}, timeout=15)  # a tick just happened
        started = time.monotonic()
        release(server, alice, first)  # S-A-1 available...
        second = hold(server, event_id, bob, ["S-A-1", "S-A-2"])  # ...held again
        third = hold(server, event_id, carol, ["S-B-4"])
        release(server, carol, third)  # S-B-4 held, then available
        buy(server, bob, second)  # S-A-1, S-A-2 sold
        elapsed = time.monotonic() - started
        delta = feed.next_delta(timeout=15)
        assert elapsed < 3.5, f"the changes took {elapsed:.1f}s, longer than the tick"
        assert sorted(delta["changes"]) == [
            ["S-A-1", "sold"],
            ["S-A-2", "sold"],
            ["S-B-4", "available"],
        ]
        # the delta says how long it conflated: a tick, or more while deltas were going out
        assert isinstance(delta["tick_ms"], int) and delta["tick_ms"] >= 4000
        assert rest_seats(server, event_id)["seq"] == feed.seq
    finally:
        opened.close_all()


@pytest.mark.parametrize(
    ("followers", "budget", "tick_s"),
    [
        (2_000, 50_000, 0.1),  # under the budget: --seat-tick-ms
        (10_000, 50_000, 0.2),  # the journey benchmark's 10,000 buyers
        (10_000, 0, 0.1),  # 0: the tick never widens
        (10**6, 50_000, MAX_TICK_S),  # at most a second
    ],
)
def test_the_tick_widens_with_the_followers(followers: int, budget: int, tick_s: float) -> None:
    assert tick_for(0.1, followers, budget) == pytest.approx(tick_s)
    assert tick_for(4.0, followers, budget) == 4.0  # a long --seat-tick-ms stays as it is


def test_a_node_with_more_followers_than_its_budget_sends_deltas_less_often(
    make_server: Callable[..., ServerProcess],
) -> None:
    """Two MESSAGEs a second for one follower: a delta every 500 ms, not every 100 ms."""
    server = make_server(seat_tick_ms=100, seat_delivery_budget=2)
    event_id = create_event_via_api(server)["id"]
    opened = Clients(server)
    try:
        feed = SeatFeed(opened("tcp"), event_id)
        feed.subscribe()
        hold(server, event_id, unique("alice"), ["S-A-1"])
        feed.until({"S-A-1": "held"})  # the tick after this one began with the follower counted
        hold(server, event_id, unique("bob"), ["S-A-2"])
        delta = feed.next_delta()
        assert delta["changes"] == [["S-A-2", "held"]]
        assert delta["tick_ms"] >= 500
    finally:
        opened.close_all()


def test_snapshot_then_deltas_add_up_while_seats_churn(
    booking_server: ServerProcess, clients: Clients
) -> None:
    """Subscribers arriving while seats keep changing: each gets its snapshot first, then
    deltas from exactly the next seq, and snapshot + deltas always equal the real map."""
    server = booking_server
    event_id = create_event_via_api(server, rows=2, seats_per_row=10)["id"]
    seat_ids = [f"S-{row}-{n}" for row in "AB" for n in range(1, 11)]
    stop = threading.Event()
    failures: list[object] = []

    def churn(worker: int) -> None:
        rng = random.Random(worker)
        user = unique(f"churn{worker}")
        token = server.token(user)
        try:
            while not stop.is_set():
                wanted = rng.sample(seat_ids, rng.randint(1, 2))
                status, body = call(server, "POST", f"/api/events/{event_id}/holds",
                                    {"seats": wanted}, token=token)  # fmt: skip
                if status == 201:
                    time.sleep(rng.uniform(0, 0.05))
                    release(server, user, body["hold_id"])
                elif status != 409:
                    failures.append((status, body))
        except Exception as exc:  # reported below; a thread must not die silently
            failures.append(exc)

    workers = [threading.Thread(target=churn, args=(i,), daemon=True) for i in range(4)]
    for worker in workers:
        worker.start()
    feeds: list[SeatFeed] = []
    try:
        connections = [clients("tcp") for _ in range(3)]
        for i in range(12):
            feed = SeatFeed(connections[i % len(connections)], event_id)
            feed.subscribe()  # asserts the first MESSAGE of the subscription is the snapshot
            feeds.append(feed)
            feed.next_delta()  # the churn goes on: the next delta has seq + 1
            time.sleep(0.05)
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)
    assert not failures, failures[:3]
    for index, feed in enumerate(feeds):
        truth = catch_up(feed, server, 0.5 if index == 0 else 0.0)
        assert set(truth.values()) == {"available"}


@pytest.mark.parametrize("target", ["999999", "not-a-number", "99999999999999999999"])
def test_unknown_event_is_an_error(clients: Clients, target: str) -> None:
    """An id too large for the database is as unknown as any other (not an internal error)."""
    client = clients("tcp")
    client.conn.subscribe(f"/topic/events/{target}/seats", unique("sub"), receipt="r1")
    error = client.listener.error()
    assert error.headers["message"] == "unknown event", error.headers
    # the refused SUBSCRIBE never took effect: no RECEIPT, and the ERROR names its receipt
    assert error.headers.get("receipt-id") == "r1", error.headers
    client.listener.wait_disconnected()
    assert not [f for kind, f in client.listener.frames if kind == "RECEIPT"]


def test_a_resume_from_long_ago_gets_a_snapshot(
    booking_server: ServerProcess, clients: Clients
) -> None:
    """``resume-seq`` far behind the ring is answered with a fresh snapshot. Seqs start from the
    clock, so ``1`` is about a trillion deltas ago; the node must not try to count them."""
    event_id = create_event_via_api(booking_server)["id"]
    feed = SeatFeed(clients("tcp"), event_id)
    feed.subscribe()
    hold(booking_server, event_id, unique("u"), ["S-A-1"])
    feed.next_delta()  # the node has a delta in its ring: it will look there
    feed.unsubscribe()
    feed.seq = 1
    answer = feed.resume()
    assert answer["type"] == "snapshot" and answer["seq"] > 1, answer
    assert feed.statuses == dict(map(tuple, rest_seats(booking_server, event_id)["seats"]))
