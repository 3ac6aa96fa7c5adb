"""How encoded STOMP bytes are wrapped for each transport, once per message, not per recipient.

Raw TCP carries STOMP bytes as they are. WebSocket wraps them in one server-to-client frame
(RFC 6455 §5.2: FIN set, no mask); it is built here once and the same bytes are written to every
WebSocket subscriber, bypassing aiohttp's per-call writer. A text frame is used when the STOMP
bytes are valid UTF-8 (what stompjs and RabbitMQ Web-STOMP use), else a binary frame.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

Framing = Callable[[bytes], bytes]

_OP_TEXT = 0x81  # FIN + text
_OP_BINARY = 0x82  # FIN + binary


def raw(payload: bytes) -> bytes:
    return payload


def websocket(payload: bytes) -> bytes:
    if payload.isascii():  # no copy, unlike decoding: JSON bodies are ASCII as a rule
        first = _OP_TEXT
    else:
        try:
            payload.decode("utf-8")
            first = _OP_TEXT
        except UnicodeDecodeError:
            first = _OP_BINARY
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 65536:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload
