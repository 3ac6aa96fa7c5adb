"""Per-connection limits the protocol core enforces (SPEC §7).

Defaults are the documented flag defaults; the server builds one from its settings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    #: Largest whole frame (command, headers and body: every byte before the closing NUL)
    #: accepted from a client.
    max_frame_bytes: int = 65536
    #: Most headers in one client frame.
    max_headers: int = 64
    #: Largest header section (command line plus header lines) of one client frame.
    max_header_bytes: int = 8192
    #: Most concurrent subscriptions of one session.
    max_subscriptions: int = 256
    #: Most messages delivered in client/client-individual mode and not yet acknowledged.
    max_unacked: int = 4096
    #: Most frames buffered across a session's open transactions.
    max_transaction_frames: int = 1024
    #: Most transactions one session has open at once (BEGIN without COMMIT or ABORT yet).
    max_transactions: int = 16
    #: Most bytes (bodies and headers of the frames) buffered across a session's open
    #: transactions.
    max_transaction_bytes: int = 1 << 20
