"""Routing of published messages to local subscriptions, encoding each message once per shape.

Subscribers of a route are grouped by everything that changes a MESSAGE's bytes: the destination
the client subscribed to, its subscription id, its STOMP version, its transport framing and
whether it acknowledges. Browsers using one client library all subscribe with the same ids, so a
message to 5,000 of them is usually encoded and framed once and the loop per recipient is just a
transport write (STYLE.md point 5). No task or coroutine is created per recipient.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Protocol

from protocol.codec import encode_message
from protocol.connection import ServerConnection, ack_id
from protocol.events import AckMode, Subscription
from protocol.frames import StompVersion
from server.engine import Engine, Message
from server.framing import Framing
from server.metrics import BrokerMetrics

#: (destination as subscribed, subscription id, version, framing, client-acknowledged)
GroupKey = tuple[str, str, StompVersion, Framing, bool]


class Subscriber(Protocol):
    """What the broker needs of a session (:class:`~server.session.Subscriber` is one)."""

    @property
    def conn(self) -> ServerConnection: ...

    @property
    def framing(self) -> Framing: ...

    @property
    def closed(self) -> bool: ...

    def push(self, payload: bytes) -> None: ...

    def push_tracked(self, payload: bytes, subscription: Subscription, message_id: str) -> None: ...


class Route:
    """The local subscribers of one route, grouped by the bytes they need."""

    __slots__ = ("groups", "size")

    def __init__(self) -> None:
        self.groups: dict[GroupKey, dict[Subscriber, Subscription]] = {}
        self.size = 0


class Broker:
    def __init__(self, engine: Engine, metrics: BrokerMetrics, node_id: str) -> None:
        self.engine = engine
        self.metrics = metrics
        self._routes: dict[str, Route] = {}
        # Where each subscription sits, to remove it without searching.
        self._placement: dict[Subscription, tuple[str, GroupKey]] = {}
        self._ids = itertools.count(1)
        self._id_prefix = f"{node_id}-"
        self._deliveries = metrics.deliveries
        self._messages_out = metrics.frames_out.labels("MESSAGE")
        #: Routes whose messages a server component handles before (or instead of) fan-out.
        self._handlers: dict[str, Callable[[Message], None]] = {}

    # -- subscriptions -----------------------------------------------------------------------

    def subscribe(self, session: Subscriber, subscription: Subscription, route: str) -> None:
        version = session.conn.version or StompVersion.V1_0
        key: GroupKey = (
            subscription.destination,
            subscription.id,
            version,
            session.framing,
            subscription.ack is not AckMode.AUTO,
        )
        entry = self._routes.get(route)
        if entry is None:
            entry = self._routes[route] = Route()
            if route not in self._handlers:
                self.engine.watch(route)
        entry.groups.setdefault(key, {})[session] = subscription
        entry.size += 1
        self._placement[subscription] = (route, key)

    def unsubscribe(self, session: Subscriber, subscription: Subscription) -> None:
        placed = self._placement.pop(subscription, None)
        if placed is None:
            return
        route, key = placed
        entry = self._routes[route]
        group = entry.groups[key]
        del group[session]
        entry.size -= 1
        if not group:
            del entry.groups[key]
        if not entry.size:
            del self._routes[route]
            if route not in self._handlers:
                self.engine.unwatch(route)

    def listen(self, route: str, handler: Callable[[Message], None]) -> None:
        """Hand every message on ``route`` to ``handler`` instead of fanning it out; the handler
        calls :meth:`fan_out` when local subscribers should have it. The engine carries the
        route to this node from then on, subscribers or not."""
        if route not in self._handlers:
            self._handlers[route] = handler
            if route not in self._routes:
                self.engine.watch(route)

    def subscriber_count(self, route: str) -> int:
        entry = self._routes.get(route)
        return entry.size if entry else 0

    # -- messages ----------------------------------------------------------------------------

    def next_id(self) -> str:
        """A message id unique across the cluster (node id + counter)."""
        return f"{self._id_prefix}{next(self._ids)}"

    def publish(self, route: str, headers: tuple[tuple[str, str], ...], body: bytes) -> None:
        """Publish to every subscriber of ``route`` on every node."""
        self.engine.publish(Message(route, self.next_id(), headers, body))

    def send_to(
        self,
        session: Subscriber,
        subscription: Subscription,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
    ) -> None:
        """Deliver one message to one subscription only (a seat-map snapshot, say)."""
        message_id = self.next_id()
        version = session.conn.version or StompVersion.V1_0
        tracked = subscription.ack is not AckMode.AUTO
        ack = (
            ack_id(subscription.id, message_id)
            if tracked and version is StompVersion.V1_2
            else None
        )
        payload = session.framing(
            encode_message(
                version,
                destination=subscription.destination,
                subscription=subscription.id,
                message_id=message_id,
                ack=ack,
                headers=headers,
                body=body,
            )
        )
        if tracked:
            session.push_tracked(payload, subscription, message_id)
        else:
            session.push(payload)
        self._deliveries.inc()
        self._messages_out.inc()

    def deliver(self, message: Message) -> None:
        """The engine calls this for every message published on a route this node watches."""
        handler = self._handlers.get(message.route)
        if handler is not None:
            handler(message)
        else:
            self.fan_out(message)

    def fan_out(self, message: Message) -> None:
        """Write ``message`` to this node's subscribers of its route.

        Node-local pushes (a user's periodic position, which each node computes for its own
        sessions) call this directly.
        """
        entry = self._routes.get(message.route)
        if entry is None:
            return
        message_id = message.message_id
        for (destination, sub_id, version, framing, tracked), members in tuple(
            entry.groups.items()
        ):
            ack = ack_id(sub_id, message_id) if tracked and version is StompVersion.V1_2 else None
            payload = framing(
                encode_message(
                    version,
                    destination=destination,
                    subscription=sub_id,
                    message_id=message_id,
                    ack=ack,
                    headers=message.headers,
                    body=message.body,
                )
            )
            if tracked:
                for session, subscription in tuple(members.items()):
                    session.push_tracked(payload, subscription, message_id)
            else:
                for session in tuple(members):
                    session.push(payload)
        self._deliveries.inc(entry.size)
        self._messages_out.inc(entry.size)
