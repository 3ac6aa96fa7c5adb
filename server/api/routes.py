"""The REST API's route table, and its installation on the node's app."""

from __future__ import annotations

from aiohttp import web

from server.api import (
    admin,
    checkin,
    desk,
    events,
    guest,
    holds,
    openapi,
    orders,
    queue,
    signin,
    tickets,
    webhooks,
)
from server.api.operations import Operation, install
from server.api.payloads import body_limit_middleware
from server.api.problems import problem_middleware
from server.api.ratelimit import ip_rate_middleware
from server.keys import LAYOUTS, RATE_LIMITS, SETTINGS
from server.rate_limits import RateLimits

OPERATIONS: list[Operation] = [
    *guest.OPERATIONS,
    *signin.OPERATIONS,
    *events.OPERATIONS,
    *queue.OPERATIONS,
    *holds.OPERATIONS,
    *orders.OPERATIONS,
    *tickets.OPERATIONS,
    *admin.OPERATIONS,
    *desk.OPERATIONS,
    *checkin.OPERATIONS,
    *webhooks.OPERATIONS,
    *openapi.OPERATIONS,
]


def setup(app: web.Application) -> None:
    """Install the API; the app's settings must already be set."""
    app.middlewares.append(problem_middleware)
    app.middlewares.append(body_limit_middleware)
    app.middlewares.append(ip_rate_middleware)
    app[RATE_LIMITS] = RateLimits.from_settings(app[SETTINGS])
    app[LAYOUTS] = {}
    openapi.publish(app, OPERATIONS)
    install(app, OPERATIONS)
