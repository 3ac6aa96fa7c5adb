"""What the API's handlers use of the node: its booking service, settings, database, broker.

The node's ``AppKey``s live in :mod:`server.app`, which imports this package to install the API;
so they are looked up on the module at request time rather than imported by name (which would
fail while :mod:`server.app` is still being imported).
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

import server.app as node
from booking.service import BookingService
from server.auth import TokenAuthority
from server.metrics import BrokerMetrics
from server.seat_sequencer import SeatSequencer
from server.session import StompService
from server.settings import Settings
from server.websocket import STOMP_SERVICE

TOKENS = web.AppKey("api_tokens", TokenAuthority)


def booking(request: web.Request) -> BookingService:
    return request.app[node.BOOKING]


def seat_sequencer(request: web.Request) -> SeatSequencer:
    """Where seat-map snapshots come from (the cluster-wide sequence in cluster mode)."""
    return request.app[node.SEQUENCER]


def settings(app: web.Application) -> Settings:
    return app[node.SETTINGS]


def database(request: web.Request) -> AsyncEngine:
    return request.app[node.DATABASE]


def stomp(request: web.Request) -> StompService:
    return request.app[STOMP_SERVICE]


def tokens(request: web.Request) -> TokenAuthority:
    return request.app[TOKENS]


def install_tokens(app: web.Application) -> None:
    app[TOKENS] = TokenAuthority(app[node.SECRET])


def metrics(request: web.Request) -> BrokerMetrics:
    return request.app[node.METRICS]
