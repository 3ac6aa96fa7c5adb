"""Public event endpoints: the list, one event with its layout, and its live seat map."""

from __future__ import annotations

import json
from datetime import datetime

from aiohttp import web

from booking.best_available import ACCESSIBLE, COMPANION
from booking.catalog import EventInfo
from booking.clock import iso, utcnow
from server.api import models
from server.api.operations import Operation, event_id
from server.api.payloads import json_response
from server.auth import Principal
from server.keys import BOOKING, LAYOUTS, SEATS


def summary(info: EventInfo, now: datetime) -> models.EventSummary:
    return models.EventSummary(
        id=info.id,
        name=info.name,
        venue=info.venue,
        starts_at=iso(info.starts_at),
        sale_opens_at=iso(info.sale_opens_at),
        sale_closes_at=iso(info.sale_closes_at),
        timezone=info.timezone,
        status=info.status,  # type: ignore[arg-type]  # the database holds EventStatus values
        on_sale=info.on_sale(now),
        waiting_room=info.waiting_room,
        seat_count=len(info.seats),
        hold_ttl_s=info.hold_ttl_s,
        max_seats_per_user=info.max_seats_per_user,
        refund_cutoff_hours=info.refund_cutoff_hours,
        tiers=[
            models.TierOut(id=t.id, name=t.name, price_cents=t.price_cents, currency=t.currency)
            for t in info.tiers.values()
        ],
    )


def _row_order(label: str) -> tuple[int, str]:
    """Theatre order: A … Z, AA, AB … (not A, AA, AB … B)."""
    return len(label), label


def layout(info: EventInfo) -> models.LayoutOut:
    sections: dict[str, dict[str, list[models.SeatOut]]] = {}
    access = info.access
    for seat_id, (section, row, number, tier_id) in info.seats.items():
        seats = sections.setdefault(section, {}).setdefault(row, [])
        kind = access.get(seat_id)
        seats.append(
            models.SeatOut(
                id=seat_id,
                number=number,
                tier_id=tier_id,
                accessible=kind == ACCESSIBLE,
                companion=kind == COMPANION,
            )
        )
    return models.LayoutOut(
        sections=[
            models.SectionOut(
                name=section,
                rows=[
                    models.RowOut(name=row, seats=sorted(rows[row], key=lambda s: s.number))
                    for row in sorted(rows, key=_row_order)
                ],
            )
            for section, rows in sections.items()
        ]
    )


def detail_response(request: web.Request, info: EventInfo, status: int = 200) -> web.Response:
    """:class:`~server.api.models.EventDetail` of ``info``, with the layout encoded once."""
    head = summary(info, utcnow()).model_dump(mode="json")
    head["admission_rate"] = info.admission_rate
    head["max_active_shoppers"] = info.max_active_shoppers
    head["admission_mode"] = info.admission_mode
    head["admission_rate_min"] = info.admission_rate_min
    head["admission_rate_max"] = info.admission_rate_max
    head["pow_difficulty"] = info.pow_difficulty
    encoded = json.dumps(head, separators=(",", ":")).encode()
    layouts = request.app[LAYOUTS]
    version, found = layouts.get(info.id, (-1, b""))
    if version != info.layout_version:  # encoded once per version: marking seats makes one
        found = layout(info).model_dump_json(exclude_defaults=True).encode()
        layouts[info.id] = (info.layout_version, found)
    body = encoded[:-1] + b',"layout":' + found + b"}"
    headers = {"Location": f"/api/events/{info.id}"} if status == 201 else None
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def summaries(events: list[EventInfo]) -> web.Response:
    now = utcnow()
    return json_response([summary(info, now).model_dump(mode="json") for info in events])


async def list_events(request: web.Request, _: Principal) -> web.Response:
    return summaries(await request.app[BOOKING].inventory.events(drafts=False))


async def get_event(request: web.Request, _: Principal) -> web.Response:
    info = await request.app[BOOKING].inventory.public_event(event_id(request))
    return detail_response(request, info)


async def get_seats(request: web.Request, _: Principal) -> web.Response:
    # The same snapshot, with the same seq, as a STOMP subscriber gets (cluster-wide in cluster
    # mode), so a client can follow the deltas from it.
    wanted = event_id(request)
    await request.app[BOOKING].inventory.public_event(wanted)  # 404: unknown, or a draft
    _seq, snapshot = await request.app[SEATS].snapshot(wanted)
    return web.Response(
        body=snapshot,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


OPERATIONS: list[Operation] = [
    Operation("GET", "/api/events", list_events, "List events", "events",
              response=models.EventSummary, many=True,
              description="A JSON array of event summaries, soonest first; drafts are not "
              "listed (admins: GET /api/admin/events)."),
    Operation("GET", "/api/events/{event_id}", get_event, "One event with its layout", "events",
              response=models.EventDetail, errors=(404,),
              description="Tiers and the layout (sections → rows → seats) for drawing the map."),
    Operation("GET", "/api/events/{event_id}/seats", get_seats, "The live seat map", "events",
              response=models.SeatSnapshot, errors=(404,),
              description="The same snapshot the STOMP topic /topic/events/{event_id}/seats "
              "sends first; follow the deltas there from its seq."),
]  # fmt: skip
