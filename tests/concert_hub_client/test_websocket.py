"""concert_hub_client/websocket.py, synchronously: RFC 6455 handshake and framing, bytes in and
events out, grouped by RFC section."""

from __future__ import annotations

import pytest

from concert_hub_client.websocket import (
    Opcode,
    WebSocketClient,
    WebSocketError,
    accept_key,
    mask,
)


def server_frame(payload: bytes, opcode: int = Opcode.TEXT, *, fin: bool = True) -> bytes:
    """An unmasked server frame (RFC 6455 §5.2)."""
    size = len(payload)
    first = bytes(((0x80 if fin else 0) | opcode,))
    if size < 126:
        return first + bytes((size,)) + payload
    if size < 65536:
        return first + bytes((126,)) + size.to_bytes(2, "big") + payload
    return first + bytes((127,)) + size.to_bytes(8, "big") + payload


def read_client_frame(data: bytes) -> tuple[int, bytes, bytes]:
    """(opcode, unmasked payload, rest) of one masked client frame."""
    assert data[1] & 0x80, "client frames must be masked (RFC 6455 §5.3)"
    size, head = data[1] & 0x7F, 2
    if size == 126:
        size, head = int.from_bytes(data[2:4], "big"), 4
    elif size == 127:
        size, head = int.from_bytes(data[2:10], "big"), 10
    key = data[head : head + 4]
    payload = mask(data[head + 4 : head + 4 + size], key)
    return data[0] & 0x0F, payload, data[head + 4 + size :]


def opened(subprotocols: tuple[str, ...] = ("v12.stomp",)) -> WebSocketClient:
    ws = WebSocketClient("h:1", "/ws", subprotocols)
    request = ws.data_to_send().decode()
    key = next(
        line.split(": ", 1)[1]
        for line in request.split("\r\n")
        if line.startswith("Sec-WebSocket-Key")
    )
    answer = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key.encode())}\r\n"
        "Sec-WebSocket-Protocol: v12.stomp\r\n\r\n"
    )
    assert ws.receive_data(answer.encode()) == []
    assert ws.open and ws.subprotocol == "v12.stomp"
    return ws


class TestOpeningHandshake:
    """RFC 6455 §4.1: the request, and the checks of the server's answer."""

    def test_request(self) -> None:
        request = WebSocketClient("example:80", "/ws", ["v12.stomp", "v11.stomp"]).data_to_send()
        lines = request.decode().split("\r\n")
        assert lines[0] == "GET /ws HTTP/1.1"
        assert "Host: example:80" in lines and "Sec-WebSocket-Version: 13" in lines
        assert "Sec-WebSocket-Protocol: v12.stomp, v11.stomp" in lines
        assert request.endswith(b"\r\n\r\n")

    def test_accept_key_of_the_rfc_example(self) -> None:
        # RFC 6455 §1.3
        assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    def test_frames_in_the_same_read_as_the_answer_are_not_lost(self) -> None:
        ws = WebSocketClient("h", "/ws")
        key = ws._key  # the test plays the server
        answer = (
            f"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
        ).encode()
        assert ws.receive_data(answer[:10]) == []
        assert ws.receive_data(answer[10:] + server_frame(b"first")) == [(Opcode.TEXT, b"first")]
        assert ws.subprotocol is None

    @pytest.mark.parametrize(
        ("answer", "problem"),
        [
            (b"HTTP/1.1 404 Not Found\r\n\r\n", "upgrade refused: HTTP/1.1 404"),
            (b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: nope\r\n\r\n", "Sec-WebSocket-Accept"),
        ],
    )
    def test_a_bad_answer_is_refused(self, answer: bytes, problem: str) -> None:
        with pytest.raises(WebSocketError, match=problem):
            WebSocketClient("h").receive_data(answer)


class TestFraming:
    """RFC 6455 §5.2, §5.3: lengths in three sizes, masking, fragments."""

    @pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
    def test_lengths_both_ways(self, size: int) -> None:
        ws = opened()
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        ws.send(payload, Opcode.BINARY)
        opcode, sent, rest = read_client_frame(ws.data_to_send())
        assert (opcode, sent, rest) == (Opcode.BINARY, payload, b"")
        assert ws.receive_data(server_frame(payload)) == [(Opcode.TEXT, payload)]

    def test_frames_split_and_joined_across_reads(self) -> None:
        ws = opened()
        data = server_frame(b"a" * 300) + server_frame(b"b", Opcode.BINARY)
        out = []
        for byte in range(len(data)):
            out += ws.receive_data(data[byte : byte + 1])
        assert out == [(Opcode.TEXT, b"a" * 300), (Opcode.BINARY, b"b")]

    def test_fragments_are_handed_out_as_they_come(self) -> None:
        ws = opened()
        data = server_frame(b"MESS", fin=False) + server_frame(b"AGE", Opcode.CONTINUATION)
        assert ws.receive_data(data) == [(Opcode.TEXT, b"MESS"), (Opcode.CONTINUATION, b"AGE")]

    def test_a_masked_server_frame_fails_the_connection(self) -> None:
        ws = opened()
        with pytest.raises(WebSocketError, match="masked"):
            ws.receive_data(b"\x81\x81abcdx")

    def test_an_oversized_frame_is_refused_from_its_header(self) -> None:
        ws = WebSocketClient("h", max_frame_bytes=10)
        ws.open = True
        with pytest.raises(WebSocketError, match="limit 10"):
            ws.receive_data(b"\x82\x7e\x01\x00")


class TestControlFrames:
    """RFC 6455 §5.5: pings are answered, a close frame is echoed and remembered."""

    def test_ping_gets_a_pong_with_its_payload(self) -> None:
        ws = opened()
        assert ws.receive_data(server_frame(b"are you there", Opcode.PING)) == []
        opcode, payload, _ = read_client_frame(ws.data_to_send())
        assert (opcode, payload) == (Opcode.PONG, b"are you there")

    def test_close_is_echoed_once(self) -> None:
        ws = opened()
        ws.receive_data(server_frame((1001).to_bytes(2, "big") + b"going away", Opcode.CLOSE))
        assert (ws.closed, ws.close_code, ws.close_reason) == (True, 1001, "going away")
        opcode, payload, _ = read_client_frame(ws.data_to_send())
        assert (opcode, payload) == (Opcode.CLOSE, (1001).to_bytes(2, "big"))

    def test_close_without_a_code_is_1005(self) -> None:
        ws = opened()
        ws.receive_data(server_frame(b"", Opcode.CLOSE))
        assert ws.close_code == 1005
