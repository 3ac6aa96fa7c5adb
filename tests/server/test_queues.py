"""``/queue/{name}`` over stomp.py, TCP and WebSocket (SPEC §4, issue 17): competing consumers,
acknowledgements, redelivery, prefetch, durability across a restart, transactions, bounds."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ServerProcess, database_url_for, migrate, migrated_database_url_for
from tests.redis_server import RedisServer
from tests.server.stomp_clients import (
    DEFAULT_TIMEOUT,
    Client,
    Clients,
    open_stomp,
    raw_peer,
    unique,
)


def prefetch(count: int) -> dict[str, str]:
    """The SUBSCRIBE header ``prefetch-count``."""
    return {"prefetch-count": str(count)}


def queue() -> str:
    return f"/queue/{unique('q')}"


def publisher(clients: Clients, transport: str) -> Client:
    return clients(transport, user=unique("pub"), role="publisher")


def consumer(clients: Clients, transport: str, role: str = "integration") -> Client:
    return clients(transport, user=unique("app"), role=role)


def receipt_ids(client: Client) -> list[str]:
    """The ``receipt-id`` of every RECEIPT ``client`` got, in the order they came."""
    frames = client.listener.frames
    return [f.headers["receipt-id"] for kind, f in frames if f and kind == "RECEIPT"]


def drop(client: Client) -> None:
    """Lose the connection: no DISCONNECT, no ACK, the socket just goes (a WebSocket's too:
    closing its socket object alone leaves the connection up while a thread reads it)."""
    raw = client.conn.transport.socket
    with contextlib.suppress(OSError):
        getattr(raw, "sock", raw).shutdown(socket.SHUT_RDWR)
    client.conn.transport.disconnect_socket()


def ack(client: Client, frame: object) -> None:
    headers = frame.headers  # type: ignore[attr-defined]
    client.conn.ack(headers["ack"])  # STOMP 1.2: the ack header alone names the delivery


def test_competing_consumers_get_disjoint_sets_covering_every_message(
    clients: Clients, transport: str
) -> None:
    dest = queue()
    pub = publisher(clients, transport)
    workers = [consumer(clients, transport) for _ in range(3)]
    for worker in workers:
        worker.subscribe(dest, ack="client-individual")
    sent = [f"job-{i}" for i in range(30)]
    for body in sent:
        pub.send(dest, body)
    got: dict[int, list[str]] = {i: [] for i in range(len(workers))}
    deadline = time.monotonic() + 10 * DEFAULT_TIMEOUT
    while sum(len(v) for v in got.values()) < len(sent):
        assert time.monotonic() < deadline, f"messages missing: {got}"
        for i, worker in enumerate(workers):
            while worker.listener.pending("MESSAGE"):
                frame = worker.listener.message()
                got[i].append(frame.body)
                ack(worker, frame)
        time.sleep(0.01)
    received = [body for bodies in got.values() for body in bodies]
    assert sorted(received) == sorted(sent), "a message was lost or delivered twice"
    assert all(got.values()), f"round-robin skipped a ready consumer: {got}"
    for worker in workers:
        assert worker.listener.quiet("MESSAGE", 0.3) == []


def test_messages_wait_for_a_subscriber_and_auto_ack_settles_them(
    clients: Clients, transport: str
) -> None:
    dest = queue()
    pub = publisher(clients, transport)
    for i in range(3):
        pub.send(dest, f"m{i}")  # its RECEIPT: stored
    first = consumer(clients, transport)
    first.subscribe(dest)  # ack:auto
    assert [m.body for m in first.listener.messages(3)] == ["m0", "m1", "m2"]
    first.close()
    second = consumer(clients, transport)
    second.subscribe(dest)
    assert second.listener.quiet("MESSAGE", 0.5) == [], "an auto-acked message came back"


def test_nack_redelivers_at_the_head_marked_redelivered(clients: Clients, transport: str) -> None:
    dest = queue()
    pub = publisher(clients, transport)
    worker = consumer(clients, transport)
    worker.subscribe(dest, ack="client-individual", headers=prefetch(1))
    # a publisher's own "redelivered" is dropped: only the broker says it
    pub.send(dest, "first", headers={"redelivered": "false"})
    pub.send(dest, "second", headers={"redelivered": "true"})
    frame = worker.listener.message()
    assert frame.body == "first" and "redelivered" not in frame.headers
    worker.conn.nack(frame.headers["ack"])
    again = worker.listener.message()
    assert again.body == "first", "a NACKed message must come back at the head"
    assert again.headers["redelivered"] == "true"
    assert again.headers["message-id"] == frame.headers["message-id"]
    ack(worker, again)
    second = worker.listener.message()
    assert second.body == "second" and "redelivered" not in second.headers


def test_unacked_messages_of_a_lost_connection_are_redelivered(
    clients: Clients, transport: str
) -> None:
    dest = queue()
    pub = publisher(clients, transport)
    doomed = consumer(clients, transport)
    doomed.subscribe(dest, ack="client")
    for body in ("a", "b"):
        pub.send(dest, body)
    assert [m.body for m in doomed.listener.messages(2)] == ["a", "b"]
    drop(doomed)
    heir = consumer(clients, transport)
    heir.subscribe(dest, ack="client-individual")
    frames = heir.listener.messages(2)
    assert [m.body for m in frames] == ["a", "b"]
    assert all(m.headers["redelivered"] == "true" for m in frames)


def test_a_disconnect_requeues_at_once_what_it_did_not_ack(
    clients: Clients, transport: str
) -> None:
    """After a DISCONNECT the unacked messages go back to the head at once, ahead of a message
    sent after it, even while the client keeps its socket open (the server lingers before it
    closes it: the messages came back only then, 5 s later, behind newer ones)."""
    dest = queue()
    pub = publisher(clients, transport)
    heir = consumer(clients, transport)
    with raw_peer(clients.server, transport) as leaving:
        leaving.connect(token=clients.server.token(unique("app"), "integration"))
        leaving.send("SUBSCRIBE", {"id": "s", "destination": dest, "ack": "client"})
        for body in ("a", "b"):
            pub.send(dest, body)
        assert [leaving.read_until("MESSAGE").body for _ in range(2)] == [b"a", b"b"]
        heir.subscribe(dest, ack="client-individual")
        leaving.send("DISCONNECT", {"receipt": "bye"})
        assert leaving.read_until("RECEIPT")["receipt-id"] == "bye"
        pub.send(dest, "c")
        frames = heir.listener.messages(3)
    assert [(m.body, m.headers.get("redelivered")) for m in frames] == [
        ("a", "true"), ("b", "true"), ("c", None)
    ]  # fmt: skip


def test_unsubscribe_requeues_what_it_did_not_ack(clients: Clients, transport: str) -> None:
    dest = queue()
    pub = publisher(clients, transport)
    worker = consumer(clients, transport)
    sub_id = worker.subscribe(dest, ack="client-individual")
    pub.send(dest, "kept")
    worker.listener.message()
    worker.conn.unsubscribe(sub_id)
    worker.subscribe(dest, ack="client-individual")
    frame = worker.listener.message()
    assert (frame.body, frame.headers["redelivered"]) == ("kept", "true")


def test_prefetch_count_bounds_unacked_messages(clients: Clients, transport: str) -> None:
    dest = queue()
    pub = publisher(clients, transport)
    worker = consumer(clients, transport)
    worker.subscribe(dest, ack="client-individual", headers=prefetch(2))
    for i in range(5):
        pub.send(dest, f"m{i}")
    first = worker.listener.messages(2)
    assert worker.listener.quiet("MESSAGE", 0.7) == [], "more than prefetch-count outstanding"
    ack(worker, first[0])
    third = worker.listener.message()
    assert third.body == "m2"
    assert worker.listener.quiet("MESSAGE", 0.5) == []


def test_transactions_cover_queue_sends_and_acks(clients: Clients, transport: str) -> None:
    dest = queue()
    pub = publisher(clients, transport)
    worker = consumer(clients, transport)
    worker.subscribe(dest, ack="client-individual", headers=prefetch(1))
    pub.conn.begin("tx")
    pub.conn.send(dest, "in-tx", transaction="tx")
    assert worker.listener.quiet("MESSAGE", 0.5) == [], "a transactional SEND was stored early"
    pub.conn.commit("tx", receipt="c")
    pub.listener.receipt("c")
    frame = worker.listener.message()
    assert frame.body == "in-tx"
    worker.conn.begin("ack-tx")
    worker.conn.ack(frame.headers["ack"], transaction="ack-tx")
    worker.conn.abort("ack-tx", receipt="a")
    worker.listener.receipt("a")
    # The aborted ACK settled nothing: dropping the subscription brings the message back.
    sub_id = frame.headers["subscription"]
    worker.conn.unsubscribe(sub_id)
    worker.subscribe(dest, ack="client-individual")
    assert worker.listener.message().headers["redelivered"] == "true"


def test_a_commits_receipts_come_in_frame_order_once_it_took_effect(
    clients: Clients, transport: str
) -> None:
    """BEGIN; a SEND to a queue, one to a topic, one more to the queue, each with a receipt;
    COMMIT with a receipt. The README: a frame of a transaction gets its RECEIPT at COMMIT, just
    before the COMMIT's own, so they come s1, s2, s3, c (the topic SEND's, which needs no
    storing, used to overtake the queue SENDs' receipts), and the queue then holds both."""
    dest = queue()
    pub = publisher(clients, transport)
    pub.conn.begin("tx")
    pub.conn.send(dest, "one", transaction="tx", receipt="s1")
    pub.conn.send(f"/topic/{unique('t')}", "aside", transaction="tx", receipt="s2")
    pub.conn.send(dest, "two", transaction="tx", receipt="s3")
    pub.conn.commit("tx", receipt="c")
    pub.listener.receipt("c")
    assert receipt_ids(pub) == ["s1", "s2", "s3", "c"]
    worker = consumer(clients, transport)
    worker.subscribe(dest)
    assert [m.body for m in worker.listener.messages(2)] == ["one", "two"]


