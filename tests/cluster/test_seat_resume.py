"""Resumable seat maps across the cluster (issue 17): SUBSCRIBE with ``resume-seq``.

A client whose connection dies mid-sale subscribes again on another node with the last ``seq``
it applied and gets one delta of everything changed since (``"since"``), then the live deltas:
its map ends equal to the database's, with no gap in ``seq``. A ``seq`` older than the nodes'
replay rings (``--seat-replay-deltas``, small here) gets a snapshot instead; the same ``seq``
gets the same answer on every node.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from booking.catalog import load_seat_state
from booking.clock import utcnow
from concert_hub_client.sdk import connect
from tests.cluster.conftest import Cluster, book, create_event, hold, release
from tests.seat_feed import SeatFeed
from tests.server.stomp_clients import Clients, metric_sum, unique

RING = 24
#: Bookings of two seats each, in order; the connection dies after the third.
SALE = [[f"S-{row}-{n}", f"S-{row}-{n + 1}"] for row in "AB" for n in (1, 3, 5, 7, 9)]


@pytest.fixture(scope="module")
def cluster_flags() -> dict[str, object]:
    return {"seat_replay_deltas": RING}


@pytest.fixture
def clients(cluster: Cluster) -> Iterator[Clients]:
    opened = Clients(cluster["a"])
    yield opened
    opened.close_all()


def database_map(cluster: Cluster, event_id: int) -> dict[str, str]:
    """Every seat's status as the database records it."""

    async def read() -> dict[str, str]:
        engine = create_async_engine(cluster.database_url)
        try:
            async with engine.connect() as conn:
                return (await load_seat_state(conn, event_id, utcnow()))[0]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_a_client_cut_off_mid_sale_resumes_on_another_node(
    cluster: Cluster, clients: Clients
) -> None:
    a, b = cluster["a"], cluster["b"]
    event_id = create_event(a)
    # Node B follows the event (someone there watches it), as every node of a live sale does.
    watcher = SeatFeed(clients("tcp", server=b), event_id)
    watcher.subscribe()
    feed = SeatFeed(clients("tcp", server=a), event_id)
    feed.subscribe()

    third_sold = threading.Event()
    failures: list[BaseException] = []

    def sale() -> None:
        try:
            for index, seats in enumerate(SALE):
                book(a, event_id, seats)
                if index == 2:
                    third_sold.set()
        except BaseException as exc:  # reported by the test
            failures.append(exc)
            third_sold.set()

    seller = threading.Thread(target=sale, daemon=True)
    seller.start()
    try:
        assert third_sold.wait(30), "the sale did not get going"
        feed.until({seat: "sold" for seat in SALE[0]})
        # The connection dies mid-sale: no DISCONNECT, the socket just goes.
        feed.client.conn.transport.disconnect_socket()
        last = feed.seq
        feed.client = clients("tcp", server=b)
        answer = feed.resume()
    finally:
        seller.join(60)
    assert not failures, failures
    assert answer["type"] == "delta", f"resume-seq {last} got a snapshot: {answer}"
    assert answer["since"] == last

    truth = database_map(cluster, event_id)
    assert set(truth.values()) == {"sold"}
    feed.until(truth)  # deltas follow the replay without a gap (next_delta checks each seq)
    feed.drain()
    assert feed.statuses == truth


def test_a_too_old_seq_gets_a_snapshot_and_every_node_answers_alike(
    cluster: Cluster, clients: Clients
) -> None:
    a, b = cluster["a"], cluster["b"]
    event_id = create_event(a)
    watchers = {name: SeatFeed(clients("tcp", server=cluster[name]), event_id)
                for name in "bc"}  # fmt: skip
    for watcher in watchers.values():
        watcher.subscribe()
    old = watchers["b"].seq

    # More deltas than the rings keep: one hold or release at a time, each seen as its delta.
    user = unique("churn")
    for _ in range(RING // 2 + 1):
        held = hold(a, event_id, user, ["S-A-1"])
        watchers["b"].until({"S-A-1": "held"})
        release(a, user, held)
        watchers["b"].until({"S-A-1": "available"})
    for watcher in watchers.values():
        watcher.until({"S-A-1": "available"})
    assert watchers["b"].seq - old > RING

    recent = watchers["b"].seq - 3
    answers = {}
    for name in "bc":
        stale = SeatFeed(clients("tcp", server=cluster[name]), event_id)
        stale.seq = old
        assert stale.resume()["type"] == "snapshot", f"node {name} replayed past its ring"
        assert stale.statuses == watchers["b"].statuses
        fresh = SeatFeed(clients("tcp", server=cluster[name]), event_id)
        fresh.seq, fresh.statuses = recent, dict(watchers["b"].history[recent])
        answers[name] = fresh.resume()
        assert fresh.statuses == watchers["b"].statuses
    assert answers["b"]["type"] == "delta"
    assert answers["b"] == answers["c"], "two nodes answered one resume-seq differently"

    # A seq the cluster never reached is not one to continue from either.
    ahead = SeatFeed(clients("tcp", server=b), event_id)
    ahead.seq = watchers["b"].seq + 1000
    assert ahead.resume()["type"] == "snapshot"


async def test_the_sdk_resumes_its_seat_map_on_the_next_node(cluster: Cluster) -> None:
    a, b = cluster["a"], cluster["b"]
    event_id = await asyncio.to_thread(create_event, a)
    resumed = "concert_hub_seatmap_resumes"
    async with connect(b.ws_url, token=b.token(unique("fan"))) as on_b:
        await on_b.seat_map(event_id)  # node B follows the event from here on
        async with connect([a.ws_url, b.ws_url], token=a.token(unique("fan"))) as client:
            seats = await client.seat_map(event_id)
            await asyncio.to_thread(book, a, event_id, SALE[0])
            await seats.until(lambda s: s["S-A-1"] == "sold")
            before = await asyncio.to_thread(metric_sum, b, resumed, answer="delta")
            client.drop()  # mid-sale: the SDK reconnects to the next URL, node B
            for seats_sold in SALE[1:4]:
                await asyncio.to_thread(book, a, event_id, seats_sold)
            truth = await asyncio.to_thread(database_map, cluster, event_id)
            await seats.until(lambda s: s == truth)
            assert client.url == b.ws_url and client.reconnects == 1
            after = await asyncio.to_thread(metric_sum, b, resumed, answer="delta")
            assert after == before + 1, "the SDK took a snapshot instead of resuming"
