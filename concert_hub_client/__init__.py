"""Concert-Hub's Python client: STOMP over WebSocket on asyncio.

Two sans-I/O cores and thin glue: :mod:`protocol.client` speaks STOMP (the same codec as the
server), :mod:`concert_hub_client.websocket` speaks RFC 6455, and
:mod:`concert_hub_client.connection` runs them on an asyncio Protocol. The tests and the
benchmarks use it; it is the seed of the product's Python SDK (issue 17).
"""

from concert_hub_client.connection import Client, ClientError, connect
from concert_hub_client.websocket import Opcode, WebSocketClient, WebSocketError
from protocol.client import Connected, Error, HeartBeat, Message, Receipt

__all__ = [
    "Client",
    "ClientError",
    "Connected",
    "Error",
    "HeartBeat",
    "Message",
    "Opcode",
    "Receipt",
    "WebSocketClient",
    "WebSocketError",
    "connect",
]