def test_receipts_come_in_the_order_of_their_frames(clients: Clients, transport: str) -> None:
    """A queue SEND's RECEIPT waits until the message is stored. The frames right behind it get
    theirs after it, in order: a BEGIN, a topic SEND, an UNSUBSCRIBE of an unknown id and an
    ABORT, which need no storing (the connection carries out three of them itself), used to
    overtake it."""
    pub = publisher(clients, transport)
    pub.conn.send(queue(), "stored", receipt="s")
    pub.conn.begin("tx", receipt="b")
    pub.conn.send(f"/topic/{unique('t')}", "aside", receipt="t")
    pub.conn.unsubscribe("nope", receipt="u")
    pub.conn.abort("tx", receipt="a")
    pub.listener.receipt("a")
    assert receipt_ids(pub) == ["s", "b", "t", "u", "a"]


@pytest.mark.parametrize("forbidden", ["/queue/integration.orders", "/app/no/such/command"])
def test_a_commit_with_a_forbidden_send_stores_nothing(
    clients: Clients, transport: str, forbidden: str
) -> None:
    """BEGIN; a SEND to a queue the publisher may use, then one it may not make (to a node's own
    queue, or to an ``/app`` command that does not exist); COMMIT with a receipt. The whole
    COMMIT is refused: ERROR ``forbidden destination`` naming the COMMIT's receipt, and the
    first SEND is not stored either."""
    dest = queue()
    pub = publisher(clients, transport)
    pub.conn.begin("tx")
    pub.conn.send(dest, "allowed", transaction="tx")
    pub.conn.send(forbidden, "forged", transaction="tx")
    pub.conn.commit("tx", receipt="c")
    error = pub.listener.error()
    assert (error.headers["message"], error.headers.get("receipt-id")) == (
        "forbidden destination",
        "c",
    )
    worker = consumer(clients, transport)
    worker.subscribe(dest)
    assert worker.listener.quiet("MESSAGE", 0.5) == []


