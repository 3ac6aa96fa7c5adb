"""Every node sees an event's settings the same (SPEC §8): a change reaches all nodes at once.

An admin's ``PATCH /api/admin/events/{id}`` (or any other change to an event's settings) lands on
one node, whose :class:`~booking.inventory.Inventory` tells this component; it announces the
event's id through the backplane, and every other node re-reads that event's settings from the
database (the record, so the message need not carry them). A node whose backplane lost the other
nodes for a while (a Redis outage) may have missed announcements: when it reconnects it re-reads
every event it holds.
"""

from __future__ import annotations

import logging

from booking.inventory import Inventory
from server.broker import Broker
from server.engine import Engine, Message
from server.task_set import TaskSet

log = logging.getLogger(__name__)

#: A backplane-internal route: no client destination maps to it.
ROUTE = "/_internal/event-settings"
ORIGIN = "origin"


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
            except Exception:
                log.exception("could not re-read the settings of event %d", event_id)
