"""The seat-map tick of a cluster follows its busiest node (``--seat-delivery-budget``): whichever
node produces an event's deltas, a node with many followers is not sent more than its budget."""

from __future__ import annotations

import time

import pytest

from server.node_roster import REPORT_EVERY_S
from tests.booking.conftest import call
from tests.cluster.conftest import Cluster, create_event, wait_until
from tests.conftest import ServerProcess
from tests.seat_feed import SeatFeed
from tests.server.stomp_clients import Clients, unique


@pytest.fixture(scope="module")
def cluster_flags() -> dict[str, object]:
    return {"seat_tick_ms": 100, "seat_delivery_budget": 2}  # one follower: a 500 ms tick


def hold(server: ServerProcess, event_id: int, seat: str) -> None:
    status, body = call(server, "POST", f"/api/events/{event_id}/holds", {"seats": [seat]},
                        token=server.token(unique("shopper")))  # fmt: skip
    assert status == 201, body


def test_every_node_ticks_at_the_pace_of_the_busiest(cluster: Cluster) -> None:
    """The only follower is on a node that does not produce the event's deltas."""
    event_id = create_event(cluster["a"])
    hold(cluster["a"], event_id, "S-A-1")
    lease = f"chub:{{sm:{event_id}}}:lease"
    holder = wait_until(lambda: cluster.redis.get(lease), 5, "a seat-map lease holder")
    leader = cluster.by_node_id(holder.decode())
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    opened = Clients(follower)
    try:
        feed = SeatFeed(opened("tcp"), event_id)
        feed.subscribe()
        hold(leader, event_id, "S-A-2")
        feed.until({"S-A-2": "held"})  # the subscription joined its route with this delta
        time.sleep(REPORT_EVERY_S * 1.5)  # every node heard the follower's node since
        before = len(feed.deltas)
        for seat in ("S-A-3", "S-A-4", "S-A-5"):
            hold(leader, event_id, seat)
            feed.until({seat: "held"})
    finally:
        opened.close_all()
    assert cluster.redis.get(lease) == holder  # the deltas came from the leader
    ticks = [delta["tick_ms"] for delta in feed.deltas[before:]]
    assert ticks and min(ticks) >= 500, ticks