def test_who_may_use_queues(clients: Clients, transport: str) -> None:
    dest = queue()
    user = clients(transport, user=unique("u"))
    user.conn.subscribe(dest, "s1")
    assert user.listener.error().headers["message"] == "forbidden destination"
    integration = consumer(clients, transport)
    integration.conn.send(dest, "no", receipt="r")
    assert integration.listener.error().headers["message"] == "forbidden destination"
    admin = clients(transport, user=unique("admin"), role="admin")
    admin.conn.send("/queue/integration.orders", "forged")
    assert admin.listener.error().headers["message"] == "forbidden destination"


def test_messages_survive_a_restart(
    make_server: Callable[..., ServerProcess], migrated_database: str
) -> None:
    node = make_server(database_url=migrated_database)
    dest = queue()
    pub = open_stomp(node, user=unique("pub"), role="publisher")
    worker = open_stomp(node, user=unique("app"), role="integration")
    try:
        for body in ("one", "two", "three"):
            pub.send(dest, body)
        worker.subscribe(dest, ack="client-individual")
        frames = worker.listener.messages(3)
        ack(worker, frames[0])
        worker.conn.send_frame("DISCONNECT", {"receipt": "bye"})
        worker.listener.receipt("bye")
    finally:
        pub.close()
        worker.close()
    assert node.stop() == 0
    node.start()
    again = open_stomp(node, user=unique("app"), role="integration")
    try:
        again.subscribe(dest, ack="client-individual")
        assert [m.body for m in again.listener.messages(2)] == ["two", "three"]
        assert again.listener.quiet("MESSAGE", 0.5) == []
    finally:
        again.close()


