"""HTTP connections per client address (``--max-http-connections-per-ip``).

Every HTTP connection holds a file descriptor until ``--http-idle-timeout-s`` lets it go, and
the node has a fixed number of them: without a cap per address, one client opening 20,000 idle
sockets starved the node of descriptors (``/readyz`` and new STOMP connections were reset) for
as long as it kept reopening them. So a connection over the cap is answered at once, before
its request is read, with a 429 problem (``rate_limited``, ``Retry-After: 1``) and closed, as
nginx's ``limit_conn`` does with its 503.

The address is decided as for STOMP sessions (:mod:`server.client_addresses`: the peer's, an
IPv6 peer by its /64), from the TCP peer alone: a trusted proxy's connections carry many
clients and are not capped here (the proxy caps them), and at accept no ``X-Real-IP`` has been
read yet. WebSocket connections are HTTP connections, so the cap also bounds ``/ws`` sessions
per address; it should sit above ``--max-connections-per-ip``, which says ``too many
connections`` in STOMP's words.
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import Counter

from server.client_addresses import ClientAddresses
from server.errors import Problem
from server.tally import Tally

RETRY_AFTER_S = 1


def _refusal(cap: int) -> bytes:
    problem = Problem.of("rate_limited", f"at most {cap} HTTP connections from one client address")
    body = json.dumps(problem.body(), separators=(",", ":")).encode()
    head = (
        "HTTP/1.1 429 Too Many Requests\r\n"
        "Content-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {RETRY_AFTER_S}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class ConnectionGate:
    """Counts open HTTP connections by client address and refuses those over ``cap``
    (0: no cap)."""

    def __init__(self, addresses: ClientAddresses, cap: int, refused: Counter) -> None:
        self._addresses = addresses
        self._cap = cap
        self._refused = refused
        self._open = Tally()
        #: The address each admitted connection counts against, by its handler.
        self._counted: dict[object, str] = {}
        self._refusal = _refusal(cap)

    def admit(self, handler: object, transport: asyncio.Transport) -> bool:
        """Count ``handler``'s new connection, or answer and close it (``False``)."""
        if not self._cap:
            return True
        peer = transport.get_extra_info("peername")
        address = self._addresses.resolve(peer[0] if isinstance(peer, tuple) else None)
        if address is None:  # a trusted proxy's, or not an IP connection
            return True
        if self._open[address] >= self._cap:
            self._refused.inc()
            transport.write(self._refusal)
            transport.close()
            return False
        self._open.add(address)
        self._counted[handler] = address
        return True

    def release(self, handler: object) -> None:
        address = self._counted.pop(handler, None)
        if address is not None:
            self._open.remove(address)
