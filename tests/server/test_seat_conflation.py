"""A slow seat-map subscriber's deltas are conflated before it is cut (SPEC §7).

A subscriber whose client stops reading during a burst of seat changes is written no more deltas
once half its output budget (``--slow-consumer-bytes``) is unread; when it reads again, one fresh
snapshot brings it to the current map and deltas follow from there: it is not cut, and its map
ends as ``GET /api/events/{id}/seats`` has it. Subscribers that read keep every delta. A client
that never reads and asks for other output (RECEIPTs) is still cut with ERROR ``slow consumer``.

The slow peers connect with a small receive buffer and an Ethernet-sized segment: with
loopback's 64 KB segments the kernel would buffer megabytes for them, and a burst would have to
be that large.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from concert_hub_client.state import Applied, SeatMapState
from protocol.client import ReceivedFrame
from protocol.connection import ServerConnection
from protocol.events import AckMode, Subscription
from protocol.frames import StompVersion
from protocol.limits import Limits
from server.backplane.memory import InProcessEngine
from server.broker import SLICE, Broker, Subscriber
from server.engine import Message
from server.framing import Framing, raw
from server.metrics import BrokerMetrics
from server.seat_stream import seats_route
from tests.booking.conftest import call, create_event_via_api
from tests.conftest import ServerProcess, free_port, migrated_database_url_for
from tests.redis_server import RedisServer
from tests.seat_feed import seats_topic, statuses_of
from tests.server.stomp_clients import (
    RawPeer,
    RawTcp,
    encode_frame,
    log_tail,
    metric_sum,
    raw_peer,
    unique,
)

BUDGET = 65536
#: 1,000 seats: a snapshot of some 23 KB, and a delta of up to that much.
ROWS, PER_ROW = 10, 100
#: Rounds of every seat held (a row of 100 per user: the event's per-user limit) and released:
#: 23 to 46 KB of deltas each at a 10 ms tick; 12 make 280 to 550 KB, more than the 160 KB that
#: the kernel holds for a slow peer (measured with ``ss``) and half the budget together.
ROUNDS = 12
#: A peer on a slow link: a small receive buffer, and a common segment size (loopback's 64 KB
#: segments let the kernel buffer megabytes for it).
SLOW = {"rcvbuf": 4096, "mss": 1400}


FLAGS: dict[str, object] = {
    "slow_consumer_bytes": BUDGET, "seat_tick_ms": 10, "max_send_rate": 1_000_000,
    "rest_rate_per_user": 100_000, "rest_rate_per_ip": 100_000,
}  # fmt: skip


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(free_port(), free_port(), tmp_path_factory.mktemp("conflation"), FLAGS)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two nodes of a cluster (Redis, MariaDB): the seats are sold on the first."""
    workdir = tmp_path_factory.mktemp("conflation-cluster")
    shared = {"redis_url": redis_server.url, "redis_key_prefix": f"{unique('conflation')}:"}
    for url in migrated_database_url_for("mariadb", workdir):
        nodes = []
        for name in ("a", "b"):
            flags: dict[str, object] = {
                **FLAGS,
                **shared,
                "database_url": url,
                "node_id": f"node-{name}",
            }
            nodes.append(ServerProcess(free_port(), free_port(), workdir / name, flags))
            nodes[-1].workdir.mkdir()
        try:
            for started in nodes:
                started.start()
            yield nodes[0], nodes[1]
        finally:
            for started in nodes:
                started.stop()


def new_event(server: ServerProcess) -> int:
    body = create_event_via_api(
        server, rows=ROWS, seats_per_row=PER_ROW, max_seats_per_user=PER_ROW
    )
    return int(body["id"])


def rest_seats(server: ServerProcess, event_id: int) -> dict[str, Any]:
    status, body = call(server, "GET", f"/api/events/{event_id}/seats")
    assert status == 200, body
    return dict(body)


