"""Live seat maps over STOMP (SPEC §6, §8): a snapshot on SUBSCRIBE, then conflated deltas.

Every ``--seat-tick-ms`` each loaded event's :class:`~server.seat_sequencer.SeatSequencer` is
asked for a delta; whatever it produces is sent once through the engine on an internal route, so
in a cluster every node receives the same delta with the same ``seq`` (produced by one node) and
delivers it to its own subscribers, encoded once.

A SUBSCRIBE is answered with a snapshot for that subscription alone, without a database query:
the sequencer serves it from memory (single node) or from the shared map in Redis (cluster),
encoded once per ``seq``. The hand-over is gap-free: the subscription is held back from the route
while the snapshot is fetched; then, in one step with no await between, the snapshot is sent, any
delta that arrived meanwhile with a higher ``seq`` is replayed from a short ring, and the
subscription joins the route for every later delta. A client that sees a gap in ``seq`` anyway
(after a Redis outage, say) resubscribes and gets a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from datetime import datetime

from booking.errors import NotFound
from booking.service import BookingService
from protocol.errors import ProtocolError
from protocol.events import Subscription
from server.broker import Broker
from server.destinations import classify
from server.engine import Message
from server.seat_sequencer import SeatSequencer
from server.session import StompSession

log = logging.getLogger(__name__)

JSON = (("content-type", "application/json"),)
#: Deltas kept per event for subscribers whose snapshot was in flight.
RING = 64


def seats_route(event_id: int) -> str:
    return f"/topic/events/{event_id}/seats"


class UnknownEvent(ProtocolError):
    reason = "unknown_event"


class SeatStream:
    DELTAS = "/_internal/seat-deltas"

    def __init__(
        self,
        booking: BookingService,
        broker: Broker,
        sequencer: SeatSequencer,
        tick_ms: int,
    ) -> None:
        self.booking = booking
        self.broker = broker
        self.sequencer = sequencer
        self.tick_s = tick_ms / 1000
        self._recent: dict[int, deque[tuple[int, bytes]]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        broker.listen(self.DELTAS, self._on_delta)

    # -- subscribers -------------------------------------------------------------------------

    def on_subscribe(self, session: StompSession, subscription: Subscription, route: str) -> None:
        dest = classify(subscription.destination)
        key = dest.key if dest else None
        if key is None or not key.isdigit():
            session.fail(UnknownEvent("unknown event", f"no event {key!r}"))
            return
        # Held back from the route until its snapshot is out (see the module docstring).
        self.broker.unsubscribe(session, subscription)
        task = asyncio.ensure_future(self._hand_over(session, subscription, int(key), route))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _hand_over(
        self, session: StompSession, subscription: Subscription, event_id: int, route: str
    ) -> None:
        try:
            seq, snapshot = await self.sequencer.snapshot(event_id)
        except NotFound:
            session.fail(UnknownEvent("unknown event", f"no event {event_id}"))
            return
        except Exception:
            log.exception("snapshot of event %d failed", event_id)
            session.fail(ProtocolError("internal error", "the seat map is unavailable"))
            return
        if session.closed or session.conn.subscriptions.get(subscription.id) is not subscription:
            return  # gone or unsubscribed meanwhile
        self.broker.send_to(session, subscription, JSON, snapshot)
        for delta_seq, delta in self._recent.get(event_id, ()):
            if delta_seq > seq:
                self.broker.send_to(session, subscription, JSON, delta)
        self.broker.subscribe(session, subscription, route)

    # -- deltas ------------------------------------------------------------------------------

    def _on_delta(self, message: Message) -> None:
        event_id, seq = (int(v) for v in message.headers[0][1].split(":"))
        ring = self._recent.get(event_id)
        if ring is None:
            ring = self._recent[event_id] = deque(maxlen=RING)
        ring.append((seq, message.body))
        route = seats_route(event_id)
        self.broker.deliver(Message(route, message.message_id, JSON, message.body))

    async def run(self) -> None:
        """Ask every loaded event for its delta each tick; send what comes, once, to all."""
        while True:
            await asyncio.sleep(self.tick_s)
            for seatmap in self.booking.loaded_maps():
                try:
                    delta = await self.sequencer.tick(seatmap.event_id)
                except Exception:
                    log.exception("seat tick of event %d failed", seatmap.event_id)
                    continue
                if delta is not None:
                    seq = json.loads(delta)["seq"]
                    tag = (("x-seat-delta", f"{seatmap.event_id}:{seq}"),)
                    self.broker.publish(self.DELTAS, tag, delta)


class SeatSync:
    """Shares the seat changes this node commits: with every node's in-memory map (so holds on
    seats known taken are refused from memory anywhere) and with the sequencer."""

    ROUTE = "/_internal/seat-changes"

    def __init__(
        self, booking: BookingService, broker: Broker, sequencer: SeatSequencer, node_id: str
    ) -> None:
        self.booking = booking
        self.broker = broker
        self.sequencer = sequencer
        self.node_id = node_id
        self._pending: set[asyncio.Task[None]] = set()
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
        task = asyncio.ensure_future(self.sequencer.record(event_id, changes))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _receive(self, message: Message) -> None:
        node, event_id, changes, expires = json.loads(message.body)
        if node == self.node_id:
            return  # applied when committed
        until = datetime.fromisoformat(expires) if expires else None
        self.booking.apply_remote(int(event_id), [(s, st) for s, st in changes], until)