def test_queue_names_differing_in_case_are_two_queues_after_a_restart(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Names compare with their case (as in RabbitMQ). On a database whose collation does not
    (utf8mb4_unicode_ci, which Compose's MariaDB used), the store read one queue's messages back
    into the other, which let a publisher's /queue/Integration.orders feed the box office's
    /queue/integration.orders."""
    databases = database_url_for("mariadb", tmp_path, collation="utf8mb4_unicode_ci")
    url = next(databases)
    migrate(url)
    node = make_server(database_url=url)
    try:
        lower = queue()
        upper = "/queue/" + lower.removeprefix("/queue/").upper()
        pub = open_stomp(node, user=unique("pub"), role="publisher")
        try:
            pub.send(lower, "lower")
            pub.send(upper, "UPPER")
            pub.conn.send_frame("DISCONNECT", {"receipt": "bye"})
            pub.listener.receipt("bye")
        finally:
            pub.close()
        assert node.stop() == 0
        node.start()
        for dest, body in ((lower, "lower"), (upper, "UPPER")):
            worker = open_stomp(node, user=unique("app"), role="integration")
            try:
                worker.subscribe(dest, ack="client-individual")
                assert [m.body for m in worker.listener.messages(1)] == [body], dest
                assert worker.listener.quiet("MESSAGE", 0.5) == [], dest
            finally:
                worker.close()
    finally:
        node.stop()
        databases.close()  # drops it


@pytest.mark.parametrize("overflow", ["reject", "drop-head"])
def test_length_bound(make_server: Callable[..., ServerProcess], overflow: str) -> None:
    node = make_server(queue_max_length=2, queue_overflow=overflow)
    dest = queue()
    pub = open_stomp(node, user=unique("pub"), role="publisher")
    try:
        pub.send(dest, "1")
        pub.send(dest, "2")
        if overflow == "reject":
            pub.conn.send(dest, "3", receipt="r3")
            error = pub.listener.error()
            assert (error.headers["message"], error.headers["receipt-id"]) == ("queue full", "r3")
            expected = ["1", "2"]
        else:
            pub.send(dest, "3")
            expected = ["2", "3"]
        worker = open_stomp(node, user=unique("app"), role="integration")
        try:
            worker.subscribe(dest)
            assert [m.body for m in worker.listener.messages(2)] == expected
        finally:
            worker.close()
    finally:
        pub.close()


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_commit_that_does_not_fit_the_queue_stores_nothing(
    make_server: Callable[..., ServerProcess],
    redis_server: RedisServer,
    tmp_path: Path,
    store: str,
) -> None:
    """``--queue-max-length 3`` (``reject``) holding one message; a COMMIT of one SEND, then
    BEGIN, two SENDs, COMMIT. STOMP 1.2 §"BEGIN": a transaction's frames are "processed
    atomically". The second COMMIT gets ERROR ``queue full`` and neither of its SENDs is stored
    (the first used to be, so a client sending the transaction again duplicated it); the COMMIT
    that fits is stored whole. On a node's database, and on a cluster's Redis streams."""
    if store == "sqlite":
        check_commits(make_server(queue_max_length=3))
        return
    for url in migrated_database_url_for("mariadb", tmp_path):
        node = make_server(
            queue_max_length=3, database_url=url, redis_url=redis_server.url,
            node_id="commit-1", redis_key_prefix=f"{unique('commit')}:",
        )  # fmt: skip
        check_commits(node)


def check_commits(node: ServerProcess) -> None:
    dest = queue()
    pub = open_stomp(node, user=unique("pub"), role="publisher")
    try:
        pub.send(dest, "before")
        pub.conn.begin("fits")
        pub.conn.send(dest, "fits-1", transaction="fits")
        pub.conn.commit("fits", receipt="c-fits")
        pub.listener.receipt("c-fits")
        pub.conn.begin("too-big")
        for body in ("big-1", "big-2"):
            pub.conn.send(dest, body, transaction="too-big")
        pub.conn.commit("too-big", receipt="c-big")
        # The frame that failed is the COMMIT (SPEC §3: the ERROR names its receipt).
        error = pub.listener.error()
        assert (error.headers["message"], error.headers.get("receipt-id")) == (
            "queue full",
            "c-big",
        )
    finally:
        pub.close()
    worker = open_stomp(node, user=unique("app"), role="integration")
    try:
        worker.subscribe(dest)
        assert [m.body for m in worker.listener.messages(2)] == ["before", "fits-1"]
        time.sleep(0.5)  # and nothing more comes
        assert [kind for kind, _ in worker.listener.frames].count("MESSAGE") == 2
    finally:
        worker.close()
