"""A cluster acts as one (SPEC §8): an event's settings changed through one node hold on every
node at once, also after a Redis outage; the admin statistics list every node.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from tests.booking.conftest import call
from tests.cluster.conftest import Cluster, answers_ready, create_event, wait_until
from tests.conftest import ServerProcess
from tests.server.stomp_clients import open_stomp, unique

#: The issue's bound for a change to reach every node.
EVERY_NODE_S = 1.0
READY_AGAIN_S = 15.0


def patch(node: ServerProcess, event_id: int, **changes: Any) -> dict[str, Any]:
    status, body = call(node, "PATCH", f"/api/admin/events/{event_id}", changes,
                        token=node.token("root", "admin"))  # fmt: skip
    assert status == 200, (status, body)
    return dict(body)


def event(node: ServerProcess, event_id: int) -> dict[str, Any]:
    status, body = call(node, "GET", f"/api/events/{event_id}")
    assert status == 200, (status, body)
    return dict(body)


def event_has(node: ServerProcess, event_id: int, key: str, value: object) -> bool:
    return bool(event(node, event_id)[key] == value)


def event_on_sale(node: ServerProcess, event_id: int) -> dict[str, Any] | bool:
    """The event as ``node`` serves it once its sale is open (``False`` until then)."""
    return (e := event(node, event_id))["status"] == "on_sale" and e


def try_hold(node: ServerProcess, event_id: int, seat: str) -> tuple[int, Any]:
    user = unique("shopper")
    return call(node, "POST", f"/api/events/{event_id}/holds", {"seats": [seat]},
                token=node.token(user))  # fmt: skip


def test_a_change_through_one_node_holds_on_every_node_at_once(cluster: Cluster) -> None:
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    event_id = create_event(a)
    patch(a, event_id, status="paused")
    for node in (b, c):  # every node has the event loaded, paused
        wait_until(functools.partial(event_has, node, event_id, "status", "paused"), 5, "paused")
        assert try_hold(node, event_id, "S-A-1")[0] == 409

    patch(a, event_id, status="on_sale", hold_ttl_s=120, max_seats_per_user=2)
    for node in (b, c):
        seen = wait_until(
            functools.partial(event_on_sale, node, event_id),
            EVERY_NODE_S * 5,  # the bound is 1 s; the test allows for a loaded machine
            f"{node.flags['node_id']} sees the sale open",
        )
        assert (seen["hold_ttl_s"], seen["max_seats_per_user"]) == (120, 2)
    status, body = try_hold(b, event_id, "S-A-2")
    assert status == 201, body
    status, body = try_hold(c, event_id, "S-A-3")
    assert status == 201, body


def test_a_change_made_during_a_redis_outage_reaches_every_node_after_it(
    cluster: Cluster,
) -> None:
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    event_id = create_event(a)
    for node in (b, c):
        assert event(node, event_id)["max_seats_per_user"] != 3
    cluster.redis.kill()
    try:
        patch(a, event_id, max_seats_per_user=3)  # the database takes it; the announcement is lost
    finally:
        cluster.redis.start()
    for node in (a, b, c):
        wait_until(functools.partial(answers_ready, node), READY_AGAIN_S, "ready again")
    for node in (b, c):
        wait_until(
            functools.partial(event_has, node, event_id, "max_seats_per_user", 3),
            READY_AGAIN_S,
            f"{node.flags['node_id']} catches up after the outage",
        )


def test_the_admin_statistics_list_every_node(cluster: Cluster) -> None:
    a = cluster["a"]

    def stats() -> dict[str, Any]:
        status, body = call(a, "GET", "/api/admin/stats", token=a.token("root", "admin"))
        assert status == 200, (status, body)
        return dict(body)

    expected = sorted(str(node.flags["node_id"]) for node in cluster.alive())
    body = wait_until(
        lambda: (s := stats()) and [n["node_id"] for n in s["nodes"]] == expected and s,
        10,
        "every node in the statistics",
    )
    assert all(n["last_seen"].endswith("Z") for n in body["nodes"])
    assert body["connections"] == sum(n["connections"] for n in body["nodes"])


def test_a_page_on_another_node_hears_of_a_pause_once_that_node_holds_it(
    cluster: Cluster,
) -> None:
    """The status topic is pushed by each node once it re-read the change: a page told "paused"
    by node b and re-reading the event from node b reads it paused."""
    a, b = cluster["a"], cluster["b"]
    event_id = create_event(a)
    page = open_stomp(b, "ws", user=unique("buyer"))
    try:
        page.subscribe(f"/topic/events/{event_id}/status")
        assert json.loads(page.listener.messages(1)[0].body)["status"] == "on_sale"
        patch(a, event_id, status="paused")
        told = json.loads(page.listener.messages(1)[0].body)
        assert (told["status"], told["on_sale"]) == ("paused", False)
        assert event(b, event_id)["status"] == "paused"
    finally:
        page.close()
