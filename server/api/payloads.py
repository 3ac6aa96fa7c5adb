"""Reading JSON request bodies into models (:func:`server.bodies.parse`: 400 for what is not
JSON, 422 naming each fault), and writing JSON responses. The 1 MiB body limit is aiohttp's
``client_max_size``: a 413 problem, at once when the request declares a longer
``Content-Length``, else when reading passes the limit.

A body is read within ``--http-idle-timeout-s`` of its head, the deadline the head itself had:
else a 408 problem and the connection is closed. Without it, a client that sends a head and then
a byte a minute holds a handler and a socket for as long as it likes; the head's timer alone
cannot see it (aiohttp stops that timer once the head is in). A client that goes away in the
middle of its body made a bad request, not the server an internal error: a 400 (that nobody
reads), counted as a client error, with no traceback in the log.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from server.api.problems import Handler, is_api, too_large
from server.bodies import parse, validate
from server.errors import Problem
from server.keys import SETTINGS

M = TypeVar("M", bound=BaseModel)


async def read_model(request: web.Request, model: type[M]) -> M:
    return parse(await read_body(request), model)


async def read_optional_model(request: web.Request, model: type[M]) -> M:
    """The body as ``model``, or ``model()`` when there is no body at all."""
    raw = await read_body(request)
    return parse(raw, model) if raw.strip() else model()


async def read_body(request: web.Request) -> bytes:
    """The whole body, within the deadline (see the module docstring)."""
    timeout = request.app[SETTINGS].http_idle_timeout_s
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        problem = Problem.of(
            "request_timeout", f"the request body did not arrive within {timeout:g} s"
        )
        problem.headers["Connection"] = "close"
        raise problem from None
    except ConnectionError:
        raise Problem.of("bad_request", "the connection closed before the body arrived") from None


def read_query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model`` (each parameter once); a 422 naming each fault."""
    return validate(dict(request.query), model, "the query")


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A declared ``Content-Length`` over the limit is refused before anything else is done."""
    length = request.content_length
    if length is not None and length > request.client_max_size and is_api(request):
        raise too_large(request.client_max_size)
    return await handler(request)


def json_response(
    payload: BaseModel | dict[str, Any] | list[Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json().encode()
    else:
        body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)
