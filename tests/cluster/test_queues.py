"""``/queue/`` in a cluster (issue 17): one Redis stream per queue, shared by every node."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.cluster.conftest import VISA, Cluster, create_event, hold, wait_ready
from tests.conftest import rest
from tests.server.stomp_clients import Client, Clients, unique


@pytest.fixture(scope="module")
def cluster_flags() -> dict[str, object]:
    # A short lease: a dead node's unacked messages go to the others after 2 s.
    # An event a crashed node had claimed is sent again after 2 s.
    return {"queue_lease_s": 2, "queue_poll_s": 0.5, "outbox_lease_s": 2}


@pytest.fixture
def clients(cluster: Cluster) -> Iterator[Clients]:
    opened = Clients(cluster["a"])
    yield opened
    opened.close_all()


def worker(clients: Clients, cluster: Cluster, node: str) -> Client:
    return clients("tcp", server=cluster[node], user=unique("app"), role="integration")


def test_two_nodes_share_one_queue(cluster: Cluster, clients: Clients) -> None:
    dest = f"/queue/{unique('shared')}"
    on_a, on_b = worker(clients, cluster, "a"), worker(clients, cluster, "b")
    for client in (on_a, on_b):
        client.subscribe(dest, ack="client-individual", headers={"prefetch-count": "5"})
    pub = clients("tcp", server=cluster["c"], user=unique("pub"), role="publisher")
    sent = [f"m{i}" for i in range(10)]
    for body in sent:
        pub.send(dest, body)
    # Neither may hold more than 5 unacked, so each node's consumer gets exactly 5.
    got_a = on_a.listener.messages(5, timeout=15)
    got_b = on_b.listener.messages(5, timeout=15)
    assert sorted(m.body for m in got_a + got_b) == sent
    for client, frames in ((on_a, got_a), (on_b, got_b)):
        for frame in frames:
            client.conn.ack(frame.headers["ack"])
    assert on_a.listener.quiet("MESSAGE", 0.5) == on_b.listener.quiet("MESSAGE", 0.1) == []


def test_a_killed_nodes_unacked_messages_go_to_another_node(
    cluster: Cluster, clients: Clients
) -> None:
    dest = f"/queue/{unique('crash')}"
    victim, heir_node = cluster["b"], cluster["a"]
    doomed = worker(clients, cluster, "b")
    doomed.subscribe(dest, ack="client")
    pub = clients("tcp", server=cluster["c"], user=unique("pub"), role="publisher")
    for body in ("x", "y", "z"):
        pub.send(dest, body)
    assert [m.body for m in doomed.listener.messages(3, timeout=15)] == ["x", "y", "z"]
    pub.send(dest, "after")  # stored while the consumer holds the others
    assert doomed.listener.message(timeout=15).body == "after"
    assert victim.proc is not None
    victim.proc.kill()  # kill -9: no goodbye, nothing released
    victim.proc.wait(10)
    try:
        heir = clients("tcp", server=heir_node, user=unique("heir"), role="integration")
        heir.subscribe(dest, ack="client-individual")
        frames = heir.listener.messages(4, timeout=30)  # after the 2 s lease
        assert sorted(m.body for m in frames) == ["after", "x", "y", "z"]
        assert all(m.headers["redelivered"] == "true" for m in frames)
        for frame in frames:
            heir.conn.ack(frame.headers["ack"])
        assert heir.listener.quiet("MESSAGE", 0.5) == []
    finally:
        victim.start()
        wait_ready([victim], 20)


def test_an_event_is_published_once_after_its_node_died_before_publishing(
    cluster: Cluster, clients: Clients
) -> None:
    """The only node left running dies right after committing a sale, before publishing its
    event; after the restart the cluster publishes it once, to the Redis stream."""
    victim, others = cluster["b"], [cluster["a"], cluster["c"]]
    event_id = create_event(victim)
    for node in others:
        node.stop()
    victim.stop()
    victim.flags["fault_crash_before_publish"] = True
    try:
        victim.start()
        user = unique("buyer")
        hold_id = hold(victim, event_id, user, ["S-A-3"])
        with contextlib.suppress(OSError):  # it may die before it answers
            rest(victim, "POST", f"/api/holds/{hold_id}/checkout", VISA,
                 token=victim.token(user), headers={"Idempotency-Key": unique("k")})  # fmt: skip
        assert victim.proc is not None
        assert victim.proc.wait(20) == 70, "the injected crash did not happen"
    finally:
        victim.flags.pop("fault_crash_before_publish")
        with ThreadPoolExecutor(3) as pool:
            for started in [pool.submit(n.start) for n in (victim, *others)]:
                started.result()
        wait_ready(cluster.alive(), 20)
    status, mine = rest(victim, "GET", "/api/orders", token=victim.token(user))
    assert status == 200 and len(mine) == 1, mine
    erp = worker(clients, cluster, "c")
    erp.subscribe("/queue/integration.orders", ack="client-individual")
    paid: list[dict[str, Any]] = []
    while not paid:
        frame = erp.listener.message(timeout=30)
        erp.conn.ack(frame.headers["ack"])
        body = json.loads(frame.body)
        if body["data"]["order_id"] == mine[0]["order_id"]:
            paid.append(body)
    assert paid[0]["type"] == "order.paid"
    again = [json.loads(f.body) for f in erp.listener.quiet("MESSAGE", 1.5)]
    assert all(b["id"] != paid[0]["id"] for b in again), "the event was published twice"
