"""Admin endpoints (role ``admin``): create and change events, broadcast, read the node's stats."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from datetime import timedelta

from aiohttp import web
from sqlalchemy import func, select

from booking.clock import iso, utcnow
from booking.schema import holds, orders
from booking.seatmap import STATUSES
from server.api import models, state
from server.api.auth import Access
from server.api.events import detail_response
from server.api.operations import Operation, event_id
from server.api.payloads import json_response, read_model
from server.auth import Principal

ANNOUNCEMENTS = "/topic/announcements"
JSON_HEADERS = (("content-type", "application/json"),)


def event_announcements(event: int) -> str:
    return f"/topic/events/{event}/announcements"


async def create_event(request: web.Request, _: Principal) -> web.Response:
    spec = await read_model(request, models.EventCreate)
    info = await state.booking(request).create_event(spec)
    return detail_response(request, info, 201)


async def update_event(request: web.Request, _: Principal) -> web.Response:
    patch = await read_model(request, models.EventUpdate)
    info = await state.booking(request).update_event(event_id(request), patch)
    return detail_response(request, info)


async def broadcast(request: web.Request, _: Principal) -> web.Response:
    wanted = await read_model(request, models.BroadcastRequest)
    if wanted.event_id is None:
        route = ANNOUNCEMENTS
    else:
        await state.booking(request).event(wanted.event_id)  # 404 for an unknown event
        route = event_announcements(wanted.event_id)
    announcement = {
        "id": f"ann_{secrets.token_hex(8)}",
        "level": wanted.level,
        "text": wanted.text,
        "sent_at": iso(utcnow()),
    }
    body = json.dumps(announcement, separators=(",", ":")).encode()
    state.stomp(request).broker.publish(route, JSON_HEADERS, body)
    sent = models.Announcement(
        id=announcement["id"],
        level=wanted.level,
        text=wanted.text,
        sent_at=announcement["sent_at"],
        destination=route,
    )
    return json_response(sent, 202)


async def stats(request: web.Request, _: Principal) -> web.Response:
    booking = state.booking(request)
    stomp = state.stomp(request)
    now = utcnow()
    async with state.database(request).connect() as conn:
        active = await conn.execute(
            select(holds.c.event_id, func.count())
            .where(holds.c.status == "active", holds.c.expires_at > now)
            .group_by(holds.c.event_id)
        )
        holds_by_event: dict[int, int] = {row[0]: int(row[1]) for row in active}
        sales = await conn.scalar(
            select(func.count())
            .select_from(orders)
            .where(orders.c.created_at > now - timedelta(minutes=1))
        )
    events = []
    for info in await booking.events():
        seatmap = await booking.seat_map(info.id)
        counts = Counter(seatmap.status(seat, now) for seat in seatmap.statuses)
        queue = None
        if info.waiting_room:
            room = await booking.waiting_room.stats(info.id)
            queue = models.QueueStats(
                waiting=room.waiting,
                serving=room.serving,
                active=room.active,
                admitted_per_min=room.admitted_per_min,
            )
        events.append(
            models.EventStats(
                event_id=info.id,
                name=info.name,
                status=info.status,  # type: ignore[arg-type]
                waiting_room=info.waiting_room,
                seats={s: counts.get(s, 0) for s in STATUSES},  # type: ignore[misc]
                holds_active=holds_by_event.get(info.id, 0),
                queue=queue,
            )
        )
    connections = len(stomp.sessions)
    subscriptions = int(state.metrics(request).registry.get_sample_value(
        "concert_hub_subscriptions") or 0)  # fmt: skip
    node = models.NodeStats(
        node_id=stomp.settings.node_id, connections=connections, subscriptions=subscriptions
    )
    return json_response(
        models.Stats(
            nodes=[node],
            connections=connections,
            subscriptions=subscriptions,
            holds_active=sum(holds_by_event.values()),
            sales_per_min=int(sales or 0),
            events=events,
        )
    )


OPERATIONS: list[Operation] = [
    Operation("POST", "/api/admin/events", create_event, "Create an event", "admin",
              access=Access.ADMIN, body=models.EventCreate, status=201,
              response=models.EventDetail, errors=(422,),
              description="Name, venue, start, sale window, price tiers and a layout of "
              "sections x rows x seats (seat ids `SECTION-ROW-NUMBER`)."),
    Operation("PATCH", "/api/admin/events/{event_id}", update_event, "Change an event",
              "admin", access=Access.ADMIN, body=models.EventUpdate,
              response=models.EventDetail, errors=(404, 422),
              description="Status, waiting room on/off, admission rate, max active shoppers, "
              "hold TTL, per-user limit; omitted members stay as they are."),
    Operation("POST", "/api/admin/broadcast", broadcast, "Broadcast an announcement", "admin",
              access=Access.ADMIN, body=models.BroadcastRequest, status=202,
              response=models.Announcement, errors=(404, 422),
              description="Published as {id, level, text, sent_at} to /topic/announcements, "
              "or to /topic/events/{event_id}/announcements with `event_id`."),
    Operation("GET", "/api/admin/stats", stats, "Node and sale statistics", "admin",
              access=Access.ADMIN, response=models.Stats),
]  # fmt: skip
