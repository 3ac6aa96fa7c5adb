"""A node dies with ``kill -9`` (SPEC §8): no goodbye, no cleanup, sessions on it cut off.

The node killed is the one producing the event's seat-map deltas (holding its lease), the worst
case. The other nodes keep serving: their subscribers still receive published messages and seat
deltas, with no ``seq`` gap once another node takes the lease. A stomp.py client that was on the
dead node fails over to the next host in its list, resubscribes the seat map and gets a snapshot
consistent with REST. No committed booking is lost.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stomp

from tests.booking.conftest import call
from tests.cluster.conftest import (
    Cluster,
    book,
    create_event,
    numbered_topic,
    rest_seats,
    wait_until,
)
from tests.conftest import ServerProcess
from tests.seat_feed import SeatFeed, statuses_of
from tests.server.stomp_clients import Client, Clients, Collector

LEASE_TAKEOVER_S = 5.0  # the lease lasts one second; allow for a loaded machine


@pytest.fixture
def clients(cluster: Cluster) -> Iterator[Clients]:
    opened = Clients(cluster["a"])
    yield opened
    opened.close_all()


def failover_client(hosts: list[ServerProcess], user: str) -> Client:
    """stomp.py over TCP with a list of nodes to try in order (its built-in failover)."""
    listener = Collector()
    conn = stomp.Connection12(
        [(n.host, n.stomp_port) for n in hosts],
        reconnect_attempts_max=2, reconnect_sleep_initial=0.1, timeout=2,
    )  # fmt: skip
    conn.set_listener("collector", listener)
    conn.connect("any", hosts[0].token(user), wait=True)
    return Client(conn, listener, listener.wait("CONNECTED"), "tcp", "1.2")


def bodies(client: Client, prefix: str) -> list[str]:
    return [
        str(f.body)
        for kind, f in client.listener.frames
        if kind == "MESSAGE" and f is not None and str(f.body).startswith(prefix)
    ]


def has_bodies(client: Client, prefix: str, count: int) -> bool:
    return len(bodies(client, prefix)) == count


def test_killing_a_node_loses_nothing_and_its_clients_fail_over(
    cluster: Cluster, clients: Clients
) -> None:
    a = cluster["a"]
    event_id = create_event(a)
    orders: list[tuple[ServerProcess, str, dict[str, Any]]] = []
    for index, node in enumerate(cluster.nodes.values()):  # a paid order through every node
        user, order = book(node, event_id, [f"S-A-{index + 1}"])
        orders.append((node, user, order))

    # The node producing the seat deltas of this event dies: the worst case.
    lease = f"chub:{{sm:{event_id}}}:lease"
    holder = wait_until(lambda: cluster.redis.get(lease), 5, "a seat-map lease holder")
    victim = cluster.by_node_id(holder.decode())
    survivors = [n for n in cluster.nodes.values() if n is not victim]
    first, second = survivors

    topic = numbered_topic("crash")
    listeners = {str(n.flags["node_id"]): clients("tcp", server=n, user="listener")
                 for n in cluster.nodes.values()}  # fmt: skip
    for listener in listeners.values():
        listener.subscribe(topic)
    feeds = {str(n.flags["node_id"]): SeatFeed(clients("tcp", server=n), event_id, record_gaps=True)
             for n in survivors}  # fmt: skip
    for feed in feeds.values():
        feed.subscribe()
    roamer = failover_client([victim, first], "roamer")
    clients.opened.append(roamer)
    assert roamer.reply.headers["session"].startswith(f"{victim.flags['node_id']}-")
    roaming = SeatFeed(roamer, event_id, record_gaps=True)
    roaming.subscribe()
    publishers = {str(n.flags["node_id"]): clients("tcp", server=n, user="pub", role="publisher")
                  for n in cluster.nodes.values()}  # fmt: skip
    for node_id, publisher in publishers.items():
        publisher.send(topic, f"before-{node_id}")
    for node_id, listener in listeners.items():
        wait_until(functools.partial(has_bodies, listener, "before-", 3), 5,
                   f"messages from every node on {node_id}")  # fmt: skip
    user, order = book(first, event_id, ["S-B-1"])
    orders.append((first, user, order))
    for feed in [*feeds.values(), roaming]:
        feed.until({"S-B-1": "sold"})

    # kill -9: the node's sessions are cut without an ERROR or a close handshake.
    assert victim.proc is not None
    victim.proc.kill()
    victim.proc.wait(10)
    roamer.listener.wait_disconnected(10)

    # The others keep serving: messages published on both survivors reach both survivors.
    expected = {str(n.flags["node_id"]): [f"after-{n.flags['node_id']}-{i}" for i in range(10)]
                for n in survivors}  # fmt: skip
    for node_id, sent in expected.items():
        for body in sent:
            publishers[node_id].send(topic, body, receipt=False)
        publishers[node_id].send(topic, f"after-{node_id}-end")
    for node in survivors:
        listener = listeners[str(node.flags["node_id"])]
        assert not listener.listener.disconnected, listener.listener.describe()
        for node_id, sent in expected.items():
            wait_until(functools.partial(bodies, listener, f"after-{node_id}-end"), 5,
                       f"'after-{node_id}-end' on {node.flags['node_id']}")  # fmt: skip
            assert bodies(listener, f"after-{node_id}-")[:-1] == sent, node.flags["node_id"]

    # Seat deltas go on: another node takes the lease, and the seq goes on without a gap.
    started = time.monotonic()
    user, order = book(second, event_id, ["S-B-2"])
    orders.append((second, user, order))
    for feed in feeds.values():
        feed.until({"S-B-2": "sold"}, timeout=LEASE_TAKEOVER_S)
    took = time.monotonic() - started
    # The same deltas on both, from where both had started: a setup order's delta may be in one
    # feed's snapshot and come to the other as a delta, by when each subscribed.
    since = max(feed.snapshot["seq"] for feed in feeds.values())
    on_first, on_second = (
        [d for d in feeds[str(node.flags["node_id"])].deltas if d["seq"] > since]
        for node in (first, second)
    )
    assert on_first == on_second and on_first, (on_first, on_second)
    for node_id, feed in feeds.items():
        assert feed.gaps == [], f"seq gap on {node_id} across the crash: {feed.gaps}"
    new_holder = cluster.redis.get(lease)
    assert new_holder is not None and new_holder.decode() != victim.flags["node_id"], new_holder

    # The client that was on the dead node fails over to the next node in its list and
    # resubscribes: its snapshot is the map REST serves and the survivors' subscribers have.
    roamer.conn.connect("any", first.token("roamer"), wait=True)
    reconnected = roamer.listener.wait("CONNECTED", 10)
    assert reconnected.headers["session"].startswith(f"{first.flags['node_id']}-"), (
        reconnected.headers
    )
    snapshot = roaming.subscribe()
    reference = feeds[str(first.flags["node_id"])]
    truth = dict.fromkeys(reference.statuses, "available")
    truth |= dict.fromkeys(["S-A-1", "S-A-2", "S-A-3", "S-B-1", "S-B-2"], "sold")
    assert statuses_of(snapshot) == truth
    assert reference.statuses == truth
    assert snapshot["seq"] == reference.seq, (snapshot["seq"], reference.seq)
    rest = rest_seats(first, event_id)
    assert statuses_of(rest) == truth
    user, order = book(first, event_id, ["S-B-3"])
    orders.append((first, user, order))
    roaming.until({"S-B-3": "sold"})
    assert roaming.gaps == [] and roaming.deltas[0]["seq"] == snapshot["seq"] + 1, roaming.deltas

    # No committed booking is lost, including those made through the dead node.
    for node, user, order in orders:
        reader = first if node is victim else node
        status, body = call(reader, "GET", f"/api/orders/{order['order_id']}",
                            token=reader.token(user))  # fmt: skip
        assert status == 200 and body["status"] == "paid", (node.flags["node_id"], status, body)
        assert [t["seat_id"] for t in body["tickets"]] == [
            t["seat_id"] for t in order["tickets"]
        ], body

    assert took < LEASE_TAKEOVER_S
    assert rest["seq"] == snapshot["seq"], (
        f"GET /api/events/{event_id}/seats serves seq {rest['seq']}; "
        f"the STOMP snapshot is at seq {snapshot['seq']}"
    )
