"""The REST API's error boundary: every error leaves as ``application/problem+json``.

:func:`problem_middleware` turns aiohttp's own 404/405/413, a :class:`~server.errors.Problem`
raised by a handler and a :class:`~booking.errors.BookingError` into problem documents (the
translation itself is :mod:`server.errors`'s); anything else is logged with its traceback and
answered with a generic 500 problem.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from booking.errors import BookingError
from server.errors import HTTP_KINDS, PROBLEM_JSON, Problem

log = logging.getLogger(__name__)


def problem_response(problem: Problem) -> web.Response:
    return web.Response(
        body=json.dumps(problem.body(), separators=(",", ":")).encode(),
        status=problem.status,
        content_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def too_large(limit: int) -> Problem:
    """The 413 of a body over ``limit`` bytes (``--max-request-bytes``), the limit in words."""
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit % size == 0:
            return Problem.of(
                "too_large", f"the request body is over the {limit // size} {unit} limit"
            )
    return Problem.of("too_large", f"the request body is over the {limit}-byte limit")


def _from_http(exc: web.HTTPException, request: web.Request) -> Problem:
    if isinstance(exc, web.HTTPNotFound):
        return Problem.of("route_not_found", "no such resource")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        problem = Problem.of("method_not_allowed", f"{exc.method} is not allowed here")
        problem.headers["Allow"] = allowed
        return problem
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return too_large(request.client_max_size)
    kind = next((k for k, (s, _) in HTTP_KINDS.items() if s == exc.status), "bad_request")
    return Problem(exc.status, kind, exc.reason)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_api(request: web.Request) -> bool:
    path = request.path
    return path == "/api" or path.startswith("/api/")


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_api(request):
        return await handler(request)
    try:
        return await handler(request)
    except Problem as problem:
        return problem_response(problem)
    except BookingError as error:
        return problem_response(Problem.from_booking(error))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(_from_http(exc, request))
    except Exception:
        log.exception("internal error answering %s %s", request.method, request.path)
        return problem_response(Problem.of("internal", "the server failed; see its log"))
