"""Random STOMP sessions (:mod:`tests.stomp_fuzz`) spread over a three-node cluster on Redis and
MariaDB, so that ``/queue/`` messages, seat-map sequencing and replies to users go through the
Redis backplane.

Each session must end as it must on one node (frames that parse; an ERROR with a message and a
close, or the DISCONNECT's receipt and a close). Afterwards the cluster acts as one: no node
logged a traceback or holds a connection, and every node serves the same seat map, at the same
seq, with the seats held the database holds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select

from booking.schema import seats
from tests.booking.conftest import sync_url
from tests.cluster.conftest import NODE_NAMES, Cluster, create_event, rest_seats, wait_until
from tests.stomp_fuzz import play, sessions, settled

#: Sessions over the whole cluster (about 15 s).
EXAMPLES = 100


@pytest.fixture(scope="module")
def event_id(cluster: Cluster) -> int:
    return create_event(cluster["a"])


@pytest.fixture(scope="module")
def fuzzed(cluster: Cluster, event_id: int) -> Iterator[Cluster]:
    """The module's cluster; after the sessions, every node is settled and all agree."""
    before = {name: len(node.log()) for name, node in cluster.nodes.items()}
    yield cluster
    for name, node in cluster.nodes.items():
        settled(node, before[name])

    def agreed() -> bool:
        maps = [rest_seats(node, event_id) for node in cluster.nodes.values()]
        return all(m["seq"] == maps[0]["seq"] and m["seats"] == maps[0]["seats"] for m in maps)

    wait_until(agreed, 5, "every node serving the same seat map")
    engine = create_engine(sync_url(cluster.database_url))
    try:
        with engine.connect() as conn:
            query = select(seats.c.seat_id).where(
                seats.c.event_id == event_id,
                seats.c.hold_id.is_not(None),
                seats.c.order_id.is_(None),
            )
            held = {row.seat_id for row in conn.execute(query)}  # holds last minutes: none lapsed
    finally:
        engine.dispose()
    served = rest_seats(cluster["a"], event_id)["seats"]
    assert {seat for seat, status in served if status == "held"} == held


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_sessions_on_any_node_leave_the_cluster_as_one(
    fuzzed: Cluster, event_id: int, data: st.DataObject
) -> None:
    node = fuzzed[data.draw(st.sampled_from(NODE_NAMES))]
    play(node, data.draw(sessions(event_id)))
