"""What a ``/queue/`` may make a node hold, and what a client sees at each bound (README
"Queues"): consumer flow control (``--slow-consumer-bytes``), the byte bound of a queue
(``--queue-max-bytes``), the number of queues (``--max-queues``) and the SENDs a node holds
waiting to be stored (``--queue-max-backlog-bytes``). Real STOMP clients against real nodes;
the store-level accounting (drop-head by bytes, a restart, the cluster's sweep) is in
``test_queue_store.py``."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from protocol.client import ReceivedFrame
from tests.conftest import ServerProcess, free_port, migrated_database_url_for
from tests.redis_server import RedisServer
from tests.server.stomp_clients import DEFAULT_TIMEOUT, RawPeer, RawTcp, encode_frame, raw_peer

#: The budget of the flow-control node: 64 KiB, so a prefetch of 60 KB messages overruns it
#: many times over (the default 1 MiB would need megabytes per test).
BUDGET = 65536
BIG = 60000


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One node for the flow-control and backlog tests, small budgets."""
    flags: dict[str, object] = {"slow_consumer_bytes": BUDGET, "queue_max_backlog_bytes": BUDGET}
    proc = ServerProcess(free_port(), free_port(), tmp_path_factory.mktemp("bounds"), flags)
    proc.start()
    yield proc
    proc.stop()


def queue() -> str:
    return f"/queue/bounds-{uuid.uuid4().hex[:10]}"


def connected(peer: RawPeer, node: ServerProcess, role: str = "integration") -> RawPeer:
    assert peer.connect(token=node.token(uuid.uuid4().hex[:8], role)).command == "CONNECTED"
    return peer


def store(node: ServerProcess, dest: str, bodies: list[bytes]) -> None:
    """SEND ``bodies`` to ``dest``, each stored (its RECEIPT read) before the next."""
    with connected(RawTcp.to(node), node, "publisher") as pub:
        for n, body in enumerate(bodies):
            pub.send("SEND", [("destination", dest), ("receipt", str(n))], body)
            assert pub.read_until("RECEIPT").get("receipt-id") == str(n)


def subscribe(peer: RawPeer, dest: str, sub: str, **headers: str) -> None:
    """SUBSCRIBE and read its RECEIPT (a MESSAGE read on the way stays in ``peer.frames``)."""
    peer.send("SUBSCRIBE", [("id", sub), ("destination", dest), ("receipt", sub),
                            *headers.items()])  # fmt: skip
    peer.read_until("RECEIPT")


def messages(peer: RawPeer) -> list[ReceivedFrame]:
    return [f for f in peer.frames if f.command == "MESSAGE"]


def bodies(peer: RawPeer) -> list[bytes]:
    return [f.body for f in messages(peer)]


def errors(peer: RawPeer) -> list[str | None]:
    return [f.get("message") for f in peer.frames if f.command == "ERROR"]


def read_messages(peer: RawPeer, until: Callable[[], bool], quiet_s: float | None = None) -> None:
    """Read what comes until ``until()``, or (``quiet_s``) until nothing came for that long."""
    deadline = time.monotonic() + 10 * DEFAULT_TIMEOUT
    last = time.monotonic()
    while not until() and not peer.closed and time.monotonic() < deadline:
        seen = len(peer.frames)
        peer._receive(0.05)
        if len(peer.frames) > seen:
            last = time.monotonic()
        elif quiet_s is not None and time.monotonic() - last > quiet_s:
            return


def sent(count: int) -> list[bytes]:
    return [f"{n:05d}".encode() + b"x" * (BIG - 5) for n in range(count)]


