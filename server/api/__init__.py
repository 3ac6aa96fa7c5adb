"""The REST API of SPEC §5 under ``/api``: JSON in and out, RFC 9457 problems for errors.

:func:`setup` installs it on the node's app: the error boundary, the body-size limit and the
per-IP rate limit as middlewares (acting on ``/api`` paths only), then every operation of the
route table.

| module | holds |
|---|---|
| ``operations`` | the route table's :class:`~server.api.operations.Operation` and its install |
| ``problems`` | problem+json, the booking-kind → status map, the error boundary |
| ``auth``, ``ratelimit`` | bearer tokens → principals; token buckets per IP and user |
| ``models``, ``payloads`` | request/response models; reading and writing JSON |
| ``events``, ``queue``, ``holds``, ``orders``, ``tickets``, ``admin``, ``guest`` | the endpoints |
| ``openapi`` | ``/api/openapi.json`` and ``/api/docs``, built from the table |
"""

from __future__ import annotations

from aiohttp import web

from server.api import admin, events, guest, holds, openapi, orders, queue, state, tickets
from server.api.operations import Operation, install
from server.api.payloads import body_limit_middleware
from server.api.problems import problem_middleware
from server.api.ratelimit import RATE_LIMITS, RateLimits, ip_rate_middleware

OPERATIONS: list[Operation] = [
    *guest.OPERATIONS,
    *events.OPERATIONS,
    *queue.OPERATIONS,
    *holds.OPERATIONS,
    *orders.OPERATIONS,
    *tickets.OPERATIONS,
    *admin.OPERATIONS,
    *openapi.OPERATIONS,
]


def setup(app: web.Application) -> None:
    """Install the API; the app's settings and secret must already be set."""
    app.middlewares.append(problem_middleware)
    app.middlewares.append(body_limit_middleware)
    app.middlewares.append(ip_rate_middleware)
    state.install_tokens(app)
    app[RATE_LIMITS] = RateLimits.from_settings(state.settings(app))
    app[events.LAYOUTS] = events.LayoutCache()
    openapi.publish(app, OPERATIONS)
    install(app, OPERATIONS)
