"""The API's route table: one :class:`Operation` per method and path.

The same table installs the aiohttp routes (:func:`install`) and describes them in the OpenAPI
document (:mod:`server.api.openapi`), so the document cannot list a route that does not exist or
miss one that does. Installing wraps each endpoint with the operation's access rule (and the
per-user rate limit for authenticated calls), so an endpoint receives its :class:`Principal`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from server.api.auth import Access, authenticate
from server.api.ratelimit import check_user
from server.auth import Principal
from server.destinations import EVENT_ID

Endpoint = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]

#: Path parameters: the pattern aiohttp matches (anything else is a 404) and their schema.
PATH_PARAMS: dict[str, tuple[str, dict[str, object]]] = {
    "event_id": (EVENT_ID, {"type": "integer", "minimum": 1, "maximum": 999_999_999}),
    "hold_id": (r"[^/]{1,64}", {"type": "string"}),
    "order_id": (r"[^/]{1,64}", {"type": "string"}),
    "code": (r"[^/]{1,256}", {"type": "string"}),
    "scanner_id": (r"[^/]{1,64}", {"type": "string"}),
    "webhook_id": (r"[0-9]{1,18}", {"type": "integer", "minimum": 1}),
}


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    description: str
    required: bool = False
    #: Its JSON schema in the OpenAPI document.
    schema: tuple[tuple[str, object], ...] = (("type", "string"),)


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    #: OpenAPI path template, e.g. ``/api/events/{event_id}``.
    path: str
    endpoint: Endpoint
    summary: str
    tag: str
    access: Access = Access.PUBLIC
    body: type[BaseModel] | None = None
    #: The query parameters, as a model of plain members (read with ``read_query``).
    query: type[BaseModel] | None = None
    status: int = 200
    #: The success body's model; ``None`` for no body (204).
    response: type[BaseModel] | None = None
    #: The success body is a JSON array of ``response``.
    many: bool = False
    #: The success body's media type when it is not JSON.
    media_type: str = "application/json"
    #: Error statuses worth documenting besides 400/401/403/413/429/500.
    errors: tuple[int, ...] = ()
    headers: tuple[Header, ...] = ()
    description: str = ""

    @property
    def operation_id(self) -> str:
        return self.endpoint.__name__

    def aiohttp_path(self) -> str:
        return re.sub(r"\{(\w+)\}", lambda m: f"{{{m[1]}:{PATH_PARAMS[m[1]][0]}}}", self.path)

    def path_params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)


def _bind(operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    endpoint = operation.endpoint
    access = operation.access

    async def handle(request: web.Request) -> web.StreamResponse:
        principal = authenticate(request, access)
        if principal.name is not None:
            check_user(request, principal.name)
        return await endpoint(request, principal)

    handle.__name__ = operation.operation_id
    return handle


def install(app: web.Application, operations: list[Operation]) -> None:
    for operation in operations:
        handler = _bind(operation)
        if operation.method == "GET":
            app.router.add_get(operation.aiohttp_path(), handler)  # and HEAD
        else:
            app.router.add_route(operation.method, operation.aiohttp_path(), handler)


def event_id(request: web.Request) -> int:
    return int(request.match_info["event_id"])
