"""Commands clients SEND to ``/app/...`` (SPEC §4), answered on their ``/user/queue/replies``.

Replies carry the request's ``correlation-id`` header (as Spring and RabbitMQ RPC users expect) and
go to every session of the user, on every node. ``/app/ping`` is a diagnostic any authenticated
SDK can use to check the round trip through the broker and its user destinations.
"""

from __future__ import annotations

import json

from server.destinations import Destination, user_route
from server.session import StompService, StompSession


def reply(
    service: StompService,
    user: str,
    request_headers: list[tuple[str, str]],
    payload: object,
    queue: str = "replies",
) -> None:
    headers = [("content-type", "application/json")]
    correlation = next((v for k, v in request_headers if k == "correlation-id"), None)
    if correlation is not None:
        headers.append(("correlation-id", correlation))
    body = json.dumps(payload, separators=(",", ":")).encode()
    service.broker.publish(user_route(user, queue), tuple(headers), body)


def ping(session: StompSession, _: Destination, headers: list[tuple[str, str]], __: bytes) -> None:
    assert session.principal.name is not None  # /app requires authentication
    reply(session.service, session.principal.name, headers, {"type": "pong"})


def register(service: StompService) -> None:
    service.app_commands["/app/ping"] = ping
