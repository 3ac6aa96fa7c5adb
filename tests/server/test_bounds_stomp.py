"""Bounds on what a STOMP client can make a node hold or spend, seen from real clients: open
transactions (``--max-transactions``), the bytes they buffer (``--max-transaction-bytes``),
heart-beat-only input (charged to ``--max-send-rate``), and a WebSocket client that floods pings
and resets its connection (a normal close, not a server error). Each limit is answered with its
documented ERROR and a close, while a :class:`Witness` on the same node carries on."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from tests.conftest import ServerProcess
from tests.server.stomp_clients import (
    RawPeer,
    RawWs,
    Witness,
    encode_frame,
    log_tail,
    metric_sum,
    raw_peer,
    topic,
    unique,
)


def connected(
    peer: RawPeer, node: ServerProcess, role: str = "publisher", heart_beat: str | None = None
) -> None:
    reply = peer.connect(token=node.token(unique("b"), role), heart_beat=heart_beat)
    assert reply.command == "CONNECTED", reply


def test_too_many_open_transactions(
    make_server: Callable[..., ServerProcess], transport: str
) -> None:
    """``--max-transactions 3``: three BEGINs are fine, a COMMIT frees a slot, and the BEGIN of
    one transaction too many gets ERROR ``too many transactions`` naming its receipt, then the
    close (the probe: 20 sessions opened 54,000 transactions of 7 KB names, no ERROR)."""
    node = make_server(max_transactions=3)
    witness = Witness(node)
    try:
        with raw_peer(node, transport) as peer:
            connected(peer, node)
            for n in range(3):
                peer.send("BEGIN", {"transaction": f"t{n}", "receipt": f"b{n}"})
                assert peer.read_until("RECEIPT")["receipt-id"] == f"b{n}"
            peer.send("COMMIT", {"transaction": "t0"})
            peer.send("BEGIN", {"transaction": "again", "receipt": "again"})
            assert peer.read_until("RECEIPT")["receipt-id"] == "again"
            peer.send("BEGIN", {"transaction": "x" * 4000, "receipt": "over"})
            error = peer.expect_error()
            assert error.message == "too many transactions", str(error)
            assert error.get("receipt-id") == "over"
        assert metric_sum(node, "concert_hub_errors") >= 1
        witness.check()
    finally:
        witness.close()


def test_transaction_bytes_are_bounded(
    make_server: Callable[..., ServerProcess], transport: str
) -> None:
    """``--max-transaction-bytes 4096``: a transaction of three 1 KB SENDs commits and is
    delivered; the next one is refused at the SEND that would buffer more than 4,096 bytes, with
    ERROR ``transaction too large`` naming that SEND's receipt (it used to take 1,024 frames
    whatever their size: 64 MiB a session)."""
    node = make_server(max_transaction_bytes=4096)
    witness = Witness(node)
    dest = topic()
    body = "b" * 1000
    try:
        with raw_peer(node, transport) as sub, raw_peer(node, transport) as peer:
            connected(sub, node, role="user")
            sub.send("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "sub"})
            assert sub.read_until("RECEIPT")["receipt-id"] == "sub"
            connected(peer, node)
            peer.send("BEGIN", {"transaction": "fits"})
            for n in range(3):
                peer.send("SEND", {"destination": dest, "transaction": "fits"}, f"{n}{body}")
            peer.send("COMMIT", {"transaction": "fits", "receipt": "c"})
            assert peer.read_until("RECEIPT")["receipt-id"] == "c"
            got = [sub.read_until("MESSAGE").body[:1] for _ in range(3)]
            assert got == [b"0", b"1", b"2"]

            peer.send("BEGIN", {"transaction": "big"})
            for _ in range(3):
                peer.send("SEND", {"destination": dest, "transaction": "big"}, body)
            peer.send("SEND", {"destination": dest, "transaction": "big", "receipt": "r4"}, body)
            error = peer.expect_error()
            assert error.message == "transaction too large", str(error)
            assert "4096 bytes" in error.body.decode()
            assert error.get("receipt-id") == "r4"
        witness.check()
    finally:
        witness.close()


def test_transaction_frames_and_request_bodies_follow_their_flags(
    make_server: Callable[..., ServerProcess],
) -> None:
    """``--max-transaction-frames 3`` and ``--max-request-bytes 65536``: both used to be fixed
    (1,024 frames, 1 MiB)."""
    node = make_server(max_transaction_frames=3, max_request_bytes=65536)
    dest = topic()
    with raw_peer(node, "tcp") as peer:
        connected(peer, node)
        peer.send("BEGIN", {"transaction": "t"})
        for _ in range(3):
            peer.send("SEND", {"destination": dest, "transaction": "t"}, "x")
        peer.send("SEND", {"destination": dest, "transaction": "t", "receipt": "r4"}, "x")
        error = peer.expect_error()
        assert error.message == "transaction too large", str(error)
        assert "at most 3 frames" in error.body.decode() and error.get("receipt-id") == "r4"
    # Counted under the limit's own name, which an operator can act on.
    assert metric_sum(node, "concert_hub_errors", reason="transaction_too_large") == 1
    body = json.dumps({"seats": ["x" * (70 << 10)]}).encode()
    request = urllib.request.Request(
        f"{node.http_url}/api/events/1/holds", data=body, method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {node.token(unique('u'))}"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=15)
    problem = json.loads(refused.value.read())
    assert refused.value.code == 413 and problem["kind"] == "too_large"
    assert problem["detail"] == "the request body is over the 64 KiB limit"


def test_heart_beat_floods_are_rate_limited(
    make_server: Callable[..., ServerProcess], transport: str
) -> None:
    """``--max-send-rate 5``: heart-beat-only input costs a token a read (TCP) or a message
    (WebSocket, empty ones too). A client beating 4 times a second, past the one-second burst,
    is never refused; one sending heart-beats without pause gets ERROR ``rate limit exceeded``
    and the close (such floods used to stall the whole node, unrefused)."""
    node = make_server(max_send_rate=5)
    witness = Witness(node)
    try:
        with raw_peer(node, transport) as polite, raw_peer(node, transport) as flooder:
            connected(polite, node, heart_beat="250,0")
            connected(flooder, node, heart_beat="250,0")
            for _ in range(8):
                polite.send_raw(b"\n")
                time.sleep(0.25)
            beats = [b"\n"] if transport == "tcp" else [b"", b"\n"]
            for n in range(3000):
                flooder.send_raw(beats[n % len(beats)])
                if flooder.send_failed:
                    break
                flooder._receive(0.002)  # one read of the server per beat (TCP)
                if len(flooder.frames) > 1 or flooder.closed:  # past CONNECTED
                    break
            error = flooder.expect_error()
            assert error.message == "rate limit exceeded", str(error)
            assert "heart-beats" in error.body.decode()

            polite.send("SUBSCRIBE", {"id": "s", "destination": topic(), "receipt": "ok"})
            assert polite.read_until("RECEIPT")["receipt-id"] == "ok"
        witness.check()
    finally:
        witness.close()


def _ws_frame(payload: bytes, opcode: int) -> bytes:
    """One masked client frame (RFC 6455 §5.2) of under 64 KiB."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload))
    else:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, len(payload))
    return head + mask + masked