# -- consumer flow control ---------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_consumer_that_reads_gets_a_whole_prefetch_and_is_never_cut(
    node: ServerProcess, transport: str
) -> None:
    """100 messages of 60 KB wait; a client subscribes with ``prefetch-count:100`` and reads as
    fast as it can. README: a subscription gets no more while half the session's budget
    (``--slow-consumer-bytes``, 64 KiB here) is unread, so a client that reads is never cut.
    The node used to write the whole prefetch (6 MB) at once and end the session with ERROR
    ``slow consumer`` (the probe's 1 MiB budget: after 77 of 100 messages)."""
    dest = queue()
    expected = sent(100)
    store(node, dest, expected)
    with connected(raw_peer(node, transport), node) as consumer:
        subscribe(consumer, dest, "s", ack="client-individual", **{"prefetch-count": "100"})
        acked = 0
        while acked < len(expected):
            read_messages(consumer, lambda n=acked: len(messages(consumer)) > n)  # type: ignore[misc]
            assert len(messages(consumer)) > acked, f"stuck after {acked}: {errors(consumer)}"
            for frame in messages(consumer)[acked:]:
                consumer.send("ACK", [("id", frame["ack"])])
                acked += 1
        assert errors(consumer) == []
        assert bodies(consumer) == expected


def test_a_stalled_auto_ack_consumer_is_held_back_and_loses_nothing(node: ServerProcess) -> None:
    """Two ``ack:auto`` consumers of one queue of 100 messages of 60 KB: A reads nothing for a
    while, B reads all it gets. README: A gets no more while its client has not read half its
    budget, so it keeps its connection (no ``slow consumer``) and the messages it has no room
    for go to B; once A reads, what it was written arrives, and between them they have every
    message once. A used to be written its whole prefetch, then cut, and (had it not read within
    5 s) what sat in its buffer was settled and lost."""
    dest = queue()
    expected = sent(100)
    store(node, dest, expected)
    with (
        connected(RawTcp.to(node, rcvbuf=4096), node) as stalled,
        connected(RawTcp.to(node), node) as reader,
    ):
        subscribe(stalled, dest, "a", **{"prefetch-count": "100"})
        subscribe(reader, dest, "b", **{"prefetch-count": "100"})
        read_messages(reader, lambda: False, quiet_s=0.5)
        read_messages(stalled, lambda: len(bodies(stalled)) + len(bodies(reader)) >= 100)
        assert (errors(stalled), errors(reader)) == ([], [])
        got = bodies(stalled) + bodies(reader)
        assert sorted(got) == expected, f"{len(got)} of {len(expected)}"
        assert len(bodies(stalled)) < len(expected), "the stalled consumer took them all"


# -- the SENDs a node holds waiting to be stored -------------------------------------------------


def test_a_send_past_the_write_backlog_is_refused_and_what_came_before_is_stored(
    node: ServerProcess,
) -> None:
    """``--queue-max-backlog-bytes`` 64 KiB. A transaction of three 30 KB SENDs, then, in one
    WebSocket message (read at once, before anything is stored), its COMMIT and one more SEND:
    the COMMIT's SENDs are taken whole (a group is never cut), the SEND behind them finds
    90 KB waiting and gets ERROR ``queue store busy`` (with its receipt id). README: what waits
    in memory is bounded. The COMMIT's messages are stored all the same."""
    dest = queue()
    committed = [f"c{n}".encode() + b"y" * 30000 for n in range(3)]
    with connected(raw_peer(node, "ws"), node, "publisher") as pub:
        pub.send("BEGIN", [("transaction", "tx")])
        for body in committed:
            pub.send("SEND", [("destination", dest), ("transaction", "tx")], body)
        commit = encode_frame("COMMIT", [("transaction", "tx")])
        after = encode_frame("SEND", [("destination", dest), ("receipt", "late")], b"late")
        pub.send_raw(commit + after)
        error = pub.expect_error()
        assert (error.message, error.get("receipt-id")) == ("queue store busy", "late")
    with connected(RawTcp.to(node), node) as consumer:
        subscribe(consumer, dest, "s")
        read_messages(consumer, lambda: len(bodies(consumer)) >= 3, quiet_s=0.5)
        read_messages(consumer, lambda: False, quiet_s=0.3)  # and nothing more
        assert bodies(consumer) == committed


# -- the byte bound of a queue and the number of queues, on both stores ---------------------------


