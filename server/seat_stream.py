"""Live seat maps over STOMP (SPEC §6): a snapshot on SUBSCRIBE, then conflated deltas.

A SUBSCRIBE to ``/topic/events/{id}/seats`` is answered with a snapshot for that subscription
alone, from the in-memory seat map (one encoding per ``seq`` however many subscribe at once:
5,000 browsers arriving together cost no query each). Every ``--seat-tick-ms`` each loaded seat
map is ticked and its delta, if any, is published once to the topic, ``seq`` rising by one.
A client that sees a gap in ``seq`` resubscribes and gets a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime

from booking.errors import NotFound
from booking.service import BookingService
from protocol.errors import ProtocolError
from protocol.events import Subscription
from server.broker import Broker
from server.destinations import classify
from server.engine import Message
from server.session import StompSession

log = logging.getLogger(__name__)

JSON = (("content-type", "application/json"),)


def seats_route(event_id: int) -> str:
    return f"/topic/events/{event_id}/seats"


class UnknownEvent(ProtocolError):
    reason = "unknown_event"


class SeatStream:
    def __init__(self, booking: BookingService, broker: Broker, tick_ms: int) -> None:
        self.booking = booking
        self.broker = broker
        self.tick_s = tick_ms / 1000
        self._pending: set[asyncio.Task[None]] = set()

    def on_subscribe(self, session: StompSession, subscription: Subscription, _: str) -> None:
        dest = classify(subscription.destination)
        key = dest.key if dest else None
        if key is None or not key.isdigit():
            session.fail(UnknownEvent("unknown event", f"no event {key!r}"))
            return
        task = asyncio.ensure_future(self._send_snapshot(session, subscription, int(key)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_snapshot(
        self, session: StompSession, subscription: Subscription, event_id: int
    ) -> None:
        try:
            seatmap = await self.booking.seat_map(event_id)
        except NotFound:
            session.fail(UnknownEvent("unknown event", f"no event {event_id}"))
            return
        if session.closed or session.conn.subscriptions.get(subscription.id) is not subscription:
            return  # gone or unsubscribed while the map loaded
        self.broker.send_to(session, subscription, JSON, seatmap.snapshot())

    async def run(self) -> None:
        """Tick every loaded seat map and deliver its delta to this node's subscribers.

        Each node serves its own subscribers from its own map (which hears every node's
        changes through :class:`SeatSync`), so a client's ``seq`` is the sequence of the node it
        is connected to; after a reconnect elsewhere, it resubscribes and gets a snapshot.
        """
        while True:
            await asyncio.sleep(self.tick_s)
            for seatmap in self.booking.loaded_maps():
                delta = seatmap.tick()
                if delta is not None:
                    route = seats_route(seatmap.event_id)
                    self.broker.deliver(Message(route, self.broker.next_id(), JSON, delta))


class SeatSync:
    """Shares committed seat changes between nodes (a no-op round trip on a single node)."""

    ROUTE = "/_internal/seat-changes"

    def __init__(self, booking: BookingService, broker: Broker, node_id: str) -> None:
        self.booking = booking
        self.broker = broker
        self.node_id = node_id
        booking.on_changes = self._share
        broker.listen(self.ROUTE, self._receive)

    def _share(
        self, event_id: int, changes: list[tuple[str, str]], expires_at: datetime | None
    ) -> None:
        body = json.dumps(
            [self.node_id, event_id, changes, expires_at.isoformat() if expires_at else None],
            separators=(",", ":"),
        ).encode()
        self.broker.publish(self.ROUTE, (), body)

    def _receive(self, message: Message) -> None:
        node, event_id, changes, expires = json.loads(message.body)
        if node == self.node_id:
            return  # applied when committed
        until = datetime.fromisoformat(expires) if expires else None
        self.booking.apply_remote(int(event_id), [(s, st) for s, st in changes], until)