def slow_consumer_cuts(server: ServerProcess) -> float:
    return metric_sum(server, "concert_hub_errors", reason="slow_consumer")


def burst(server: ServerProcess, event_id: int) -> None:
    """Every seat held and released ``ROUNDS`` times, one user per row, all rows at once."""
    rows = [chr(ord("A") + r) for r in range(ROWS)]
    users = [unique("u") for _ in rows]

    def hold_and_release(user: str, row: str) -> None:
        token = server.token(user)
        seat_ids = [f"S-{row}-{n}" for n in range(1, PER_ROW + 1)]
        status, body = call(
            server, "POST", f"/api/events/{event_id}/holds", {"seats": seat_ids}, token=token
        )
        if status == 409:  # in a cluster, the node may not have learnt the release yet
            return
        assert status == 201, body
        status, body = call(server, "DELETE", f"/api/holds/{body['hold_id']}", token=token)
        assert status in (200, 204), body

    with ThreadPoolExecutor(ROWS) as pool:
        for _ in range(ROUNDS):
            list(pool.map(hold_and_release, users, rows))


def subscribe(peer: RawPeer, event_id: int) -> ReceivedFrame:
    """CONNECT and SUBSCRIBE to the event's seat map; its first MESSAGE."""
    assert peer.connect(heart_beat="0,0").command == "CONNECTED"
    receipt = unique("r")
    peer.send("SUBSCRIBE", {"id": "map", "destination": seats_topic(event_id), "receipt": receipt})
    snapshot = peer.read_until("MESSAGE")  # the RECEIPT waits for it
    assert peer.read_until("RECEIPT")["receipt-id"] == receipt
    return snapshot


def follow(peer: RawPeer, state: SeatMapState, server: ServerProcess) -> list[dict[str, Any]]:
    """Apply the peer's seat-map MESSAGEs as the SDK does (a snapshot replaces the map, a gap
    fails) until its map is the node's (``GET .../seats``, seq and statuses); the messages."""
    messages: list[dict[str, Any]] = []
    truth = rest_seats(server, state.event_id)
    while (state.seq, state.statuses) != (truth["seq"], statuses_of(truth)):
        if state.seq > truth["seq"]:
            truth = rest_seats(server, state.event_id)  # read before the peer's latest delta
            continue
        # Behind the node, or the node's map holds a change that its next delta brings.
        frame = peer.read_until("MESSAGE")  # an ERROR (slow consumer) fails here
        message = json.loads(frame.body)
        assert frame.get("seq") == str(message["seq"]), frame
        applied = state.apply(message)
        assert applied is not Applied.GAP, (message["type"], message["seq"], state.seq)
        messages.append(message)
    return messages


@pytest.mark.parametrize("where", ["tcp", "ws", "cluster"])
def test_a_subscriber_that_stops_reading_is_caught_up_not_cut(
    request: pytest.FixtureRequest, where: str
) -> None:
    """``cluster``: over TCP to one node of two, the seats sold on the other (its deltas come
    by Redis; the snapshot is the cluster's)."""
    seller: ServerProcess
    if where == "cluster":
        seller, node = request.getfixturevalue("pair")
    else:
        seller = node = request.getfixturevalue("node")
    event_id = new_event(seller)
    cuts = slow_consumer_cuts(node)
    catch_ups = metric_sum(node, "concert_hub_seatmap_catch_ups")
    transport = "ws" if where == "ws" else "tcp"
    with raw_peer(node, transport, **SLOW) as slow, RawTcp.to(node) as reader:
        slow_map, reader_map = SeatMapState(event_id), SeatMapState(event_id)
        assert slow_map.apply(subscribe(slow, event_id).body) is Applied.SNAPSHOT
        assert reader_map.apply(subscribe(reader, event_id).body) is Applied.SNAPSHOT

        burst(seller, event_id)  # the slow peer reads nothing meanwhile
        caught_up = follow(slow, slow_map, node)

        # Fewer, larger updates: some deltas, then one snapshot of the map as it was when the
        # peer had read its backlog, then deltas again (none here: the burst was over).
        kinds = [message["type"] for message in caught_up]
        assert "snapshot" in kinds, f"no catch-up snapshot: {kinds}"
        assert slow_consumer_cuts(node) == cuts, log_tail(node)
        # Operators see it.
        assert metric_sum(node, "concert_hub_seatmap_catch_ups") >= catch_ups + 1

        # A subscriber that reads had every delta, in order, and no snapshot after the first.
        read = follow(reader, reader_map, node)
        assert {message["type"] for message in read} == {"delta"}
        assert [message["seq"] for message in read] == list(
            range(read[0]["seq"], reader_map.seq + 1)
        )
        assert len(read) > len(caught_up)


