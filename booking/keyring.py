"""The node's secret and the ones it replaced (``--secret``, ``--previous-secrets``).

Everything the node signs (user, guest, scanner and admission tokens, order links, legacy ticket
codes, queue challenges, sign-in links) uses a key derived from the secret for that purpose alone,
so no two kinds of token can stand in for each other. Rotating the secret would end every one of
them at once: users signed out, waiting buyers' admissions refused, door scanners locked out,
e-mailed order links dead. So a node signs with the current secret only and *accepts* what any
secret of the ring signed: an operator rotates by moving the old secret to ``--previous-secrets``,
waits out what it signed (tokens, admissions, links they still want honoured), then drops it.
After a leak, drop it at once instead.

The private halves of the Ed25519 ticket keys are sealed under the current secret only: a node
whose secret unseals none makes a new key, and the old keys keep verifying by their public halves
(:mod:`booking.ticket_keys`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt


@dataclass(frozen=True, slots=True)
class Keyring:
    secret: str
    #: Secrets this one replaced, still accepted for verification, newest first.
    previous: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.secret or not all(self.previous):
            raise ValueError("a secret must not be empty")

    def key(self, purpose: str) -> bytes:
        """The signing key for ``purpose``."""
        return _derive(self.secret, purpose)

    def keys(self, purpose: str) -> tuple[bytes, ...]:
        """Every key that may have signed for ``purpose``: the signing key first."""
        return tuple(_derive(s, purpose) for s in (self.secret, *self.previous))


def _derive(secret: str, purpose: str) -> bytes:
    return hashlib.sha256(f"concert-hub {purpose}|{secret}".encode()).digest()


def mac(key: bytes, payload: bytes, size: int = 32) -> bytes:
    """HMAC-SHA256 of ``payload`` under ``key``, its first ``size`` bytes."""
    return hmac.new(key, payload, hashlib.sha256).digest()[:size]


def signed_by_any(
    keys: tuple[bytes, ...], signature_under: Callable[[bytes], bytes], given: str | bytes
) -> bool:
    """Whether ``given`` is the signature ``signature_under`` makes with one of ``keys``, in
    constant time. Compared as bytes: a client's text is whatever it sent (a header may carry
    any character), and ``compare_digest`` refuses non-ASCII strings with a TypeError."""
    if isinstance(given, str):
        given = given.encode(errors="replace")
    return any(hmac.compare_digest(signature_under(k), given) for k in keys)


def decode_with_any(token: str, keys: tuple[bytes, ...], **options: Any) -> dict[str, Any]:
    """``jwt.decode`` under the first of ``keys`` whose signature matches (the signing key is
    tried first); a token none of them signed fails as under the signing key. PyJWT checks the
    signature before the claims, so an expired token signed by a previous secret is refused
    as expired, not as forged."""
    try:
        return jwt.decode(token, keys[0], **options)
    except jwt.InvalidSignatureError:
        for key in keys[1:]:
            try:
                return jwt.decode(token, key, **options)
            except jwt.InvalidSignatureError:
                continue
        raise
