"""Concert-Hub's Python client: STOMP over WebSocket on asyncio, two ways.

* :mod:`concert_hub_client.sdk` is the SDK for integrations and scripts (on the ``websockets``
  library): reconnects, resumed subscriptions, receipts, transactions, ``/app`` helpers.
* What this package exports is the benchmark core: two sans-I/O cores and thin glue.
  :mod:`protocol.client` speaks STOMP (the same codec as the server),
  :mod:`concert_hub_client.websocket` speaks RFC 6455, and :mod:`concert_hub_client.connection`
  runs them on an asyncio Protocol with no task per connection. The benchmarks use it
  (``scripts/bench/``: fan-out, waiting room, sell-out, journey), because they hold thousands of
  sessions in one process beside the server they measure, where the SDK's tasks per connection
  would add client CPU to the figures; the tests' raw peers use the two cores.

Everything else, the tests that act as a user or an integration among them, uses the SDK.
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
