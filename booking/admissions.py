"""Admission tokens: proof that the waiting room let a user shop for an event (SPEC §5).

A token is a JWT (HS256, key derived from the node secret, apart from session tokens) naming
the event and the user, with an expiry. Holds on an event whose waiting room is on require one
for that same event and user; a token for another event or user, a forged or an expired one is
refused with :class:`~booking.errors.AdmissionRequired`.
"""

from __future__ import annotations

import hashlib

import jwt

from booking.errors import AdmissionRequired

_PURPOSE = "admission"


class AdmissionSigner:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"concert-hub admission|" + secret.encode()).digest()

    def issue(self, event_id: int, user: str, expires_at: float) -> str:
        """A token valid until ``expires_at`` (unix seconds): the admission's own expiry, so a
        token re-issued to a reconnecting user never outlives the admission."""
        claims = {"sub": user, "evt": event_id, "exp": int(expires_at), "pur": _PURPOSE}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str | None, event_id: int, user: str) -> None:
        if not token:
            raise AdmissionRequired("this sale has a waiting room: an admission token is required")
        try:
            claims = jwt.decode(
                token, self._key, algorithms=["HS256"], options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError:
            raise AdmissionRequired("the admission token has expired") from None
        except jwt.PyJWTError:
            raise AdmissionRequired("the admission token is not valid") from None
        if claims.get("pur") != _PURPOSE or claims.get("evt") != event_id or claims["sub"] != user:
            raise AdmissionRequired("the admission token is for another event or user")
