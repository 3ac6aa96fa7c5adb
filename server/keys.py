"""The node's typed application keys, in one place.

The composition root (:mod:`server.app`) sets them; the edges (REST handlers, the WebSocket
handler, the UI pages) read them. Nothing here imports the composition root, so nothing that
imports this module does either.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.core import BookingCore
from server.auth import TokenAuthority
from server.backplane import Backplane
from server.client_addresses import ClientAddresses
from server.metrics import BrokerMetrics, NodeMetrics
from server.node_roster import NodeRoster
from server.outflow import Health
from server.rate_limits import RateLimits
from server.seat_stream import SeatStream
from server.session import StompService
from server.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
TOKENS = web.AppKey("tokens", TokenAuthority)
METRICS = web.AppKey("metrics", BrokerMetrics)
#: The rest of the metric catalogue (HTTP, booking, waiting room, live data, infrastructure).
NODE_METRICS = web.AppKey("node_metrics", NodeMetrics)
DATABASE = web.AppKey("database", AsyncEngine)
BACKPLANE = web.AppKey("backplane", Backplane)
BOOKING = web.AppKey("booking", BookingCore)
STOMP = web.AppKey("stomp", StompService)
SEATS = web.AppKey("seats", SeatStream)
#: Every node's figures, as this node last heard them.
NODES = web.AppKey("nodes", NodeRoster)
#: The node's health as adaptive admission reads it.
HEALTH = web.AppKey("health", Health)
#: Where the built browser UI is (``web/dist``, or the copy a wheel carries).
WEB_DIST = web.AppKey("web_dist", Path)
#: Whose address a request counts against (the STOMP service's: one rule for both).
CLIENT_ADDRESSES = web.AppKey("client_addresses", ClientAddresses)
#: The REST API's rate limits.
RATE_LIMITS = web.AppKey("rate_limits", RateLimits)
#: Encoded event layouts by event id, with the ``layout_version`` they were encoded from (only
#: marking seats changes a layout, and one may hold 100,000 seats).
LAYOUTS: web.AppKey[dict[int, tuple[int, bytes]]] = web.AppKey("layouts")
#: The OpenAPI document and the ``/api/docs`` page, built once at start.
OPENAPI_DOCUMENT = web.AppKey("openapi_document", bytes)
API_DOCS_PAGE = web.AppKey("api_docs_page", bytes)
#: What ``GET /metrics`` answers when not this node's own registry (a worker's: every worker's).
EXPOSITION: web.AppKey[Callable[[], bytes]] = web.AppKey("exposition")
