"""Every node sees an event's settings the same (SPEC §8): a change reaches all nodes as soon as
it is committed (within milliseconds: a request that reaches another node meanwhile is decided
under the settings before), and the pages open on the event hear of it.

An admin's ``PATCH /api/admin/events/{id}`` (or any other change to an event's settings) lands on
one node, whose :class:`~booking.inventory.Inventory` tells this component; it announces the
event's id through the backplane, and every other node re-reads that event's settings from the
database (the record, so the message need not carry them). A node whose backplane lost the other
nodes for a while (a Redis outage) may have missed announcements: when it reconnects it re-reads
every event it holds.

``/topic/events/{id}/status`` carries the event's sale status to whoever follows it (a buyer's
page: "Sale paused" the moment an admin pauses, not at the next refused hold). A subscriber gets
the status at once (a draft's topic is refused to all but admins, as its seat map is, and so
are its announcements and queue figures), then again after each change, pushed by each node to
its own subscribers once it holds the change (the changing node at once, the others after their
re-read), so that a client re-reading the event from the node it talks to never reads the old
settings.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from booking.catalog import EventInfo
from booking.clock import iso, utcnow
from booking.errors import BookingError, NotFound
from booking.inventory import Inventory
from protocol.events import Subscription
from server.auth import Role
from server.bodies import dumps
from server.broker import Broker
from server.destinations import classify, event_of
from server.engine import Engine, Message
from server.errors import UnknownEvent, stomp_error
from server.session import StompSession
from server.task_set import TaskSet

log = logging.getLogger(__name__)

#: A backplane-internal route: no client destination maps to it.
ROUTE = "/_internal/event-settings"
ORIGIN = "origin"
CONTENT_TYPE = ("content-type", "application/json")


def status_topic(event_id: int) -> str:
    return f"/topic/events/{event_id}/status"


def status_body(info: EventInfo) -> bytes:
    """What the status topic says of an event: enough to show its sale's state (the rest of its
    settings a client re-reads with ``GET /api/events/{id}``)."""
    return dumps({
        "type": "status", "event_id": info.id, "status": info.status,
        "on_sale": info.on_sale(utcnow()), "waiting_room": info.waiting_room,
        "sale_opens_at": iso(info.sale_opens_at), "sale_closes_at": iso(info.sale_closes_at),
    })  # fmt: skip


class EventSync:
    def __init__(self, inventory: Inventory, broker: Broker, engine: Engine, node_id: str) -> None:
        self.inventory = inventory
        self.broker = broker
        self.node_id = node_id
        self._tasks = TaskSet()
        inventory.listen_to_events(self._announce)
        broker.listen(ROUTE, self._heard)
        engine.when_connected(self._catch_up)

    def _announce(self, event_id: int) -> None:
        self.broker.publish(ROUTE, ((ORIGIN, self.node_id),), str(event_id).encode())
        self._tasks.start(self._tell(event_id))

    def _heard(self, message: Message) -> None:
        if dict(message.headers).get(ORIGIN) == self.node_id:
            return  # this node made the change
        self._tasks.start(self._refresh([int(message.body)]))

    def _catch_up(self) -> None:
        self._tasks.start(self._refresh([info.id for info in self.inventory.loaded()]))

    async def _refresh(self, event_ids: list[int]) -> None:
        for event_id in event_ids:
            try:
                await self.inventory.refresh(event_id)
                await self._tell(event_id)
            except Exception:
                log.exception("could not re-read the settings of event %d", event_id)

    async def _tell(self, event_id: int) -> None:
        """Push the event's status to this node's subscribers of its status topic."""
        route = status_topic(event_id)
        if not self.broker.subscriber_count(route):
            return
        try:
            info = await self.inventory.event(event_id)
        except Exception:
            log.exception("could not read event %d for its status topic", event_id)
            return
        message = Message(route, self.broker.next_id(), (CONTENT_TYPE,), status_body(info))
        self.broker.fan_out(message)

    # -- the status topic --------------------------------------------------------------------

    def on_subscribe(
        self, session: StompSession, subscription: Subscription, route: str
    ) -> Awaitable[None]:
        """Send the subscriber the status as it is now; the SUBSCRIBE's RECEIPT waits for it
        (or for the ERROR of an unknown event, or of a draft to anyone but an admin)."""
        event = event_of(classify(subscription.destination))
        if event is None:
            raise UnknownEvent("unknown event", f"no event in {subscription.destination!r}")
        return self._tasks.start(self._send_status(session, subscription, event))

    def on_event_topic_subscribe(
        self, session: StompSession, subscription: Subscription, route: str
    ) -> Awaitable[None] | None:
        """An event's other topics (its announcements, its queue figures) are for an event the
        subscriber may see, as its seat map and status are: the SUBSCRIBE's RECEIPT waits for
        the check, and an unknown event, or a draft to anyone but an admin, is the same ERROR.
        The venue-wide ``/topic/announcements`` names no event and needs none."""
        dest = classify(subscription.destination)
        if dest is None or dest.key is None:
            return None
        event = event_of(dest)
        if event is None:
            raise UnknownEvent("unknown event", f"no event in {subscription.destination!r}")
        return self._tasks.start(self._check_visible(session, event))

    async def _check_visible(self, session: StompSession, event_id: int) -> None:
        await self._visible(session, event_id)

    async def _visible(self, session: StompSession, event_id: int) -> EventInfo:
        """The event, if this session may see it; else the ERROR (drafts are for admins)."""
        try:
            info = await self.inventory.event(event_id)
            if info.status == "draft" and session.principal.role is not Role.ADMIN:
                raise NotFound(f"no event {event_id}")
        except BookingError as error:
            raise stomp_error(error) from None
        return info

    async def _send_status(
        self, session: StompSession, subscription: Subscription, event_id: int
    ) -> None:
        info = await self._visible(session, event_id)
        if not session.closed:
            self.broker.send_to(session, subscription, (CONTENT_TYPE,), status_body(info))
