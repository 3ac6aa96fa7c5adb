"""The waiting room over REST: join an event's queue, see where you stand (SPEC §5, §6)."""

from __future__ import annotations

from aiohttp import web

from server.api.auth import Access, user_name
from server.api.operations import Operation, event_id
from server.api.payloads import json_response
from server.auth import Principal
from server.bodies import QueuePositionOut, position_out
from server.keys import BOOKING


async def join(request: web.Request, principal: Principal) -> web.Response:
    admissions = request.app[BOOKING].admissions
    position = await admissions.join(event_id(request), user_name(principal))
    return json_response(position_out(position))


async def me(request: web.Request, principal: Principal) -> web.Response:
    admissions = request.app[BOOKING].admissions
    position = await admissions.standing(event_id(request), user_name(principal))
    return json_response(position_out(position))


OPERATIONS: list[Operation] = [
    Operation("POST", "/api/events/{event_id}/queue", join, "Join the waiting room", "queue",
              access=Access.USER, response=QueuePositionOut, errors=(404, 409, 422, 503),
              description="Idempotent: joining again keeps your place. Before the sale opens you "
              "wait in the pre-queue (no position yet), shuffled uniformly at opening; later "
              "arrivals are first come, first served. Live updates: SUBSCRIBE "
              "/user/queue/position. 422 when the event has no waiting room; 409 outside "
              "the sale."),
    Operation("GET", "/api/events/{event_id}/queue/me", me, "Where you stand", "queue",
              access=Access.USER, response=QueuePositionOut, errors=(404, 503),
              description="When admitted, carries the admission token (re-issued with the "
              "admission's own expiry, e.g. after a reconnect); state not_joined if you never "
              "joined; 404 only for an unknown event."),
]  # fmt: skip
