"""Sans-I/O STOMP 1.0/1.1/1.2: bytes in, events and bytes out.

Nothing here performs I/O or imports asyncio; the server feeds received bytes to a
:class:`~protocol.connection.ServerConnection` and writes what it returns. The same core serves
the WebSocket and the raw TCP transports, and the tests drive it synchronously.
"""

from protocol.codec import FrameParser, encode_message, serialize
from protocol.connection import ConnectionState, ServerConnection
from protocol.errors import LocalProtocolError, ProtocolError
from protocol.frames import Command, Frame, StompVersion
from protocol.limits import Limits

__all__ = [
    "Command",
    "ConnectionState",
    "Frame",
    "FrameParser",
    "Limits",
    "LocalProtocolError",
    "ProtocolError",
    "ServerConnection",
    "StompVersion",
    "encode_message",
    "serialize",
]
