"""Guest identities for the demo: a fresh ``guest-…`` user with the ``user`` role.

Rate limited per client IP by ``--guest-rate-per-ip``, on top of the REST limit per IP.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from aiohttp import web

from booking.clock import iso, utcnow
from server.api import models
from server.api.operations import Operation
from server.api.payloads import json_response
from server.api.ratelimit import check_guest
from server.auth import GUEST_PREFIX, Principal, Role
from server.keys import TOKENS

GUEST_TTL_S = 24 * 3600


async def create_guest(request: web.Request, _: Principal) -> web.Response:
    check_guest(request)
    user = f"{GUEST_PREFIX}{secrets.token_hex(6)}"
    token = request.app[TOKENS].issue(user, Role.USER, GUEST_TTL_S)
    expires_at = iso(utcnow().replace(microsecond=0) + timedelta(seconds=GUEST_TTL_S))
    return json_response(models.Guest(token=token, user=user, expires_at=expires_at), 201)


OPERATIONS: list[Operation] = [
    Operation("POST", "/api/auth/guest", create_guest, "Get a guest identity", "auth",
              status=201, response=models.Guest, errors=(429,),
              description="A bearer token for a new user `guest-<random>` (role user), valid "
              "for 24 hours; no request body."),
]  # fmt: skip
