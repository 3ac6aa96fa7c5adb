"""SPEC §2 WebSocket transport: subprotocols, message framing, text/binary, heart-beats.

stomp.py's ``WSConnection`` covers the §3 behaviour (see ``test_stomp_tcp.py``, every test there
with ``[ws]`` in its id); here a raw WebSocket peer checks what stomp.py cannot show:
subprotocol choice, several frames per WebSocket message, one frame over several messages,
binary messages and close codes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from concert_hub_client.websocket import Opcode
from protocol.client import Error
from tests.conftest import ServerProcess
from tests.server.stomp_clients import (
    Clients,
    RawWs,
    Witness,
    encode_frame,
    topic,
    unique,
)


def connected_ws(
    server: ServerProcess, user: str | None = None, role: str = "user", **kw: Any
) -> RawWs:
    peer = RawWs.to(server, **kw)
    token = server.token(user or unique("ws"), role)
    reply = peer.connect(token=token)
    assert reply.command == "CONNECTED", str(reply)
    return peer


@pytest.mark.parametrize(
    ("offered", "chosen", "accept_version"),
    [
        (["v10.stomp", "v11.stomp", "v12.stomp"], "v12.stomp", "1.2"),
        (["v12.stomp", "v10.stomp"], "v12.stomp", "1.2"),
        (["v10.stomp", "v11.stomp"], "v11.stomp", "1.1"),
        (["v10.stomp"], "v10.stomp", "1.0"),
        (None, None, "1.2"),
    ],
)
def test_subprotocol_is_the_highest_offered(
    server: ServerProcess, offered: list[str] | None, chosen: str | None, accept_version: str
) -> None:
    peer = RawWs.to(server, subprotocols=offered)
    with peer:
        assert peer.subprotocol == chosen
        reply = peer.connect(accept_version=accept_version)
        assert reply.command == "CONNECTED", str(reply)
        assert reply["version"] == accept_version


def test_stomp_py_binary_mode_round_trip(clients: Clients) -> None:
    dest = topic()
    sub = clients("ws", user=unique("sub"), binary_mode=True)
    pub = clients("ws", user=unique("pub"), role="publisher", binary_mode=True)
    sub.subscribe(dest)
    pub.send(dest, "sent as binary websocket messages")
    assert sub.listener.message().body == "sent as binary websocket messages"


def test_several_frames_in_one_websocket_message(server: ServerProcess) -> None:
    dest = topic()
    token = server.token(unique("multi"), "publisher")
    with RawWs.to(server) as peer:
        batch = b"".join(
            [
                encode_frame("CONNECT", {"accept-version": "1.2", "host": "x", "passcode": token}),
                encode_frame("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "r-sub"}),
                b"\n",  # a heart-beat between frames
                encode_frame("SEND", {"destination": dest, "receipt": "r-send"}, "batched"),
            ]
        )
        peer.send_raw(batch)
        frames = [peer.read_frame() for _ in range(4)]
        commands = [f.command for f in frames if f is not None]
        assert commands[0] == "CONNECTED", commands
        assert sorted(commands[1:]) == ["MESSAGE", "RECEIPT", "RECEIPT"], commands
        receipts = [f["receipt-id"] for f in frames if f is not None and f.command == "RECEIPT"]
        assert receipts == ["r-sub", "r-send"]
        message = next(f for f in frames if f is not None and f.command == "MESSAGE")
        assert message.body == b"batched"


@pytest.mark.parametrize("binary", [False, True])
def test_frame_split_across_websocket_messages(server: ServerProcess, binary: bool) -> None:
    dest = topic()
    sub = connected_ws(server)
    pub = connected_ws(server, role="publisher", binary=binary)
    try:
        sub.send("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "r"})
        sub.read_until("RECEIPT")
        frame = encode_frame(
            "SEND", {"destination": dest, "x-split": "yes", "receipt": "sent"}, "split body"
        )
        cuts = [3, 9, frame.index(b"\n\n") + 1, len(frame) - 1]  # inside the blank line, pre-NUL
        start = 0
        for cut in [*cuts, len(frame)]:
            pub.send_raw(frame[start:cut])
            start = cut
            time.sleep(0.02)
        assert pub.read_until("RECEIPT")["receipt-id"] == "sent"
        message = sub.read_until("MESSAGE")
        assert message.body == b"split body"
        assert message["x-split"] == "yes"
    finally:
        sub.close()
        pub.close()


def test_large_frame_in_chunks_like_stompjs(server: ServerProcess) -> None:
    """stompjs splits frames over maxWebSocketChunkSize (8 KiB) into several messages."""
    dest = topic()
    sub = connected_ws(server)
    pub = connected_ws(server, role="publisher")
    try:
        sub.send("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "r"})
        sub.read_until("RECEIPT")
        body = (b"0123456789abcdef" * 3000)[:48000]
        frame = encode_frame("SEND", {"destination": dest, "receipt": "big"}, body)
        for start in range(0, len(frame), 8192):
            pub.send_raw(frame[start : start + 8192])
        assert pub.read_until("RECEIPT")["receipt-id"] == "big"
        assert sub.read_until("MESSAGE").body == body
    finally:
        sub.close()
        pub.close()


def test_text_messages_for_text_frames_binary_for_the_rest(server: ServerProcess) -> None:
    dest = topic()
    sub = connected_ws(server)
    pub = connected_ws(server, role="publisher", binary=True)
    try:
        assert sub.opcodes[0] == Opcode.TEXT, "CONNECTED was not a text message"
        sub.send("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "r"})
        sub.read_until("RECEIPT")
        pub.send("SEND", {"destination": dest, "receipt": "t"}, "plain text \u00e9")
        pub.read_until("RECEIPT")
        text = sub.read_until("MESSAGE")
        assert text.body == "plain text \u00e9".encode()
        assert sub.opcodes[-1] == Opcode.TEXT
        pub.send("SEND", {"destination": dest, "receipt": "b"}, b"\xff\xfe\x00\x80 not utf-8")
        pub.read_until("RECEIPT")
        binary = sub.read_until("MESSAGE")
        assert binary.body == b"\xff\xfe\x00\x80 not utf-8"
        assert sub.opcodes[-1] == Opcode.BINARY
    finally:
        sub.close()
        pub.close()


def test_version_mismatch_over_websocket(server: ServerProcess) -> None:
    with RawWs.to(server, subprotocols=["v12.stomp"]) as peer:
        peer.send_raw(encode_frame("CONNECT", {"accept-version": "3.0", "host": "x"}))
        error = peer.expect_error()
        assert error.message == "unsupported protocol version"
        assert error["version"] == "1.0,1.1,1.2"


def test_error_then_close_over_websocket(server: ServerProcess) -> None:
    peer = connected_ws(server)
    try:
        peer.send("SEND", {"destination": "/queue/nope", "receipt": "r-bad"}, "x")
        error = peer.expect_error()
        assert error.message == "forbidden destination"
        assert error["receipt-id"] == "r-bad"
        assert peer.close_code is not None, "no WebSocket close frame after ERROR"
    finally:
        peer.close()


def test_heartbeat_timeout_over_websocket(make_server: Callable[..., ServerProcess]) -> None:
    node = make_server(heartbeat_ms="500,500")
    silent = RawWs.to(node)
    beating = RawWs.to(node)
    try:
        reply = silent.connect(token=node.token(unique("s")), heart_beat="500,500")
        assert reply["heart-beat"].replace(" ", "") == "500,500"
        assert beating.connect(token=node.token(unique("b")), heart_beat="500,500").command == (
            "CONNECTED"
        )
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            beating.send_raw(b"\n")
            time.sleep(0.2)
        error = silent.expect_error(timeout=6.0)
        assert error.message == "heart-beat timeout"
        assert silent.heartbeats, "the server sent no heart-beats over WebSocket"
        beating.send("SUBSCRIBE", {"id": "s", "destination": topic(), "receipt": "alive"})
        assert beating.read_until("RECEIPT")["receipt-id"] == "alive"
    finally:
        silent.close()
        beating.close()


def test_oversized_websocket_message_gets_a_stomp_error(server: ServerProcess) -> None:
    """A frame far over --max-frame-bytes in one WebSocket message: ERROR, not a bare close."""
    witness = Witness(server)
    try:
        peer = RawWs.to(server)
        with peer:
            assert peer.connect(token=server.token(unique("big"), "publisher")).command == (
                "CONNECTED"
            )
            peer.send("SEND", {"destination": topic()}, b"z" * (2 << 20))
            frame = peer.read_frame(timeout=8)
            assert frame is not None, (
                f"closed with WebSocket code {peer.close_code} and no STOMP ERROR"
            )
            assert frame.command == "ERROR", str(frame)
            assert isinstance(frame, Error)
            assert frame.message == "frame too large"
            peer.expect_closed()
        witness.check()
    finally:
        witness.close()
