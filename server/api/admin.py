"""Admin endpoints (role ``admin``): create and change events, broadcast, read the node's stats."""

from __future__ import annotations

import secrets

from aiohttp import web

from booking.audit import Staff
from booking.clock import from_unix, iso, utcnow
from booking.stats import sale_stats
from booking.waiting_room import WAIT_BUCKETS_S
from server.api import models
from server.api.auth import Access, user_name
from server.api.events import detail_response
from server.api.operations import Operation, event_id
from server.api.payloads import json_response, read_model
from server.auth import Principal
from server.bodies import dumps
from server.errors import Problem
from server.keys import BOOKING, NODES, STOMP

ANNOUNCEMENTS = "/topic/announcements"
JSON_HEADERS = (("content-type", "application/json"),)


def event_announcements(event: int) -> str:
    return f"/topic/events/{event}/announcements"


async def create_event(request: web.Request, principal: Principal) -> web.Response:
    spec = await read_model(request, models.EventCreate)
    info = await request.app[BOOKING].inventory.create_event(spec, Staff(user_name(principal)))
    return detail_response(request, info, 201)


async def get_event_admin(request: web.Request, _: Principal) -> web.Response:
    info = await request.app[BOOKING].inventory.event(event_id(request))
    return detail_response(request, info)


async def update_event(request: web.Request, principal: Principal) -> web.Response:
    patch = await read_model(request, models.EventUpdate)
    by = Staff(user_name(principal))
    info = await request.app[BOOKING].inventory.update_event(event_id(request), patch, by)
    return detail_response(request, info)


async def mark_seats(request: web.Request, principal: Principal) -> web.Response:
    changes = await read_model(request, models.SeatAccessUpdate)
    by = Staff(user_name(principal))
    info = await request.app[BOOKING].inventory.mark_seats(event_id(request), changes, by)
    return detail_response(request, info)


async def broadcast(request: web.Request, principal: Principal) -> web.Response:
    wanted = await read_model(request, models.BroadcastRequest)
    booking = request.app[BOOKING]
    if wanted.event_id is None:
        route, target = ANNOUNCEMENTS, "announcements"
    else:
        shown = await booking.inventory.event(wanted.event_id)  # 404: an unknown event
        if shown.status == "draft":
            # Buyers cannot subscribe to a draft's topics: nobody would hear it.
            raise Problem(
                409, "conflict", f"event {shown.id} is a draft: no buyer sees its announcements"
            )
        route, target = event_announcements(wanted.event_id), f"event:{wanted.event_id}"
    announcement = {
        "id": f"ann_{secrets.token_hex(8)}",
        "level": wanted.level,
        "text": wanted.text,
        "sent_at": iso(utcnow()),
    }
    # Every buyer reads it: the audit log keeps who said what, and where.
    said = {"id": announcement["id"], "level": wanted.level, "text": wanted.text}
    await booking.box_office.note(Staff(user_name(principal)), "broadcast", target, said)
    request.app[STOMP].broker.publish(route, JSON_HEADERS, dumps(announcement))
    sent = models.Announcement(
        id=announcement["id"],
        level=wanted.level,
        text=wanted.text,
        sent_at=announcement["sent_at"],
        destination=route,
    )
    return json_response(sent, 202)


async def stats(request: web.Request, _: Principal) -> web.Response:
    figures = await sale_stats(request.app[BOOKING], utcnow())
    events = [
        models.EventStats(
            event_id=e.event.id,
            name=e.event.name,
            status=e.event.status,  # type: ignore[arg-type]
            waiting_room=e.event.waiting_room,
            seats=e.seats,  # type: ignore[arg-type]
            holds_active=e.holds_active,
            queue=None if e.queue is None else models.QueueStats(
                waiting=e.queue.waiting,
                serving=e.queue.serving,
                active=e.queue.active,
                admitted_per_min=e.queue.admitted_per_min,
                admission_rate=None if e.rate is None else e.rate.per_s,
                rate_reason=None if e.rate is None else e.rate.reason,
                abandoned=e.queue.abandoned,
                time_to_admission=models.WaitHistogram(
                    edges_s=list(WAIT_BUCKETS_S),
                    counts=list(e.queue.waits) or [0] * (len(WAIT_BUCKETS_S) + 1),
                ),
            ),
        )
        for e in figures.events
    ]  # fmt: skip
    nodes = [
        models.NodeStats(
            node_id=r.figures.node_id,
            connections=r.figures.connections,
            subscriptions=r.figures.subscriptions,
            last_seen=iso(from_unix(r.seen_at)),
        )
        for r in request.app[NODES].nodes()
    ]
    return json_response(
        models.Stats(
            nodes=nodes,
            connections=sum(n.connections for n in nodes),
            subscriptions=sum(n.subscriptions for n in nodes),
            holds_active=figures.holds_active,
            sales_per_min=figures.sales_per_min,
            events=events,
        )
    )


OPERATIONS: list[Operation] = [
    Operation("POST", "/api/admin/events", create_event, "Create an event", "admin",
              access=Access.ADMIN, body=models.EventCreate, status=201,
              response=models.EventDetail, errors=(422,),
              description="Name, venue, start, sale window, price tiers and a layout of "
              "sections x rows x seats (seat ids `SECTION-ROW-NUMBER`)."),
    Operation("GET", "/api/admin/events/{event_id}", get_event_admin, "One event, drafts too",
              "admin", access=Access.ADMIN, response=models.EventDetail, errors=(404,)),
    Operation("PATCH", "/api/admin/events/{event_id}", update_event, "Change an event",
              "admin", access=Access.ADMIN, body=models.EventUpdate,
              response=models.EventDetail, errors=(404, 422),
              description="Status, waiting room on/off, admission rate, max active shoppers, "
              "hold TTL, per-user limit, refund policy (`refund_cutoff_hours`; an explicit "
              "null: buyers may not cancel); omitted members stay as they are. Audited."),
    Operation("PATCH", "/api/admin/events/{event_id}/seats", mark_seats,
              "Mark wheelchair spaces and companion seats", "admin", access=Access.ADMIN,
              body=models.SeatAccessUpdate, response=models.EventDetail, errors=(404, 422),
              description="Seats named in `accessible` become wheelchair spaces, in "
              "`companion` companion seats (put them beside a wheelchair space), in "
              "`standard` ordinary seats; seats not named keep theirs. Best available keeps "
              "both kinds for requests with `accessible`. 422 for an unknown seat or one named "
              "twice. Answers the event with its layout."),
    Operation("POST", "/api/admin/broadcast", broadcast, "Broadcast an announcement", "admin",
              access=Access.ADMIN, body=models.BroadcastRequest, status=202,
              response=models.Announcement, errors=(404, 409, 422),
              description="Published as {id, level, text, sent_at} to /topic/announcements, "
              "or to /topic/events/{event_id}/announcements with `event_id`."),
    Operation("GET", "/api/admin/stats", stats, "Node and sale statistics", "admin",
              access=Access.ADMIN, response=models.Stats),
]  # fmt: skip
