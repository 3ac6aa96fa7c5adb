"""How long the node takes to answer HTTP requests: one middleware around every handler.

``concert_hub_http_request_duration_seconds{method,route,status_class}`` times each request from
the middleware to the response (or the error aiohttp turns into one), and
``concert_hub_http_requests_in_flight`` counts those being handled. ``route`` is the matched
resource's template (``/api/events/{event_id}/holds``), never the path, so its values are the
route table's; a request that matched no route (a 404, a 405) is ``unmatched``. A method outside
the usual few is ``other``: the label sets stay bounded whatever clients send.

WebSocket upgrades are not requests in this sense: the handler runs for the whole session, which
``concert_hub_sessions{transport="ws"}`` counts, so they are left out here.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from server.metrics import HTTP_METHODS, OTHER_METHOD, UNMATCHED_ROUTE, HttpMetrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_of(request: web.Request) -> str:
    """The template of the resource ``request`` matched, or ``unmatched``."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED_ROUTE
    return resource.canonical


def measure_requests(metrics: HttpMetrics) -> Middleware:
    """The middleware that feeds ``metrics``; install it right after the request-id one, so it
    sees the status every other middleware settled on."""
    duration, in_flight = metrics.request_duration, metrics.in_flight

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get(hdrs.UPGRADE, "").lower() == "websocket":
            return await handler(request)
        started = time.perf_counter()
        status = 500
        in_flight.inc()
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            in_flight.dec()
            method = request.method if request.method in HTTP_METHODS else OTHER_METHOD
            duration.labels(method, route_of(request), f"{status // 100}xx").observe(
                time.perf_counter() - started
            )

    return measure
