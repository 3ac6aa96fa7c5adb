"""Seat holds: place one (all or nothing), read it, release it."""

from __future__ import annotations

from aiohttp import web

from booking.clock import utcnow
from booking.holds import HoldClient
from server.api.auth import Access, user_name
from server.api.operations import Header, Operation, event_id
from server.api.payloads import json_response, read_model
from server.api.ratelimit import client_ip
from server.auth import Principal
from server.bodies import HoldOut, HoldRequest, hold_out
from server.keys import BOOKING

ADMISSION_HEADER = "X-Admission-Token"


async def create_hold(request: web.Request, principal: Principal) -> web.Response:
    wanted = await read_model(request, HoldRequest)
    hold = await wanted.place(
        request.app[BOOKING].holds,
        event_id(request),
        user_name(principal),
        request.headers.get(ADMISSION_HEADER),
        HoldClient(client_ip(request), principal.email),
    )
    return json_response(
        hold_out(hold, utcnow()), 201, headers={"Location": f"/api/holds/{hold.id}"}
    )


async def get_hold(request: web.Request, principal: Principal) -> web.Response:
    hold = await request.app[BOOKING].holds.get(request.match_info["hold_id"], user_name(principal))
    return json_response(hold_out(hold, utcnow()))


async def release_hold(request: web.Request, principal: Principal) -> web.Response:
    await request.app[BOOKING].holds.release(request.match_info["hold_id"], user_name(principal))
    return web.Response(status=204)


OPERATIONS: list[Operation] = [
    Operation("POST", "/api/events/{event_id}/holds", create_hold, "Hold seats", "holds",
              access=Access.USER, body=HoldRequest, status=201, response=HoldOut,
              errors=(403, 404, 409, 422),
              headers=(Header(ADMISSION_HEADER, "the admission token from the waiting room; "
                              "required when the event's waiting room is on"),),
              description="All or nothing: 409 with `conflicts` listing the seats that are not "
              "available; 422 for unknown or repeated seats, over the per-user limit or over "
              "the seats one client IP or e-mail address may hold at once (`limit`, with "
              "`scope`); 403 "
              "without a valid admission token when the waiting room is on; 409 `sale_closed` "
              "outside the sale. With `best_available` instead of `seats` the server picks "
              "`count` adjacent seats in one row (first sections first, front rows first, "
              "then the middle of the row; never leaving one seat alone beside the block when "
              "another block avoids it) and holds them in one decision, trying the next block "
              "if another buyer wins the first; 409 `no_block` (with `count`) when no such "
              "block is left; 422 for an unknown `tier` or `section`."),
    Operation("GET", "/api/holds/{hold_id}", get_hold, "One of your holds", "holds",
              access=Access.USER, response=HoldOut, errors=(404,)),
    Operation("DELETE", "/api/holds/{hold_id}", release_hold, "Release your hold", "holds",
              access=Access.USER, status=204, errors=(404, 409),
              description="The seats are available again at once; 409 if the hold is no "
              "longer active."),
]  # fmt: skip
