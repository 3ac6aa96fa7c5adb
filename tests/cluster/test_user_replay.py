"""Messages to a user replayed once after a reconnect to any node (issue 17).

A user's session dies; meanwhile the user is sent replies (from their other device) and is
admitted from the waiting room. Subscribing again on another node with ``resume-after`` (the
last message-id received there) delivers exactly the missed messages, once each, with their
original ``message-id``; then live messages flow as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.booking.conftest import call
from tests.cluster.conftest import Cluster, create_event, rest_seats, wait_ready
from tests.seat_feed import statuses_of
from tests.server.stomp_clients import Client, Clients, unique
from tests.server.test_waiting_room_live import create_event as create_queued_event

REPLIES = "/user/queue/replies"
POSITION = "/user/queue/position"


@pytest.fixture
def clients(cluster: Cluster) -> Iterator[Clients]:
    opened = Clients(cluster["a"])
    yield opened
    opened.close_all()


def ping(client: Client, correlation: str) -> None:
    client.send("/app/ping", "", headers={"correlation-id": correlation})


def resume_after(seen: str) -> dict[str, str]:
    """The SUBSCRIBE header asking for the replies after ``seen``."""
    return {"resume-after": seen}


def replies(client: Client, sub_id: str, count: int) -> list[tuple[str, str]]:
    """The next ``count`` replies of subscription ``sub_id``: (correlation-id, message-id)."""
    got = []
    for _ in range(count):
        frame = client.listener.wait(
            "MESSAGE", 10, lambda f: f.headers.get("subscription") == sub_id
        )
        got.append((frame.headers["correlation-id"], frame.headers["message-id"]))
    return got


def test_replies_missed_while_away_are_replayed_once_on_another_node(
    cluster: Cluster, clients: Clients
) -> None:
    alice = unique("alice")
    first = clients("tcp", server=cluster["a"], user=alice)
    first_sub = first.subscribe(REPLIES)
    ping(first, "1")
    [(_, last_seen)] = replies(first, first_sub, 1)
    first.conn.transport.disconnect_socket()  # gone, no DISCONNECT

    other = clients("tcp", server=cluster["c"], user=alice)  # alice's other device
    other_sub = other.subscribe(REPLIES)
    ping(other, "2")
    ping(other, "3")
    missed = replies(other, other_sub, 2)
    assert [c for c, _ in missed] == ["2", "3"]

    back = clients("tcp", server=cluster["b"], user=alice)
    back_sub = back.subscribe(REPLIES, headers=resume_after(last_seen))
    assert replies(back, back_sub, 2) == missed  # the same message-ids
    ping(back, "4")
    [(correlation, _)] = replies(back, back_sub, 1)
    assert correlation == "4"
    assert back.listener.quiet("MESSAGE", 0.5) == [], "a message came twice"

    # An id no longer (or never) kept replays everything kept; no header replays nothing.
    everything = clients("tcp", server=cluster["a"], user=alice)
    sub = everything.subscribe(REPLIES, headers=resume_after("*"))
    assert [c for c, _ in replies(everything, sub, 4)] == ["1", "2", "3", "4"]
    fresh = clients("tcp", server=cluster["a"], user=alice)
    fresh.subscribe(REPLIES)
    assert fresh.listener.quiet("MESSAGE", 0.5) == []


def admitted_ids(client: Client, sub_id: str) -> list[str]:
    """Read position messages until one says admitted with a token; the message-ids of those
    that said admitted."""
    pushed: list[tuple[str, dict[str, object]]] = []
    while not any(m["state"] == "admitted" and m.get("admission_token") for _, m in pushed):
        frame = client.listener.wait(
            "MESSAGE", 20, lambda f: f.headers.get("subscription") == sub_id
        )
        pushed.append((frame.headers["message-id"], json.loads(frame.body)))
    return [mid for mid, m in pushed if m["state"] == "admitted"]


def test_an_admission_made_while_away_is_not_missed(cluster: Cluster, clients: Clients) -> None:
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    event_id = create_queued_event(a, opens_in=3)  # a pre-queue: admitted when the sale opens
    bob = unique("bob")
    status, body = call(a, "POST", f"/api/events/{event_id}/queue", token=a.token(bob))
    assert status in (200, 201, 202), body
    first = clients("tcp", server=a, user=bob)
    first_sub = first.subscribe(POSITION)
    greeting = first.listener.wait(
        "MESSAGE", 10, lambda f: f.headers.get("subscription") == first_sub
    )
    assert json.loads(greeting.body)["state"] != "admitted"
    first.conn.transport.disconnect_socket()
    witness = clients("tcp", server=c, user=bob)  # bob's other device stays connected
    witness_sub = witness.subscribe(POSITION)

    heard = admitted_ids(witness, witness_sub)
    back = clients("tcp", server=b, user=bob)
    back_sub = back.subscribe(POSITION, headers=resume_after(greeting.headers["message-id"]))
    replayed = admitted_ids(back, back_sub)
    # The admission as published (the same message-id on both devices), replayed once.
    shared = set(heard) & set(replayed)
    assert len(shared) == 1, (heard, replayed)
    assert replayed.count(shared.pop()) == 1


def test_a_hold_under_way_when_its_node_stops_is_answered_on_another_node(
    cluster: Cluster, clients: Clients, tmp_path: Path
) -> None:
    """SIGTERM while an ``/app`` hold is deciding: the node lets the command finish before it
    closes its database and backplane, so the hold commits and its reply is kept; the user,
    back on another node, gets it replayed (before, the command was cut off with no answer)."""
    a, b = cluster["a"], cluster["b"]
    event_id = create_event(b)
    delay = tmp_path / "hold-delay-ms"
    delay.write_text("1200")  # the database is slow: the hold takes 1.2 s
    a.stop()
    a.flags["fault_hold_delay_file"] = str(delay)
    a.start()
    try:
        alice = unique("alice")
        first = clients("tcp", server=a, user=alice)
        first.subscribe(REPLIES)
        first.send(
            f"/app/events/{event_id}/holds",
            json.dumps({"seats": ["S-A-1"]}),
            content_type="application/json",
            headers={"correlation-id": "mine"},
        )
        time.sleep(0.3)  # the hold is under way
        assert a.stop() == 0

        back = clients("tcp", server=b, user=alice)
        sub = back.subscribe(REPLIES, headers=resume_after("*"))
        frame = back.listener.wait("MESSAGE", 10, lambda f: f.headers.get("subscription") == sub)
        assert frame.headers["correlation-id"] == "mine"
        answer = json.loads(frame.body)
        assert answer["type"] == "hold", answer
        assert answer["seats"] == ["S-A-1"]
        assert statuses_of(rest_seats(b, event_id))["S-A-1"] == "held"
    finally:
        a.flags.pop("fault_hold_delay_file")
        a.start()
        wait_ready([a], 20)


def test_a_restarted_node_does_not_issue_its_message_ids_again(
    cluster: Cluster, clients: Clients
) -> None:
    """Nodes keep their --node-id across restarts (Compose's app1, a StatefulSet's pod): ids
    that started again at 1 matched a resuming client's id to an older message, which replayed
    everything since it again."""
    a, c = cluster["a"], cluster["c"]
    alice = unique("alice")
    before = clients("tcp", server=a, user=alice)
    sub = before.subscribe(REPLIES)
    for n in range(3):
        ping(before, f"old{n}")
    old = replies(before, sub, 3)
    before.close()
    a.stop()
    a.start()
    wait_ready([a], 20)
    after = clients("tcp", server=a, user=alice)
    sub = after.subscribe(REPLIES)
    for n in range(3):
        ping(after, f"new{n}")
    new = replies(after, sub, 3)
    assert not {mid for _, mid in old} & {mid for _, mid in new}, (old, new)
    # resuming after the newest reply replays nothing, on any node
    back = clients("tcp", server=c, user=alice)
    back.subscribe(REPLIES, headers=resume_after(new[-1][1]))
    assert back.listener.quiet("MESSAGE", 0.5) == [], "replayed what the client had"


def test_a_node_that_never_served_the_event_tells_its_subscribers_their_place(
    cluster: Cluster, clients: Clients
) -> None:
    """Behind a load balancer a buyer's requests and WebSocket often reach different nodes:
    the node holding the socket had never loaded the event, so it pushed no position at all
    (the probe's page froze without a place in line) until something made it read the event."""
    a, b = cluster["a"], cluster["b"]
    event_id = create_queued_event(a, opens_in=600)  # a pre-queue: everyone waits
    carol = unique("carol")
    status, body = call(a, "POST", f"/api/events/{event_id}/queue", token=a.token(carol))
    assert status in (200, 201, 202), body
    watcher = clients("tcp", server=b, user=carol)
    sub = watcher.subscribe(POSITION)
    # at once, or (the node looked for live waiting rooms the moment before the event was
    # made) by its next look and push
    greeting = watcher.listener.wait("MESSAGE", 10, lambda f: f.headers.get("subscription") == sub)
    place = json.loads(greeting.body)
    assert place["event_id"] == event_id and place["state"] == "waiting", place
