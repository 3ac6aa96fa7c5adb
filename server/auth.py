"""Signed bearer tokens (JWT, HS256) and the identities they carry.

A token names a user and one role; the STOMP edge accepts it as the CONNECT ``passcode`` (any
``login``) or as an ``Authorization: Bearer`` connect header, and the REST edge as an
``Authorization`` HTTP header. Tokens are verified offline with the node's secret, so every node
that shares ``--secret`` accepts every other node's tokens.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from enum import StrEnum

import jwt

_ALGORITHM = "HS256"
#: Longest user name a token may carry (the booking tables store names up to this length).
MAX_USER_LENGTH = 128
_ISSUER = "concert-hub"
#: Tokens a node remembers as verified (:meth:`TokenAuthority.verify`): a door scanner sends its
#: token with every scan, and decoding it again each time was a tenth of a scan's CPU.
VERIFIED_CACHE = 4096


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

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("a token secret must not be empty")
        # HS256 wants a key of at least 32 bytes; deriving one lets any --secret work and keeps
        # token keys apart from the ticket-signing key derived from the same secret.
        self._secret = hashlib.sha256(b"concert-hub jwt|" + secret.encode()).digest()
        #: customer id → the oldest token version still valid (see the class docstring).
        self.versions: dict[str, int] = {}
        #: token → (its principal, its ``exp``, its ``ver``): tokens verified before. A hit
        #: checks expiry and :attr:`versions` again, so it is refused exactly when decoding
        #: it afresh would be (revocation takes effect as promptly as without the cache).
        self._verified: dict[str, tuple[Principal, float, int | None]] = {}

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
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None:
            principal, expires, version = known
            if time.time() < expires:
                assert principal.name is not None
                if version is not None and version < self.versions.get(principal.name, 0):
                    raise AuthenticationFailed("the token was revoked (signed out everywhere)")
                return principal
            del self._verified[token]  # expired: decoding it says so
        principal, expires, version = self._decode(token)
        if len(self._verified) >= VERIFIED_CACHE:  # forget the oldest half
            for old in list(self._verified)[: VERIFIED_CACHE // 2]:
                del self._verified[old]
        self._verified[token] = (principal, expires, version)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float, int | None]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
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
            version = claims.get("ver")
            revoked = version is not None and int(version) < self.versions.get(name, 0)
            event = claims.get("evt")
            event_id = None if event is None else int(event)
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
        return principal, float(claims["exp"]), None if version is None else int(version)

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


def _why_refused(exc: jwt.PyJWTError) -> str:
    """What is wrong with a token, in our words rather than the JWT library's."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the token's signature does not verify (signed with another --secret?)"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the token was not issued by Concert-Hub"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token lacks its {exc.claim!r} claim"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the token is not valid yet"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "the token is not signed with HS256"
    if isinstance(exc, jwt.DecodeError):
        return "the token is not a JWT (expected three base64url parts separated by dots)"
    return "the token is not valid"
