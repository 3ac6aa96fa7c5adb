"""Solve a waiting room's proof-of-work challenge (``POST /api/events/{id}/queue/challenge``).

Find a nonce such that SHA-256(``challenge:nonce``) has ``difficulty`` leading zero bits, then join
with ``X-Queue-Proof: challenge:nonce`` (REST) or the ``queue-proof`` header (STOMP SEND to
``/app/events/{id}/queue/join``). About 2^difficulty hashes on average.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable


def solve(challenge: str, difficulty: int, progress: Callable[[int], None] | None = None) -> str:
    """The proof (``challenge:nonce``) for ``challenge``; ``progress`` hears the attempts so far
    every 65,536 tries."""
    prefix = f"{challenge}:".encode()
    bits = 256 - difficulty
    n = 0
    while True:
        digest = hashlib.sha256(prefix + str(n).encode()).digest()
        if int.from_bytes(digest, "big") >> bits == 0:
            return f"{challenge}:{n}"
        n += 1
        if progress is not None and n % 65536 == 0:
            progress(n)
