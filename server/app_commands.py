"""Commands clients SEND to ``/app/...`` (SPEC §4), answered on their ``/user/queue/...``.

Replies carry the request's ``correlation-id`` header (as Spring and RabbitMQ RPC users expect) and
go to every session of the user, on every node. ``/app/ping`` is a diagnostic any authenticated
SDK can use to check the round trip through the broker and its user destinations.

The booking commands are the REST calls of SPEC §5 over STOMP, with the same JSON bodies:

* ``/app/events/{event_id}/holds``, body ``{"seats": [...]}`` or ``{"best_available":
  {"count", "tier"?, "section"?, "accessible"?}}`` (and header ``admission-token`` when the
  waiting room is on) → ``{"type": "hold", ...}``, the members of the REST 201 body;
* ``/app/holds/{hold_id}/release``, no body → ``{"type": "released", "hold_id"}``;
* ``/app/events/{event_id}/queue/join``, no body → ``{"type": "queue", ...}``, the position
  (live updates follow on ``/user/queue/position``).

A failure goes to ``/user/queue/errors`` as ``{"type": "error", "status", "kind", "detail",
...}``: the status and members of the REST problem for the same failure (:mod:`server.errors`
translates for both edges; :mod:`server.bodies` holds the bodies both speak). Each command runs
as one task, so a slow database never stalls the session's input (the SEND's RECEIPT waits
for it: it goes once the reply is published); the service's task set keeps them until they
finish, and a stopping node lets them finish (:meth:`StompService.drain`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from booking.clock import utcnow
from booking.core import BookingCore
from booking.errors import BookingError
from booking.holds import HoldClient
from server.bodies import HoldRequest, dumps, hold_out, parse, position_body
from server.destinations import EVENT_ID, user_route
from server.errors import Problem
from server.session import StompService, StompSession

log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]


def reply(
    service: StompService,
    user: str,
    request_headers: Headers,
    payload: object,
    queue: str = "replies",
) -> None:
    headers = [("content-type", "application/json")]
    correlation = next((v for k, v in request_headers if k == "correlation-id"), None)
    if correlation is not None:
        headers.append(("correlation-id", correlation))
    service.broker.publish(user_route(user, queue), tuple(headers), dumps(payload))


def _user(session: StompSession) -> str:
    name = session.principal.name
    assert name is not None  # /app requires authentication (server.destinations.check_send)
    return name


def ping(session: StompSession, _: dict[str, str], headers: Headers, __: bytes) -> None:
    reply(session.service, _user(session), headers, {"type": "pong"})


class BookingCommands:
    """The ``/app`` booking commands of one node."""

    def __init__(self, service: StompService, booking: BookingCore) -> None:
        self.service = service
        self.booking = booking

    def hold(self, session: StompSession, params: dict[str, str], headers: Headers,
             body: bytes) -> Awaitable[None]:  # fmt: skip
        user = _user(session)
        admission = next((v for k, v in headers if k == "admission-token"), None)
        client = HoldClient(session.address, session.principal.email)
        return self._run(
            user, headers, self._hold(int(params["event_id"]), user, body, admission, client)
        )

    async def _hold(
        self, event_id: int, user: str, body: bytes, admission: str | None, client: HoldClient
    ) -> dict[str, Any]:
        wanted = parse(body, HoldRequest)
        hold = await wanted.place(self.booking.holds, event_id, user, admission, client)
        return {"type": "hold", **hold_out(hold, utcnow()).model_dump(mode="json")}

    def join(self, session: StompSession, params: dict[str, str], headers: Headers,
             _: bytes) -> Awaitable[None]:  # fmt: skip
        user = _user(session)
        proof = next((v for k, v in headers if k == "queue-proof"), None)
        return self._run(user, headers, self._join(int(params["event_id"]), user, proof))

    async def _join(self, event_id: int, user: str, proof: str | None) -> dict[str, Any]:
        position = await self.booking.admissions.join(event_id, user, proof)
        return {"type": "queue", **position_body(position)}

    def release(self, session: StompSession, params: dict[str, str], headers: Headers,
                _: bytes) -> Awaitable[None]:  # fmt: skip
        user = _user(session)
        return self._run(user, headers, self._release(params["hold_id"], user))

    async def _release(self, hold_id: str, user: str) -> dict[str, Any]:
        await self.booking.holds.release(hold_id, user)
        return {"type": "released", "hold_id": hold_id}

    def _run(self, user: str, headers: Headers, work: Awaitable[dict[str, Any]]) -> Awaitable[None]:
        return self.service.commands.start(self._answer(user, headers, work))

    async def _answer(self, user: str, headers: Headers, work: Awaitable[dict[str, Any]]) -> None:
        try:
            payload = await work
        except Problem as problem:
            reply(self.service, user, headers, problem.reply(), "errors")
        except BookingError as error:
            reply(self.service, user, headers, Problem.from_booking(error).reply(), "errors")
        except Exception:
            log.exception("internal error in an /app command of %s", user)
            failed = Problem.of("internal", "the server failed; see its log")
            reply(self.service, user, headers, failed.reply(), "errors")
        else:
            reply(self.service, user, headers, payload)


def register(service: StompService, booking: BookingCore) -> None:
    router = service.app_commands
    router.add("/app/ping", ping)
    commands = BookingCommands(service, booking)
    router.add("/app/events/{event_id}/holds", commands.hold, event_id=EVENT_ID)
    router.add("/app/events/{event_id}/queue/join", commands.join, event_id=EVENT_ID)
    router.add("/app/holds/{hold_id}/release", commands.release, hold_id=r"[^/]{1,64}")
