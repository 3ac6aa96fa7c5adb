"""Random STOMP sessions against a live node, on both backends (hypothesis, over TCP and
WebSocket, text and binary).

Each example is one session: a CONNECT (any version, any role, or a bad token), then frames
drawn from a grammar that mixes what clients do (subscribing to seat maps, ``/app`` holds and
releases, ``/queue/`` sends, acks, transactions, resumes) with what they get wrong (missing and
repeated headers, unknown ids, forbidden or malformed destinations, bodies that are not JSON,
ids too large for the database), then DISCONNECT with a receipt. Whatever it sent, the node:

- sends frames that parse (they are read by the project's client core);
- ends a session it refuses with an ERROR that has a ``message`` and no traceback, then closes;
- else answers the DISCONNECT's receipt and closes;
- logs no traceback, and holds no connection once the clients are gone.

Exploring this way found a 20-digit event id in a seat-map SUBSCRIBE (an internal error) and a
``resume-seq`` far behind the ring (the node tried to build a range of a trillion seqs).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.client import Error, Receipt
from tests.booking.conftest import call, create_event_via_api
from tests.conftest import ServerProcess
from tests.server.stomp_clients import RawPeer, RawWs, encode_frame, raw_peer

#: Sessions per backend (about 10 s). The found bugs have their own tests; a run of 300
#: sessions against the code before their fixes failed on the resume one.
EXAMPLES = 100
#: How long a session waits for the node's answer to its last frame.
SETTLE_S = 5.0

ROLES = ["user", "user", "user", "admin", "publisher", "scanner", None, "bad"]
IDS = ["s1", "s2", "s3", "", "x" * 80]
ACK_IDS = ["0", "m-1", "", "zz"]
TRANSACTIONS = ["t1", "t2", "", "t" * 120]
HEADER_VALUES = ["", "1", "0", "-1", "abc", "99999999999999999999", "\\c", "\\n", "x" * 300]
EXTRA_HEADERS = [
    "receipt", "ack", "id", "subscription", "message-id", "transaction", "content-type",
    "correlation-id", "prefetch-count", "resume-seq", "resume-after", "admission-token",
    "destination", "x-custom",
]  # fmt: skip
#: SEND and SUBSCRIBE most, then the rest of the client frames, and some a client may not send.
COMMANDS = ["SEND"] * 4 + ["SUBSCRIBE"] * 3 + [
    "UNSUBSCRIBE", "ACK", "NACK", "BEGIN", "COMMIT", "ABORT", "CONNECT", "MESSAGE", "FOO",
]  # fmt: skip
BODIES = [
    b"", b"{}", b"null", b"[]", b'{"seats":[]}', b'{"seats":null}', b'{"seats":[1,2]}',
    b'{"seats":["S-A-1"]}', b'{"seats":["S-A-2","S-B-3"]}', b'{"seats":["S-A-1","S-A-1"]}',
    b'{"best_available":{"count":2}}', b'{"best_available":{"count":-1}}',
    b'{"best_available":{"count":1e308,"tier":5}}', b"\xff\xfe", b"{", b"\x00",
    b'{"seats":' + b"[" * 300 + b"]" * 300 + b"}",
]  # fmt: skip


def destinations(event_id: int) -> list[str]:
    """Where a frame may go: the contract's destinations for ``event_id``, others' events,
    ones outside the contract, and malformed ones."""
    e = str(event_id)
    return [
        f"/topic/events/{e}/seats", f"/topic/events/{e}/queue",
        f"/topic/events/{e}/announcements", "/topic/announcements", "/topic/fuzz",
        f"/topic/admin/events/{e}/checkin", "/user/queue/replies", "/user/queue/errors",
        "/user/queue/position", "/queue/fuzz", "/queue/integration.x",
        f"/app/events/{e}/holds", f"/app/events/{e}/queue/join", "/app/holds/h_x/release",
        "/app/ping", "/topic/events/99999999999999999999/seats", "/topic/events/x/seats",
        "/app/events/99999999999999999999/holds", "/queue/", "/topic/", "/user/", "", "/x",
        "/queue/" + "q" * 200, "/app/holds/" + "h" * 100 + "/release",
    ]  # fmt: skip


@st.composite
def frames(draw: st.DrawFn, event_id: int) -> bytes:
    """One client frame: mostly one a client means (so that a session lives long enough to
    reach the node's deeper states), else anything the grammar makes."""
    if draw(st.integers(0, 9)) < 8:
        return draw(meant(event_id))
    return draw(anything(event_id))


@st.composite
def meant(draw: st.DrawFn, event_id: int) -> bytes:
    """A well-formed SUBSCRIBE, SEND or BEGIN, to any destination, with headers a client may
    send: resumes (recent, long ago, beyond any seq), prefetch counts, admission tokens."""
    command = draw(st.sampled_from(["SUBSCRIBE", "SUBSCRIBE", "SEND", "SEND", "SEND", "BEGIN"]))
    tag = str(draw(st.integers(0, 10**9)))  # an id no earlier frame used
    headers: list[tuple[str, str]] = []
    body = b""
    if command == "SUBSCRIBE":
        headers += [("id", tag), ("destination", draw(st.sampled_from(destinations(event_id))))]
        for name, values in [
            ("resume-seq", ["0", "1", "2", "999999999999999999"]),
            ("resume-after", ["*", "x", "0"]),
            ("prefetch-count", ["0", "1", "99999999999"]),
            ("ack", ["auto", "client", "client-individual"]),
        ]:
            if draw(st.integers(0, 3)) == 0:
                headers.append((name, draw(st.sampled_from(values))))
    elif command == "SEND":
        headers.append(("destination", draw(st.sampled_from(destinations(event_id)))))
        headers.append(("correlation-id", tag))
        body = draw(st.sampled_from(BODIES))
    else:
        headers.append(("transaction", tag))
    return encode_frame(command, headers, body)


@st.composite
def anything(draw: st.DrawFn, event_id: int) -> bytes:
    """Any command, with or without its required headers, with extra and repeated headers,
    escaped as the version asks or (one in ten) as given."""
    command = draw(st.sampled_from(COMMANDS))
    headers: list[tuple[str, str]] = []
    if command in ("SEND", "SUBSCRIBE") and draw(st.integers(0, 19)):
        headers.append(("destination", draw(st.sampled_from(destinations(event_id)))))
    if command in ("SUBSCRIBE", "UNSUBSCRIBE") and draw(st.integers(0, 9)):
        headers.append(("id", draw(st.sampled_from(IDS))))
    if command == "SUBSCRIBE" and draw(st.booleans()):
        headers.append(("ack", draw(st.sampled_from(["auto", "client", "client-individual", "x"]))))
    if command in ("ACK", "NACK") and draw(st.integers(0, 9)):
        headers.append(("id", draw(st.sampled_from(ACK_IDS))))
    if command in ("BEGIN", "COMMIT", "ABORT") or draw(st.integers(0, 4)) == 0:
        headers.append(("transaction", draw(st.sampled_from(TRANSACTIONS))))
    for _ in range(draw(st.integers(0, 3))):
        headers.append((draw(st.sampled_from(EXTRA_HEADERS)), draw(st.sampled_from(HEADER_VALUES))))
    body = draw(st.sampled_from(BODIES)) if command == "SEND" else b""
    escaped = draw(st.integers(0, 9)) > 0
    return encode_frame(command, headers, body, escape_headers=escaped)


@st.composite
def sessions(draw: st.DrawFn, event_id: int) -> dict[str, Any]:
    return {
        "transport": draw(st.sampled_from(["tcp", "ws", "ws-binary"])),
        "version": draw(st.sampled_from(["1.2", "1.1", "1.0", "1.0,1.1,1.2"])),
        "role": draw(st.sampled_from(ROLES)),
        "frames": draw(st.lists(frames(event_id), max_size=16)),
    }


@pytest.fixture(scope="module")
def event_id(booking_server: ServerProcess) -> int:
    return int(create_event_via_api(booking_server)["id"])


def connections(node: ServerProcess) -> int:
    status, stats = call(node, "GET", "/api/admin/stats", token=node.token("root", "admin"))
    assert status == 200, stats
    return int(stats["connections"])


@pytest.fixture(scope="module")
def fuzzed(booking_server: ServerProcess) -> Iterator[ServerProcess]:
    """The module's node; after the sessions, it logged no traceback and holds no connection."""
    before = len(booking_server.log())
    yield booking_server
    deadline = time.monotonic() + SETTLE_S
    while connections(booking_server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert connections(booking_server) == 0
    fresh = booking_server.log()[before:]
    assert "Traceback" not in fresh, fresh[-3000:]


def token_for(node: ServerProcess, role: str | None, index: int) -> str | None:
    if role is None:
        return None
    return "not-a-token" if role == "bad" else node.token(f"fuzz{index % 3}", role)


def utf8(data: bytes) -> bool:
    """Whether ``data`` may travel in a WebSocket text message (else the node closes with 1007,
    as RFC 6455 says, which other tests check)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def refused(peer: RawPeer, frame: Error) -> None:
    """An ERROR as the contract has it: a message, no traceback, then the connection closes."""
    assert frame.message and "Traceback" not in frame.body.decode("utf-8", "replace"), frame
    peer.expect_closed(SETTLE_S)


def finish(peer: RawPeer) -> None:
    """Read the session to its end: an ERROR, or the DISCONNECT's receipt and a close."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        frame = peer.read_frame(max(deadline - time.monotonic(), 0.01))
        assert frame is not None, f"closed without ERROR or RECEIPT: {peer.frames}"
        if isinstance(frame, Error):
            refused(peer, frame)
            return
        if isinstance(frame, Receipt) and frame.receipt_id == "bye":
            peer.expect_closed(SETTLE_S)
            return


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_random_session_ends_cleanly(
    fuzzed: ServerProcess, event_id: int, data: st.DataObject
) -> None:
    session = data.draw(sessions(event_id))
    transport = session["transport"]
    options = {"binary": True} if transport == "ws-binary" else {}
    with raw_peer(fuzzed, transport.removesuffix("-binary"), **options) as peer:
        reply = peer.connect(
            token=token_for(fuzzed, session["role"], len(session["frames"])),
            accept_version=session["version"],
        )
        if isinstance(reply, Error):
            refused(peer, reply)
            return
        for frame in session["frames"]:
            if isinstance(peer, RawWs) and not utf8(frame):
                peer.send_raw(frame, binary=True)  # as stompjs sends a binary body
            else:
                peer.send_raw(frame)
            if peer.closed:
                break
            peer._receive(0.005)  # read as a client does, between frames
        peer.send("DISCONNECT", [("receipt", "bye")])
        finish(peer)