@pytest.fixture(params=["sqlite", "redis"])
def bounded(
    request: pytest.FixtureRequest,
    make_server: Callable[..., ServerProcess],
    redis_server: RedisServer,
    tmp_path: Path,
) -> Iterator[Callable[..., ServerProcess]]:
    """Start a node with the given flags: on SQLite (one node), or on MariaDB and Redis (a
    cluster's stores)."""
    if request.param == "sqlite":
        yield make_server
        return
    for url in migrated_database_url_for("mariadb", tmp_path):  # dropped afterwards
        yield functools.partial(
            make_server, database_url=url, redis_url=redis_server.url,
            node_id=f"b-{uuid.uuid4().hex[:6]}", redis_key_prefix=f"b{uuid.uuid4().hex[:8]}:",
        )  # fmt: skip


def send(node: ServerProcess, dest: str, body: bytes) -> ReceivedFrame:
    """A fresh publisher SENDs ``body`` with a receipt: the RECEIPT, or the ERROR."""
    with connected(RawTcp.to(node), node, "publisher") as pub:
        pub.send("SEND", [("destination", dest), ("receipt", "r")], body)
        frame = pub.read_frame()
        assert frame is not None, "closed without an answer"
        return frame


def test_a_queue_holds_at_most_its_bytes_until_consumers_settle_them(
    bounded: Callable[..., ServerProcess],
) -> None:
    """``--queue-max-bytes 2048``: two SENDs of 900 bytes fit, a third gets ERROR ``queue full``
    (counting bytes, not messages: the length bound is 10,000). A consumer takes one and ACKs
    it: its bytes are free again, and a SEND fits."""
    node = bounded(queue_max_bytes=2048)
    dest = queue()
    for n in range(2):
        assert send(node, dest, b"%d" % n * 900).command == "RECEIPT"
    refused = send(node, dest, b"2" * 900)
    assert (refused.command, refused.get("message")) == ("ERROR", "queue full")
    with connected(RawTcp.to(node), node) as consumer:
        subscribe(consumer, dest, "s", ack="client-individual", **{"prefetch-count": "1"})
        read_messages(consumer, lambda: bool(messages(consumer)))
        (first,) = messages(consumer)
        assert first.body == b"0" * 900
        consumer.send("ACK", [("id", first["ack"]), ("receipt", "acked")])
        consumer.read_until("RECEIPT")
        assert send(node, dest, b"3" * 900).command == "RECEIPT"


def test_too_many_queues_is_refused_until_one_is_empty_and_unsubscribed(
    bounded: Callable[..., ServerProcess],
) -> None:
    """``--max-queues 2``: SENDs fill two queues; a SEND to a third, and a SUBSCRIBE on a
    fourth, get ERROR ``too many queues``. Once one queue is drained and its subscriber gone, it
    is forgotten and a new one may be made (in a cluster, after the subscriber's lease,
    ``--queue-lease-s``)."""
    node = bounded(max_queues=2, queue_lease_s=1)
    first, second, third, fourth = (queue() for _ in range(4))
    for dest in (first, second):
        assert send(node, dest, b"m").command == "RECEIPT"
    refused = send(node, third, b"m")
    assert (refused.command, refused.get("message")) == ("ERROR", "too many queues")
    with connected(RawTcp.to(node), node) as consumer:
        consumer.send("SUBSCRIBE", [("id", "s"), ("destination", fourth), ("receipt", "s")])
        assert consumer.expect_error().message == "too many queues"
    with connected(RawTcp.to(node), node) as consumer:
        subscribe(consumer, first, "s")
        read_messages(consumer, lambda: bool(messages(consumer)))
        assert bodies(consumer) == [b"m"]
        consumer.send("DISCONNECT", [("receipt", "bye")])
        consumer.read_until("RECEIPT")
    deadline = time.monotonic() + 10 * DEFAULT_TIMEOUT
    while (answer := send(node, third, b"m")).command != "RECEIPT":
        assert answer.get("message") == "too many queues"
        assert time.monotonic() < deadline, "the drained queue was never forgotten"
        time.sleep(0.2)
