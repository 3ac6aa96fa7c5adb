"""A cost for extra places: proof of work on joining a waiting room (hashcash, issue 15).

When an event's ``pow_difficulty`` is above 0, joining its waiting room needs a *proof*: the
client asks for a challenge (:meth:`ProofOfWork.challenge`), finds a nonce such that

    SHA-256(challenge ":" nonce)   has at least ``difficulty`` leading zero bits

(``nonce`` any string of at most 64 characters; the clients count up in decimal), and joins with
``challenge ":" nonce``. On average that takes 2^difficulty hashes; checking it takes one.

The challenge is ``payload "." signature``: ``payload`` is base64url JSON naming the event, the
user, the difficulty, an expiry (5 minutes) and 16 random bytes; the signature an HMAC-SHA256
with a key derived from the node secret, so any node checks any node's challenge without shared
state. A proof is therefore good only for the user and the event it was issued for (it cannot be
passed to another user or used for another event), and only at the difficulty it was issued
with: an admin's new difficulty applies to challenges issued after the change. Replaying one's
own proof re-joins, which is idempotent anyway.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time

from booking.errors import ProofRequired
from booking.keyring import Keyring, mac, signed_by_any

#: How long a challenge may be solved and used.
CHALLENGE_TTL_S = 300
_MAX_NONCE = 64


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def work(challenge: str, nonce: str) -> int:
    """The leading zero bits of a candidate's hash."""
    return leading_zero_bits(hashlib.sha256(f"{challenge}:{nonce}".encode()).digest())


def solve(challenge: str, difficulty: int) -> str:
    """A nonce for ``challenge`` (what a client does; the server never needs it)."""
    n = 0
    while work(challenge, str(n)) < difficulty:
        n += 1
    return str(n)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ProofOfWork:
    def __init__(self, keyring: Keyring) -> None:
        self._keys = keyring.keys("queue proof")

    def _sign(self, payload: str) -> str:
        return _b64(mac(self._keys[0], payload.encode(), 16))

    def _signed(self, payload: str, signature: str) -> bool:
        """Whether this node (under its secret or a previous one) signed the challenge."""
        signed = payload.encode()
        return signed_by_any(self._keys, lambda k: _b64(mac(k, signed, 16)).encode(), signature)

    def challenge(self, event_id: int, user: str, difficulty: int, now: float | None = None
                  ) -> tuple[str, float]:  # fmt: skip
        """A fresh challenge for ``user`` joining ``event_id``, and when it expires."""
        expires = (now or time.time()) + CHALLENGE_TTL_S
        claims = {"e": event_id, "u": user, "d": difficulty, "x": int(expires),
                  "r": secrets.token_hex(8)}  # fmt: skip
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}", float(int(expires))

    def verify(self, proof: str | None, event_id: int, user: str, now: float | None = None
               ) -> None:  # fmt: skip
        """Accept a proof or raise :class:`~booking.errors.ProofRequired` saying why."""
        if not proof:
            raise ProofRequired("joining this waiting room needs a proof of work: ask for a "
                                "challenge and solve it")  # fmt: skip
        challenge, _, nonce = proof.rpartition(":")
        payload, _, signature = challenge.partition(".")
        if not nonce or len(nonce) > _MAX_NONCE or not self._signed(payload, signature):
            raise ProofRequired("the proof of work is not valid")
        try:
            claims = json.loads(_unb64(payload))
        except ValueError:
            raise ProofRequired("the proof of work is not valid") from None
        if claims.get("e") != event_id or claims.get("u") != user:
            raise ProofRequired("the proof of work is for another event or user")
        if claims.get("x", 0) < (now or time.time()):
            raise ProofRequired("the proof-of-work challenge has expired: ask for a new one")
        if work(challenge, nonce) < int(claims.get("d", 0)):
            raise ProofRequired("the proof of work does not meet the challenge's difficulty")