def test_a_subscriber_that_never_reads_is_cut_by_other_output_only(node: ServerProcess) -> None:
    event_id = new_event(node)
    cuts = slow_consumer_cuts(node)
    with RawTcp.to(node, **SLOW) as silent:
        subscribe(silent, event_id)
        burst(node, event_id)  # more deltas than its budget: conflated, not a cut
        assert slow_consumer_cuts(node) == cuts, log_tail(node)

        # RECEIPTs it never reads (~8 KB each) grow its output past the budget: cut.
        receipt = encode_frame("UNSUBSCRIBE", {"id": "none", "receipt": "r" * 7900})
        for _ in range(256):
            silent.send_raw(receipt * 4)
            if silent.send_failed or slow_consumer_cuts(node) > cuts:
                break
        error = silent.expect_error(timeout=10)  # queued behind all it has not read
        assert error.message == "slow consumer"
        assert slow_consumer_cuts(node) == cuts + 1


class _Session:
    """A broker subscriber whose client is behind when the test says so."""

    framing: Framing = staticmethod(raw)
    closed = False

    def __init__(self) -> None:
        self.conn = ServerConnection(Limits())
        self.conn.version = StompVersion.V1_2
        self.writes = 0
        self.behind = False

    def push(self, payload: bytes) -> bool:
        self.writes += 1
        return self.behind

    def push_tracked(self, payload: bytes, subscription: Subscription, message_id: str) -> bool:
        return self.push(payload)


async def test_the_broker_takes_a_subscriber_that_falls_behind_off_a_conflated_route() -> None:
    """Checked in every slice of a sliced fan-out (a delta to more than ``SLICE`` followers);
    a route that is not conflated keeps writing to a client that is behind."""
    engine = InProcessEngine()
    broker = Broker(engine, BrokerMetrics(), "n")
    await engine.start(broker.deliver)
    seats, other = seats_route(1), "/topic/other"
    taken: list[tuple[Subscriber, Subscription]] = []
    broker.conflate(seats, lambda session, subscription: taken.append((session, subscription)))
    followers = [_Session() for _ in range(2 * SLICE + 1)]
    subscriptions = [Subscription("map", seats, AckMode.AUTO, []) for _ in followers]
    for session, subscription in zip(followers, subscriptions, strict=True):
        broker.subscribe(session, subscription, seats)
    reader = _Session()
    broker.subscribe(reader, Subscription("o", other, AckMode.AUTO, []), other)
    slow = followers[-1]  # written in the last slice
    slow.behind = reader.behind = True

    for _ in range(2):
        broker.fan_out(Message(seats, broker.next_id(), (), b"delta"), sliced=True)
        broker.fan_out(Message(other, broker.next_id(), (), b"news"))
        await broker.drained()
        assert taken == [(slow, subscriptions[-1])]  # once, after its first delta
    assert slow.writes == 1 and {s.writes for s in followers[:-1]} == {2}
    assert broker.subscriber_count(seats) == len(followers) - 1
    assert reader.writes == 2 and broker.subscriber_count(other) == 1
