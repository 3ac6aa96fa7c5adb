"""Who a REST request acts for: ``Authorization: Bearer <token>`` → :class:`Principal`.

The tokens are the STOMP ones (:mod:`server.auth`), verified offline with the node's secret. An
operation declares its :class:`Access`; a missing or bad token on a protected operation is a 401
problem with ``WWW-Authenticate: Bearer`` (RFC 6750 §3), a non-admin on an admin operation a 403.
Public operations ignore the header, so a stale token in a browser never hides the event list.
"""

from __future__ import annotations

from enum import Enum

from aiohttp import web

from server.auth import ANONYMOUS, AuthenticationFailed, Principal, Role
from server.errors import Problem
from server.keys import TOKENS


class Access(Enum):
    PUBLIC = "public"
    USER = "user"  # any authenticated principal
    ADMIN = "admin"
    #: A door scanner's token (role ``scanner``).
    SCANNER = "scanner"
    #: A token when one is sent (and then it must be valid), else anonymous: the endpoint
    #: decides (an order's link key is a credential of its own).
    OPTIONAL = "optional"


def _unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = 'Bearer realm="concert-hub"'
    if error:
        challenge += f', error="{error}"'
    problem = Problem.of("unauthorized", detail)
    problem.headers["WWW-Authenticate"] = challenge
    return problem


def authenticate(request: web.Request, access: Access) -> Principal:
    if access is Access.PUBLIC:
        return ANONYMOUS
    header = request.headers.get("Authorization")
    if not header:
        if access is Access.OPTIONAL:
            return ANONYMOUS
        raise _unauthorized("an Authorization: Bearer <token> header is required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authorization must be 'Bearer <token>'", "invalid_request")
    try:
        principal = request.app[TOKENS].verify(token.strip())
    except AuthenticationFailed as exc:
        raise _unauthorized(f"the token is not valid: {exc}", "invalid_token") from None
    if access is Access.ADMIN and principal.role is not Role.ADMIN:
        raise Problem.of("not_admin", "this operation needs the admin role")
    if access is Access.SCANNER and principal.role is not Role.SCANNER:
        raise Problem.of("not_scanner", "this operation needs a scanner's token")
    if access is Access.USER and principal.role is Role.SCANNER:
        # A device at the door, not a buyer: a stolen door token must not hold, buy or read
        # orders under the device's name.
        raise Problem(403, "forbidden", "a door scanner's token is for the door's endpoints only")
    return principal


def unauthorized(detail: str) -> Problem:
    """The 401 of an endpoint that found no credential it accepts."""
    return _unauthorized(detail)


def user_name(principal: Principal) -> str:
    assert principal.name is not None, "a protected operation always has a named principal"
    return principal.name
