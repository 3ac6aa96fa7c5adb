"""Every node's figures, on every node (``GET /api/admin/stats`` lists the whole cluster).

Each node publishes its own figures through the backplane every ``REPORT_EVERY_S`` and keeps the
latest report of every node it hears, with when it heard it; a node not heard for
``FORGET_AFTER_S`` is dropped from the list (it stopped, or is cut off). In single-node mode the
only report is this node's own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from server.broker import Broker
from server.engine import Message

#: A backplane-internal route: no client destination maps to it.
ROUTE = "/_internal/node-figures"
REPORT_EVERY_S = 2.0
FORGET_AFTER_S = 30.0


@dataclass(frozen=True, slots=True)
class NodeFigures:
    node_id: str
    connections: int
    subscriptions: int
    #: Subscriptions to seat maps (they set the seat-map tick: :func:`server.seat_stream.tick_for`);
    #: 0 from a node of an older release, during a rolling upgrade.
    seat_followers: int = 0


@dataclass(frozen=True, slots=True)
class NodeReport:
    figures: NodeFigures
    #: Unix time this node last heard the report.
    seen_at: float


class NodeRoster:
    def __init__(self, broker: Broker, figures: Callable[[], NodeFigures]) -> None:
        self.broker = broker
        self._figures = figures
        self._reports: dict[str, NodeReport] = {}
        broker.listen(ROUTE, self._heard)

    def _heard(self, message: Message) -> None:
        figures = NodeFigures(**json.loads(message.body))
        self._reports[figures.node_id] = NodeReport(figures, time.time())

    def publish(self) -> None:
        body = json.dumps(asdict(self._figures()), separators=(",", ":")).encode()
        self.broker.publish(ROUTE, (), body)

    async def run(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(REPORT_EVERY_S)

    def most_seat_followers(self) -> int:
        """The most seat-map followers a node reported lately (this one too, as of its last
        report): read every tick, so nothing is computed afresh."""
        horizon = time.time() - FORGET_AFTER_S
        reports = self._reports.values()
        return max((r.figures.seat_followers for r in reports if r.seen_at >= horizon), default=0)

    def nodes(self) -> list[NodeReport]:
        """Every node heard lately, this one with its figures as of now; by node id."""
        now = time.time()
        own = self._figures()
        self._reports[own.node_id] = NodeReport(own, now)
        for node_id, report in list(self._reports.items()):
            if now - report.seen_at > FORGET_AFTER_S:
                del self._reports[node_id]
        return sorted(self._reports.values(), key=lambda r: r.figures.node_id)
