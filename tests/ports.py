"""Free TCP ports for the servers the tests start.

A port found free may be taken by someone else before the child binds it (another xdist worker,
or any client's ephemeral port), so whoever starts a server on one retries on a fresh port when
the child reports "address already in use".
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nobody listens on right now (the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
