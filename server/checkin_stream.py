"""Door check-in progress, live: ``/topic/admin/events/{id}/checkin`` for the admin console.

Every :data:`EVERY_S` each node reads the progress (:meth:`booking.checkin.DoorCheckIn.progress`:
scanned / sold, by gate, per minute) of each event that has a subscriber *on this node* and writes
it to those subscribers only (``Broker.fan_out``): every node reads the same database, so nothing
crosses the cluster and no event nobody watches is ever read. A new subscriber hears at once.
"""

from __future__ import annotations

import asyncio
import logging

from booking.checkin import DoorCheckIn, Progress
from booking.clock import iso
from protocol.events import Subscription
from server.bodies import dumps
from server.broker import Broker
from server.destinations import Kind, classify
from server.engine import Message
from server.session import StompSession
from server.task_set import TaskSet

log = logging.getLogger(__name__)

EVERY_S = 2.0
JSON = (("content-type", "application/json"),)


def checkin_route(event_id: int) -> str:
    return f"/topic/admin/events/{event_id}/checkin"


def progress_body(p: Progress) -> bytes:
    return dumps(
        {
            "type": "checkin",
            "event_id": p.event_id,
            "sold": p.sold,
            "scanned": p.scanned,
            "by_gate": p.by_gate,
            "per_minute": [{"minute": iso(m), "admitted": n} for m, n in p.per_minute],
        }
    )


class CheckinStream:
    def __init__(self, door: DoorCheckIn, broker: Broker) -> None:
        self.door = door
        self.broker = broker
        #: Events with (or lately with) a subscriber on this node.
        self._watched: set[int] = set()
        self._tasks = TaskSet()

    def on_subscribe(self, session: StompSession, subscription: Subscription, _: str) -> None:
        dest = classify(subscription.destination)
        if dest is None or dest.kind is not Kind.ADMIN or dest.key is None:
            return
        event_id = int(dest.key)
        self._watched.add(event_id)
        self._tasks.start(self._greet(session, subscription, event_id))

    async def _greet(self, session: StompSession, subscription: Subscription, event: int) -> None:
        try:
            body = progress_body(await self.door.progress(event))
        except Exception:  # an unknown event has no progress: nothing to say
            log.debug("no check-in progress for event %d", event, exc_info=True)
            return
        if not session.closed:
            self.broker.send_to(session, subscription, JSON, body)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(EVERY_S)
            for event_id in sorted(self._watched):
                route = checkin_route(event_id)
                if not self.broker.subscriber_count(route):
                    self._watched.discard(event_id)
                    continue
                try:
                    body = progress_body(await self.door.progress(event_id))
                except Exception:
                    log.exception("check-in progress of event %d failed", event_id)
                    continue
                self.broker.fan_out(Message(route, self.broker.next_id(), JSON, body))
