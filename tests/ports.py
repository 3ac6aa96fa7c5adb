"""Free TCP ports for the servers the tests start.

A port found free may be taken by someone else before the child binds it (another xdist worker,
or any client's ephemeral port), so whoever starts a server on one retries on a fresh port when
the child reports "address already in use". Within one test process a port is handed out once:
the kernel readily offers a port again as soon as it is closed, and a node given the same port
for HTTP and for STOMP does not start (and a cluster node then hangs rather than exits).
"""

from __future__ import annotations

import socket

_handed_out: set[int] = set()


def free_port() -> int:
    """A port nobody listens on right now (the caller binds it soon after), never one this
    process handed out before."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
