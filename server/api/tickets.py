"""Ticket verification and QR codes (public: the signed code itself is the credential)."""

from __future__ import annotations

from aiohttp import web

from booking.tickets import qr_svg
from server.api.operations import Operation
from server.api.payloads import json_response
from server.auth import Principal
from server.bodies import TicketCheckOut, ticket_check_out
from server.keys import BOOKING


async def verify_ticket(request: web.Request, _: Principal) -> web.Response:
    check = await request.app[BOOKING].orders.verify(request.match_info["code"])
    return json_response(ticket_check_out(check))


async def ticket_qr(request: web.Request, _: Principal) -> web.Response:
    code = request.match_info["code"]
    await request.app[BOOKING].orders.verify(code)  # a forged or unknown code is a 404
    return web.Response(
        text=qr_svg(code),
        content_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=86400"},
    )


OPERATIONS: list[Operation] = [
    Operation("GET", "/api/tickets/{code}", verify_ticket, "Verify a ticket", "tickets",
              response=TicketCheckOut, errors=(404,),
              description="`valid` is false once the order is cancelled; a forged code is a "
              "404."),
    Operation("GET", "/api/tickets/{code}/qr.svg", ticket_qr, "A ticket's QR code", "tickets",
              media_type="image/svg+xml", errors=(404,)),
]  # fmt: skip
