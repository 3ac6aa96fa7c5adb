"""Reading JSON request bodies into models, and writing JSON responses.

A body that is not JSON is a 400 problem; JSON that does not fit the model is a 422 problem whose
``errors`` list names each fault (``loc``, ``msg``, ``type``, as pydantic reports them, without
echoing the input). The 1 MiB body limit is aiohttp's ``client_max_size``: a 413 problem, at
once when the request declares a longer ``Content-Length``, else when reading passes the limit.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from server.api.problems import Handler, Problem, is_api

M = TypeVar("M", bound=BaseModel)


def parse_model(raw: bytes, model: type[M]) -> M:
    """``raw`` JSON as ``model``, or the 400/422 :class:`Problem` (REST and STOMP alike)."""
    if not raw.strip():
        raise Problem.of("bad_request", "the request body must be a JSON document")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Problem.of("bad_request", f"the request body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None


async def read_model(request: web.Request, model: type[M]) -> M:
    return parse_model(await request.read(), model)


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A declared ``Content-Length`` over the limit is refused before anything else is done."""
    length = request.content_length
    if length is not None and length > request.client_max_size and is_api(request):
        raise Problem.of("too_large", "the request body is over the 1 MiB limit")
    return await handler(request)


def validation_problem(exc: ValidationError) -> Problem:
    faults = [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    return Problem.of("validation", "the request body does not match the schema", errors=faults)


def json_response(
    payload: BaseModel | dict[str, Any] | list[Any],
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json().encode()
    else:
        body = json.dumps(payload, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)
