"""Signed bearer tokens (JWT, HS256) and the identities they carry.

A token names a user and one role; the STOMP edge accepts it as the CONNECT ``passcode`` (any
``login``) or as an ``Authorization: Bearer`` connect header, and the REST edge as an
``Authorization`` HTTP header. Tokens are verified offline with the node's secret, so every node
that shares ``--secret`` accepts every other node's tokens.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

import jwt

from booking.keyring import Keyring, decode_with_any

_ALGORITHM = "HS256"
#: Longest user name a token may carry (the booking tables store names up to this length).
MAX_USER_LENGTH = 128
_ISSUER = "concert-hub"
#: Verified tokens remembered (:meth:`TokenAuthority.verify`): a few per active user, and each
#: door scanner's (it sends its token with every scan).
VERIFIED_KEPT = 32_768


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"
    PUBLISHER = "publisher"
    #: A door scanner (``POST /api/admin/scanners``): redeems tickets at its gate.
    SCANNER = "scanner"
    #: A system behind the box office: may consume ``/queue/`` destinations (issue 17).
    INTEGRATION = "integration"


#: Names of the demo's guest identities (``POST /api/auth/guest``).
GUEST_PREFIX = "guest-"


def is_guest(name: str) -> bool:
    return name.startswith(GUEST_PREFIX)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a session or request acts for; ``name`` is ``None`` for anonymous. A customer
    signed in by e-mail also has their ``email``."""

    name: str | None
    role: Role | None
    email: str | None = None
    #: A scanner's gate, and the event it is bound to (``None``: any event).
    gate: str | None = None
    event_id: int | None = None

    @property
    def authenticated(self) -> bool:
        return self.name is not None


ANONYMOUS = Principal(None, None)


class AuthenticationFailed(Exception):
    """The credentials were present but not valid (bad signature, expired, malformed)."""


class TokenAuthority:
    """Issues and verifies tokens with one shared secret.

    A customer's token (signed in by e-mail) also carries their address (``email``) and the
    token version it was issued under (``ver``); so does a door scanner's (with its ``gate``
    and, when bound to one, its event ``evt``). :attr:`versions` holds the current version of
    every customer who revoked their tokens within the longest token lifetime and of every
    revoked scanner (the node refreshes it from the database every few seconds); an older
    ``ver`` is refused. Tokens without ``ver`` (guests, ``concert-hub token``) live until they
    expire.
    """

    def __init__(self, keyring: Keyring) -> None:
        # HS256 wants a key of at least 32 bytes; deriving one lets any --secret work and keeps
        # token keys apart from the ticket-signing key derived from the same secret. Tokens
        # signed under a previous secret are accepted (:mod:`booking.keyring`).
        self._keys = keyring.keys("jwt")
        #: customer id → the oldest token version still valid (see the class docstring).
        self.versions: dict[str, int] = {}
        #: token → (its expiry, its principal, its version): tokens verified before, most
        #: recently used last. A token's signature and claims never change, so only its expiry
        #: and its revocation are checked again (about 90 µs of HMAC, base64 and JSON saved per
        #: request).
        self._verified: OrderedDict[str, tuple[float, Principal, int | None]] = OrderedDict()

    def issue(
        self,
        user: str,
        role: Role | str = Role.USER,
        ttl_s: int = 3600,
        *,
        email: str | None = None,
        version: int | None = None,
        gate: str | None = None,
        event_id: int | None = None,
    ) -> str:
        if not user or len(user) > MAX_USER_LENGTH:
            raise ValueError(f"a user name must have 1 to {MAX_USER_LENGTH} characters")
        now = int(time.time())
        claims = {
            "sub": user,
            "role": Role(role).value,
            "iat": now,
            "exp": now + ttl_s,
            "iss": _ISSUER,
        }
        if email is not None:
            claims["email"] = email
        if version is not None:
            claims["ver"] = version
        if gate is not None:
            claims["gate"] = gate
        if event_id is not None:
            claims["evt"] = event_id
        return jwt.encode(claims, self._keys[0], algorithm=_ALGORITHM)

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            expires, principal, version = known
            if time.time() < expires:
                self._verified.move_to_end(token)
                assert principal.name is not None
                if version is not None and version < self.versions.get(principal.name, 0):
                    raise AuthenticationFailed("the token was revoked (signed out everywhere)")
                return principal
            del self._verified[token]
        principal, expires, version = self._decode(token)
        self._verified[token] = (expires, principal, version)
        if len(self._verified) > VERIFIED_KEPT:
            self._verified.popitem(last=False)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float, int | None]:
        """Verify ``token`` from scratch: its principal, expiry and version."""
        try:
            claims = decode_with_any(
                token,
                self._keys,
                algorithms=[_ALGORITHM],
                issuer=_ISSUER,
                options={"require": ["sub", "exp", "role"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(_why_refused(exc)) from None
        name = str(claims["sub"])
        if not name:
            raise AuthenticationFailed("the token names no user (empty sub)")
        if len(name) > MAX_USER_LENGTH:
            raise AuthenticationFailed(f"user name too long (over {MAX_USER_LENGTH} characters)")
        try:
            role = Role(claims["role"])
            ver = claims.get("ver")
            version = None if ver is None else int(ver)
            revoked = version is not None and version < self.versions.get(name, 0)
            event = claims.get("evt")
            event_id = None if event is None else int(event)
            expires = float(claims["exp"])
        except (TypeError, ValueError):
            refused = "the token names an unknown role, version or event"
            raise AuthenticationFailed(refused) from None
        if revoked:
            raise AuthenticationFailed("the token was revoked (signed out everywhere)")
        email = claims.get("email")
        gate = claims.get("gate")
        principal = Principal(
            name,
            role,
            None if email is None else str(email),
            None if gate is None else str(gate),
            event_id,
        )
        return principal, expires, version

    def from_stomp(self, passcode: str | None, authorization: str | None) -> Principal:
        """Resolve CONNECT credentials; no credentials at all means anonymous."""
        token = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthenticationFailed("Authorization must be 'Bearer <token>'")
            token = value.strip()
        elif passcode:
            token = passcode
        if token is None:
            return ANONYMOUS
        return self.verify(token)


#: What is wrong with a refused token, in our words rather than the JWT library's, by the
#: library's exception: the first type that matches answers (an InvalidSignatureError is also a
#: DecodeError, so it comes first).
_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired"),
    (
        jwt.InvalidSignatureError,
        "the token's signature does not verify (signed with another --secret?)",
    ),
    (jwt.InvalidIssuerError, "the token was not issued by Concert-Hub"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAlgorithmError, "the token is not signed with HS256"),
    (jwt.DecodeError, "the token is not a JWT (expected three base64url parts separated by dots)"),
)


def _why_refused(exc: jwt.PyJWTError) -> str:
    """What is wrong with a token (:data:`_REFUSALS`; a missing claim is named)."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks its {exc.claim!r} claim"
    return next((why for kind, why in _REFUSALS if isinstance(exc, kind)), "the token is not valid")
