"""Random STOMP sessions for the fuzz tests (tests/server/test_session_fuzz.py on one node of
each backend, tests/cluster/test_session_fuzz.py across a cluster): the hypothesis strategies
that draw them, :func:`play` that runs one against a node and checks how it ends, and
:func:`settled` that checks a node afterwards.

A session is a CONNECT (any version, any role, or a bad token), then frames drawn from a
grammar that mixes what clients do (subscribing to seat maps, ``/app`` holds and releases,
``/queue/`` sends, transactions, resumes) with what they get wrong (missing and repeated
headers, unknown ids, forbidden or malformed destinations, bodies that are not JSON, ids too
large for the database), then DISCONNECT with a receipt.
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import strategies as st

from protocol.client import Error, Receipt
from tests.booking.conftest import call
from tests.conftest import ServerProcess
from tests.server.stomp_clients import RawPeer, RawWs, encode_frame, raw_peer

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


def allowed(event_id: int, role: str | None, command: str) -> list[str]:
    """Where ``role`` may SUBSCRIBE or SEND (SPEC §4), so that most of a session's frames are
    taken and it lives on; one to an unknown event among them (refused as one)."""
    e = str(event_id)
    public = [f"/topic/events/{e}/seats", f"/topic/events/{e}/queue",
              f"/topic/events/{e}/announcements", "/topic/announcements",
              "/topic/events/99999999999999999999/seats"]  # fmt: skip
    broadcaster = role in ("admin", "publisher")
    if command == "SUBSCRIBE":
        if role is None:
            return public
        mine = ["/user/queue/replies", "/user/queue/errors", "/user/queue/position", "/topic/fuzz"]
        return public + mine + (["/queue/fuzz"] if broadcaster else [])
    if role is None:
        return []
    app = [f"/app/events/{e}/holds", f"/app/events/{e}/holds", f"/app/events/{e}/queue/join",
           "/app/holds/h_x/release", "/app/ping"]  # fmt: skip
    return app + (["/topic/fuzz", "/queue/fuzz", f"/topic/events/{e}/announcements"]
                  if broadcaster else [])  # fmt: skip


@st.composite
def frames(draw: st.DrawFn, event_id: int, role: str | None, index: int) -> bytes:
    """One client frame: mostly one a client means (so that a session lives long enough to
    reach the node's deeper states), else anything the grammar makes."""
    if draw(st.integers(0, 9)) < 8:
        return draw(meant(event_id, role, index))
    return draw(anything(event_id))


@st.composite
def meant(draw: st.DrawFn, event_id: int, role: str | None, index: int) -> bytes:
    """A well-formed SUBSCRIBE, SEND or BEGIN, where ``role`` may send it, with headers a client
    may send: resumes (recent, long ago, beyond any seq), prefetch counts, ack modes."""
    command = draw(st.sampled_from(["SUBSCRIBE", "SUBSCRIBE", "SEND", "SEND", "SEND", "BEGIN"]))
    if not allowed(event_id, role, command):
        command = "SUBSCRIBE"
    tag = f"f{index}"  # the session's ``index``-th frame: an id no earlier frame used
    headers: list[tuple[str, str]] = []
    body = b""
    destination = draw(st.sampled_from(allowed(event_id, role, command) or [""]))
    if command == "SUBSCRIBE":
        headers += [("id", tag), ("destination", destination)]
        for name, values in [
            ("resume-seq", ["0", "1", "2", "999999999999999999"]),
            ("resume-after", ["*", "x", "0"]),
            ("prefetch-count", ["0", "1", "99999999999"]),
            ("ack", ["auto", "client", "client-individual"]),
        ]:
            if draw(st.integers(0, 3)) == 0:
                headers.append((name, draw(st.sampled_from(values))))
    elif command == "SEND":
        headers += [("destination", destination), ("correlation-id", tag)]
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
    role = draw(st.sampled_from(ROLES))
    count = draw(st.integers(0, 16))
    return {
        "transport": draw(st.sampled_from(["tcp", "ws", "ws-binary"])),
        "version": draw(st.sampled_from(["1.2", "1.1", "1.0", "1.0,1.1,1.2"])),
        "role": role,
        "frames": [draw(frames(event_id, role, i)) for i in range(count)],
    }


def connections(node: ServerProcess) -> int:
    status, stats = call(node, "GET", "/api/admin/stats", token=node.token("root", "admin"))
    assert status == 200, stats
    return int(stats["connections"])


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


def finish(peer: RawPeer) -> None:
    """Read the session to its end: an ERROR, or the DISCONNECT's receipt and a close."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        frame = peer.read_frame(max(deadline - time.monotonic(), 0.01))
        assert frame is not None, f"closed without ERROR or RECEIPT: {peer.frames}"
        if isinstance(frame, Error):
            peer.ended_by(frame, SETTLE_S)
            return
        if isinstance(frame, Receipt) and frame.receipt_id == "bye":
            peer.expect_closed(SETTLE_S)
            return


def play(node: ServerProcess, session: dict[str, Any]) -> None:
    """Run ``session`` against ``node``. Whatever it sent, the node sends frames that parse
    (the project's client core reads them), and ends the session either with an ERROR that has
    a message and no traceback, then a close; or with the DISCONNECT's receipt and a close."""
    transport = session["transport"]
    options = {"binary": True} if transport == "ws-binary" else {}
    with raw_peer(node, transport.removesuffix("-binary"), **options) as peer:
        reply = peer.connect(
            token=token_for(node, session["role"], len(session["frames"])),
            accept_version=session["version"],
        )
        if isinstance(reply, Error):
            peer.ended_by(reply, SETTLE_S)
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


def settled(node: ServerProcess, log_from: int) -> None:
    """After the sessions: ``node`` holds no connection, and logged no traceback since
    ``log_from`` (a length of its log)."""
    deadline = time.monotonic() + SETTLE_S
    while connections(node) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert connections(node) == 0
    fresh = node.log()[log_from:]
    assert "Traceback" not in fresh, fresh[-3000:]
