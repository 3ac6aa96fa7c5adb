"""One seat-map sequence for the whole cluster (SPEC §6, §8).

Seat changes made through node A reach subscribers on B and C as the same deltas with one
contiguous ``seq``; a subscriber arriving later on any node, even while seats churn, gets a
snapshot that is exactly the map as of its ``seq``, and then the very deltas everyone else gets;
``GET /api/events/{id}/seats`` on every node serves the same snapshot.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.booking.conftest import call
from tests.cluster.conftest import (
    Cluster,
    book,
    create_event,
    hold,
    release,
    rest_seats,
)
from tests.conftest import ServerProcess
from tests.seat_feed import SeatFeed, statuses_of
from tests.server.stomp_clients import Clients, unique

SEATS = [f"S-{row}-{n}" for row in "AB" for n in range(1, 11)]


@pytest.fixture
def clients(cluster: Cluster) -> Iterator[Clients]:
    opened = Clients(cluster["a"])
    yield opened
    opened.close_all()


def churn(node: ServerProcess, event_id: int, stop: threading.Event, worker: int,
          failures: list[object]) -> None:  # fmt: skip
    """Hold one or two random seats and release them again, until ``stop``."""
    rng = random.Random(worker)
    user = unique(f"churn{worker}")
    token = node.token(user)
    try:
        while not stop.is_set():
            wanted = rng.sample(SEATS[:16], rng.randint(1, 2))
            status, body = call(node, "POST", f"/api/events/{event_id}/holds",
                                {"seats": wanted}, token=token)  # fmt: skip
            if status == 201:
                time.sleep(rng.uniform(0, 0.05))
                release(node, user, body["hold_id"])
            elif status != 409:
                failures.append((status, body))
    except Exception as exc:  # reported by the test
        failures.append(exc)


def test_changes_through_one_node_reach_every_node_as_one_sequence(
    cluster: Cluster, clients: Clients
) -> None:
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    event_id = create_event(a)
    early = {
        name: SeatFeed(clients("tcp", server=cluster[name]), event_id, record_gaps=True)
        for name in "bc"
    }
    snapshots = {name: feed.subscribe() for name, feed in early.items()}
    assert snapshots["b"] == snapshots["c"], "two nodes served different snapshots"
    assert set(statuses_of(snapshots["b"]).values()) == {"available"}

    # Step by step through node A: each step shows up on B and C.
    alice, bob = unique("alice"), unique("bob")
    first = hold(a, event_id, alice, ["S-A-1", "S-A-2"])
    for feed in early.values():
        feed.until({"S-A-1": "held", "S-A-2": "held"})
    release(a, alice, first)
    for feed in early.values():
        feed.until({"S-A-1": "available", "S-A-2": "available"})
    book_hold = hold(a, event_id, bob, ["S-B-9"])
    for feed in early.values():
        feed.until({"S-B-9": "held"})
    order = call(a, "POST", f"/api/holds/{book_hold}/checkout",
                 {"payment": {"method": "card", "token": "tok_visa"}},
                 token=a.token(bob), headers={"Idempotency-Key": unique("k")})  # fmt: skip
    assert order[0] == 201, order
    for feed in early.values():
        feed.until({"S-B-9": "sold"})

    # Churn through node A while late subscribers arrive on B and C.
    stop = threading.Event()
    failures: list[object] = []
    workers = [threading.Thread(target=churn, args=(a, event_id, stop, i, failures), daemon=True)
               for i in range(3)]  # fmt: skip
    for worker in workers:
        worker.start()
    late: list[tuple[str, SeatFeed]] = []
    try:
        connections = {"b": clients("tcp", server=b), "c": clients("tcp", server=c)}
        for i in range(6):
            name = "bc"[i % 2]
            feed = SeatFeed(connections[name], event_id, record_gaps=True)
            feed.subscribe()
            late.append((name, feed))
            time.sleep(0.15)
    finally:
        stop.set()
        for worker in workers:
            worker.join(15)
    assert not failures, failures[:3]
    # The churn always releases what it held, and S-B-9 stays sold.
    truth = {seat: "available" for seat in SEATS} | {"S-B-9": "sold"}

    for feed in [*early.values(), *(f for _, f in late)]:
        feed.drain()
        assert feed.statuses == truth, f"{feed.client.conn.transport} ended at {feed.statuses}"
        assert feed.gaps == [], f"seq gaps {feed.gaps}"
    reference = early["b"]
    assert len(reference.deltas) >= 6, reference.deltas
    assert early["c"].deltas == reference.deltas, "B and C saw different deltas"
    assert [d["seq"] for d in reference.deltas] == list(
        range(snapshots["b"]["seq"] + 1, reference.seq + 1)
    )
    for name, feed in late:
        # The snapshot is exactly the map as of its seq, and the deltas are everyone's.
        seq = feed.snapshot["seq"]
        assert seq in reference.history, f"late snapshot on {name} at unknown seq {seq}"
        assert statuses_of(feed.snapshot) == reference.history[seq], f"snapshot {seq} on {name}"
        assert feed.deltas == [d for d in reference.deltas if d["seq"] > seq], name

    # One more sale: every subscription, early or late, on B or C, gets the same next deltas.
    everyone = [*early.values(), *(f for _, f in late)]
    seen = [len(feed.deltas) for feed in everyone]
    book(a, event_id, ["S-B-10"])
    for feed in everyone:
        feed.until({"S-B-10": "sold"})
        feed.drain(0.3)
    nexts = [feed.deltas[start:] for feed, start in zip(everyone, seen, strict=True)]
    assert all(d == nexts[0] for d in nexts), nexts
    assert nexts[0][0]["seq"] == reference.seq - len(nexts[0]) + 1
    expected_seq = reference.seq
    truth["S-B-10"] = "sold"

    # A subscriber arriving now on C gets the map REST serves, at the seq everyone is at.
    time.sleep(0.5)
    newcomer = SeatFeed(clients("tcp", server=c), event_id, record_gaps=True)
    snapshot = newcomer.subscribe()
    assert statuses_of(snapshot) == truth
    assert snapshot["seq"] == reference.seq == expected_seq
    assert newcomer.pending() == [], "a delta without a change"
    rest = {node.flags["node_id"]: rest_seats(node, event_id) for node in (a, b, c)}
    for node_id, body in rest.items():
        assert statuses_of(body) == truth, f"GET /api/events/{event_id}/seats on {node_id}"
    rest_seqs = {node_id: body["seq"] for node_id, body in rest.items()}
    assert rest_seqs == dict.fromkeys(rest, snapshot["seq"]), (
        f"GET /api/events/{event_id}/seats serves seq {rest_seqs}, "
        f"but the STOMP snapshot and deltas are at seq {snapshot['seq']}"
    )
    for node_id, body in rest.items():
        assert body == snapshot, f"REST snapshot on {node_id} differs from the STOMP one"


def test_a_seat_change_crosses_redis_once_and_is_published_once(
    cluster: Cluster, clients: Clients
) -> None:
    """The architecture's promise, counted on the wire with MONITOR: a hold committed on node A
    enters Redis once (its change, appended to the event's pending list), and its seat reaches
    the other nodes once (in the one delta published on the seats channel) — no second trip
    through another channel, no second publish by another node."""
    a, b = cluster["a"], cluster["b"]
    event_id = create_event(a)
    feed = SeatFeed(clients("tcp", server=b), event_id, record_gaps=True)
    feed.subscribe()
    seat = "S-B-7"
    seen: list[dict[str, Any]] = []
    watcher = redis.Redis(port=cluster.redis.port, socket_timeout=10)
    monitor = watcher.monitor()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    monitor.connection.send_command("MONITOR")  # start it here, so nothing done below escapes
    assert monitor.connection.read_response() in (b"OK", "OK")

    def watch(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                seen.append(monitor.next_command())
            except (redis.RedisError, OSError):
                return

    stop = threading.Event()
    reader = threading.Thread(target=watch, args=(stop,), daemon=True)
    reader.start()
    try:
        hold(a, event_id, unique("alice"), [seat])
        feed.until({seat: "held"})
        time.sleep(0.5)  # a few more ticks: nothing else may carry the seat
    finally:
        stop.set()
        reader.join(5)  # the nodes' ticks send commands every 100 ms: the reader wakes
        monitor.connection.disconnect()
        watcher.close()
    carrying = [c for c in seen if seat in c["command"] and c.get("client_type") != "lua"]
    words = [c["command"].split()[0].upper() for c in carrying]
    assert sorted(words) == ["PUBLISH", "RPUSH"], carrying
    (append,) = [c for c in carrying if c["command"].upper().startswith("RPUSH")]
    assert f"{{sm:{event_id}}}:pending" in append["command"]
    (publish,) = [c for c in carrying if c["command"].upper().startswith("PUBLISH")]
    assert f"/topic/events/{event_id}/seats" in publish["command"]


def test_a_change_pushed_late_by_another_node_is_corrected_from_the_record(
    cluster: Cluster, clients: Clients
) -> None:
    """Two nodes' pushes are not ordered: a hold committed on B and released on A can reach
    the shared list as "available" then "held". The producer reads the delta's seats back from
    the database, so the seat shows available again by the next tick, on every node, and can be
    held (the probe's seat stayed "held" for good and was never sold)."""
    event_id = create_event(cluster["a"])
    user = unique("late")
    hold_id = hold(cluster["b"], event_id, user, ["S-A-7"])
    feed = SeatFeed(clients("tcp"), event_id)
    feed.subscribe()
    feed.until({"S-A-7": "held"})
    release(cluster["a"], user, hold_id)
    feed.until({"S-A-7": "available"})
    # B's push of its hold, late: what a slow node's batch looks like arriving after A's.
    client = cluster.redis.client()
    try:
        client.rpush(f"chub:{{sm:{event_id}}}:pending", json.dumps([["S-A-7", "held"]]))
    finally:
        client.close()
    feed.until({"S-A-7": "held"})  # the late push is published as it came ...
    feed.until({"S-A-7": "available"})  # ... and corrected from the record a tick later
    for node in cluster.alive():
        assert statuses_of(rest_seats(node, event_id))["S-A-7"] == "available", node.http_url
    hold(cluster["b"], event_id, unique("next"), ["S-A-7"])
    feed.until({"S-A-7": "held"})