def test_a_websocket_client_resetting_during_a_ping_flood_is_a_normal_close(
    make_server: Callable[..., ServerProcess],
) -> None:
    """A client floods pings without reading the pongs (so aiohttp's pong waits for the socket
    to drain), then resets its connection. The session just ends: no ``error handling a
    request`` with a traceback in the node's log, and the node serves everyone else."""
    node = make_server()
    witness = Witness(node)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((node.host, node.http_port))
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: v12.stomp\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        token = node.token(unique("pinger"))
        connect = encode_frame(
            "CONNECT", {"accept-version": "1.2", "host": "x", "login": "x", "passcode": token}
        )
        sock.sendall(_ws_frame(connect, opcode=0x1))
        pings = _ws_frame(b"p" * 125, opcode=0x9) * 200
        sock.settimeout(0.5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the server stops reading (its pongs stall)
            try:
                sock.sendall(pings)
            except TimeoutError:
                break
        else:
            raise AssertionError("the server read pings forever without its pongs draining")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset

        deadline = time.monotonic() + 20
        while metric_sum(node, "concert_hub_connections") > 2:  # the witness's two
            assert time.monotonic() < deadline, f"the session never ended; {log_tail(node)}"
            time.sleep(0.1)
        log = node.log()
        assert "error handling a request" not in log, log_tail(node, 60)
        assert "Traceback" not in log, log_tail(node, 60)
        witness.check()
        with RawWs.to(node) as again:
            connected(again, node, role="user")
    finally:
        witness.close()
