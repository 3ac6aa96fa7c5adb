"""The client side of RFC 6455 WebSocket, sans I/O: the opening handshake and framing.

:class:`WebSocketClient` makes the upgrade request (§4.1), checks the answer (status 101,
``Sec-WebSocket-Accept``, the subprotocol chosen), masks what it sends (§5.3) and decodes what it
receives (§5.2): data frames come out of :meth:`~WebSocketClient.receive_data` as
``(opcode, payload)``, a ping is answered with a pong (§5.5.2), a close frame is echoed and its
code and reason kept (§5.5.1). What it wants written accumulates for
:meth:`~WebSocketClient.data_to_send`.

STOMP over WebSocket treats the payloads as one byte stream (a frame may span messages and a
message may hold several frames), so fragments are handed out as they arrive, continuation frames
included, without reassembling messages.

Why not the ``websockets`` library's sans-I/O core? It is correct and complete, but decodes a
frame in about 2 µs where this reader needs under 0.5 µs; the fan-out benchmark reads one
message on each of 10,000 connections in one process, sharing the cores with the server it
measures. This module does only what a STOMP client needs (no extensions, no reassembly), and it
is the one WebSocket framing code of the project's clients: the asyncio client and the tests'
raw peers both use it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence
from enum import IntEnum

#: RFC 6455 §1.3: the GUID hashed with the key into ``Sec-WebSocket-Accept``.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: A handshake answer longer than this is refused (no real server sends one).
MAX_HANDSHAKE_BYTES = 16384


class Opcode(IntEnum):
    """RFC 6455 §5.2 opcodes."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class WebSocketError(Exception):
    """The server broke the handshake or the framing (RFC 6455 §7.1.7: fail the connection)."""


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` repeated (RFC 6455 §5.3), as one big integer."""
    size = len(payload)
    if not size:
        return b""
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        size, "little"
    )


def encode_frame(payload: bytes, opcode: int = Opcode.TEXT, *, fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455 §5.2)."""
    size = len(payload)
    first = (0x80 if fin else 0) | opcode
    if size < 126:
        head = bytes((first, 0x80 | size))
    elif size < 65536:
        head = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + mask(payload, key)


def accept_key(key: bytes) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer to ``key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()


class WebSocketClient:
    """Protocol state of one WebSocket connection, client side; no I/O."""

    # The fan-out benchmark holds thousands of these in one process.
    __slots__ = (
        "_buffer",
        "_key",
        "_out",
        "close_code",
        "close_reason",
        "closed",
        "has_data_to_send",
        "headers",
        "host",
        "max_frame_bytes",
        "open",
        "path",
        "subprotocol",
        "subprotocols",
    )

    def __init__(
        self,
        host: str,
        path: str = "/",
        subprotocols: Sequence[str] = (),
        *,
        headers: Sequence[tuple[str, str]] = (),
        max_frame_bytes: int = 64 << 20,
    ) -> None:
        self.host = host
        self.path = path
        self.subprotocols = list(subprotocols)
        self.headers = list(headers)
        self.max_frame_bytes = max_frame_bytes
        #: True once the server accepted the upgrade.
        self.open = False
        #: True once a close frame was received (or sent and echoed).
        self.closed = False
        #: The subprotocol the server chose (``None``: none).
        self.subprotocol: str | None = None
        #: From the server's close frame: 1005 when it carried no code (RFC 6455 §7.1.5).
        self.close_code: int | None = None
        self.close_reason = ""
        self._key = base64.b64encode(os.urandom(16))
        self._buffer = b""
        self._out: list[bytes] = [self._request()]
        #: Whether :meth:`data_to_send` has anything (an attribute: read once per message).
        self.has_data_to_send = True

    def _request(self) -> bytes:
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key.decode()}",
            "Sec-WebSocket-Version: 13",
        ]
        if self.subprotocols:
            lines.append(f"Sec-WebSocket-Protocol: {', '.join(self.subprotocols)}")
        lines += [f"{name}: {value}" for name, value in self.headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    # -- sending -------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued for the server since the last call (first: the upgrade request)."""
        out, self._out = self._out, []
        self.has_data_to_send = False
        return b"".join(out)

    def _queue(self, frame: bytes) -> None:
        self._out.append(frame)
        self.has_data_to_send = True

    def send(self, payload: bytes, opcode: int = Opcode.TEXT, *, fin: bool = True) -> None:
        """Queue one data frame; ``fin=False`` starts or continues a fragmented message."""
        self._queue(encode_frame(payload, opcode, fin=fin))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Queue a close frame (RFC 6455 §5.5.1)."""
        self._queue(encode_frame(code.to_bytes(2, "big") + reason.encode(), Opcode.CLOSE))

    # -- receiving -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[tuple[int, bytes]]:
        """The data frames completed by ``data`` as ``(opcode, payload)``, in order."""
        if not self._buffer and self.open:
            # The common case first: one whole, final, unmasked data frame under 64 KiB.
            first, length = data[0], data[1] if len(data) > 1 else 0xFF
            if first in (0x81, 0x82):
                if length < 126 and len(data) == length + 2:
                    return [(first & 0x0F, data[2:])]
                if length == 126 and len(data) == int.from_bytes(data[2:4], "big") + 4:
                    return [(first & 0x0F, data[4:])]
        buf = self._buffer + data if self._buffer else data
        if not self.open:
            buf = self._handshake(buf)
            if not self.open:
                self._buffer = buf
                return []
        size = len(buf)
        pos = 0
        frames: list[tuple[int, bytes]] = []
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if second & 0x80:
                raise WebSocketError("masked frame from the server (RFC 6455 §5.1)")
            if length > self.max_frame_bytes:
                raise WebSocketError(f"frame of {length} bytes (limit {self.max_frame_bytes})")
            end = pos + head + length
            if end > size:
                break
            opcode = first & 0x0F
            if opcode <= Opcode.BINARY:
                frames.append((opcode, buf[pos + head : end]))
            else:
                self._control(opcode, buf[pos + head : end])
            pos = end
        self._buffer = buf[pos:] if pos < size else b""
        return frames

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == Opcode.PING:
            self._queue(encode_frame(payload, Opcode.PONG))
        elif opcode == Opcode.CLOSE:
            if len(payload) >= 2:
                self.close_code = int.from_bytes(payload[:2], "big")
                self.close_reason = payload[2:].decode("utf-8", "replace")
            else:
                self.close_code = 1005
            if not self.closed:
                self._queue(encode_frame(payload[:2], Opcode.CLOSE))
            self.closed = True
        elif opcode != Opcode.PONG:
            raise WebSocketError(f"unknown opcode {opcode:#x} (RFC 6455 §5.2)")

    def _handshake(self, buf: bytes) -> bytes:
        """Check the upgrade answer once complete; returns the bytes after it."""
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HANDSHAKE_BYTES:
                raise WebSocketError("handshake answer too long")
            return buf
        lines = buf[:end].decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            raise WebSocketError(f"upgrade refused: {lines[0]}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept") != accept_key(self._key):
            raise WebSocketError("upgrade answer with a wrong Sec-WebSocket-Accept")
        chosen = headers.get("sec-websocket-protocol") or None
        if chosen is not None and chosen not in self.subprotocols:
            raise WebSocketError(f"server chose subprotocol {chosen!r}, not offered")
        self.subprotocol = chosen
        self.open = True
        return buf[end + 4 :]
