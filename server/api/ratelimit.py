"""Enforcing the REST rate limits (:mod:`server.rate_limits`): a 429 problem with
``Retry-After`` when a bucket is empty."""

from __future__ import annotations

import math

from aiohttp import web

from server.api.problems import Handler, is_api
from server.client_addresses import FORWARDED_HEADER
from server.errors import Problem
from server.keys import CLIENT_ADDRESSES, RATE_LIMITS
from server.rate_limits import TokenBuckets


def client_ip(request: web.Request) -> str | None:
    """The client's address (:mod:`server.client_addresses`): behind a trusted proxy, the one it
    forwards; ``None`` when a trusted proxy forwarded none (then no cap per client IP applies
    to the request's holds)."""
    addresses = request.app[CLIENT_ADDRESSES]
    return addresses.resolve(request.remote, request.headers.get(FORWARDED_HEADER))


def client_ip_or_peer(request: web.Request) -> str:
    """The client's address, or the peer's where a trusted proxy forwarded none (it is
    misconfigured): what a per-IP rate limit counts the request against, so that it is still
    limited, and what a sign-in request records."""
    return client_ip(request) or request.remote or "unknown"


def enforce(buckets: TokenBuckets, key: str, who: str) -> None:
    """Take a token from ``key``'s bucket or raise the 429 problem."""
    wait = buckets.take(key)
    if wait:
        raise Problem(
            429,
            "rate_limited",
            f"too many requests from this {who}; limit is {buckets.rate:g} per second",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


def check_user(request: web.Request, user: str) -> None:
    enforce(request.app[RATE_LIMITS].per_user, user, "user")


def check_guest(request: web.Request) -> None:
    enforce(request.app[RATE_LIMITS].guests_per_ip, client_ip_or_peer(request), "client IP")


def check_sign_in(request: web.Request) -> None:
    enforce(request.app[RATE_LIMITS].sign_ins_per_ip, client_ip_or_peer(request), "client IP")


@web.middleware
async def ip_rate_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_api(request):
        enforce(request.app[RATE_LIMITS].per_ip, client_ip_or_peer(request), "client IP")
    return await handler(request)
