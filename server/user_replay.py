"""Messages to a user, kept for a while and replayed once after a reconnect (issue 17).

Every message published to a user destination (``/user/{name}/queue/...``: replies, errors,
positions and admissions, whatever a later feature sends a user) goes through the backplane's
:class:`UserMessages` store, which keeps it under its route, the last ``--user-replay-count``
of each route for ``--user-replay-s``, then publishes it (in a cluster the store's ``RPUSH`` and
the ``PUBLISH`` go in one pipeline, kept before published). Node-local pushes (the periodic
position) are not kept: they are repeated anyway.

A client that reconnects, to any node, subscribes with ``resume-after: <message-id>``, the id of
the last MESSAGE it received on that destination. :class:`UserReplay` then sends that subscription
every message kept for the route after that one, each with its original ``message-id``; an id no
longer (or never) kept means every message kept. Live messages flow from the SUBSCRIBE on: the
route is tapped while the kept ones are read, and a message already delivered live is not
replayed, so each missed message arrives once (replayed ones may come after newer live ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from protocol.events import Subscription
from server.broker import Broker
from server.engine import Message
from server.session import StompSession
from server.task_set import TaskSet

log = logging.getLogger(__name__)

#: The SUBSCRIBE header naming the last message a resuming client received on a user queue.
RESUME_HEADER = "resume-after"
#: How long a replay waits for the engine to carry the route to this node before reading.
WATCH_TIMEOUT_S = 2.0


class UserMessages(Protocol):
    """Where messages to users are kept (the backplane's: in process or in Redis)."""

    def publish(self, message: Message) -> None:
        """Keep ``message`` under its route, then publish it through the engine."""

    async def after(self, route: str, message_id: str) -> list[Message]:
        """The messages kept for ``route`` after ``message_id``, oldest first: all of them
        when that id is not kept."""


def _header(subscription: Subscription, name: str) -> str | None:
    return next((v for k, v in subscription.headers if k == name), None)


class UserReplay:
    """Replays kept user messages to subscriptions that ask (``resume-after``)."""

    def __init__(self, broker: Broker, store: UserMessages) -> None:
        self.broker = broker
        self.store = store
        #: Message ids delivered live on a route while a replay of it is read, per route.
        self._taps: dict[str, list[set[str]]] = {}
        self._tasks = TaskSet()

    def on_subscribe(self, session: StompSession, subscription: Subscription, route: str) -> None:
        after = _header(subscription, RESUME_HEADER)
        if after is None:
            return
        seen: set[str] = set()
        taps = self._taps.get(route)
        if taps is None:
            taps = self._taps[route] = []
            self.broker.listen(route, self._tapped)
        taps.append(seen)
        self._tasks.start(self._replay(session, subscription, route, after, seen))

    def _tapped(self, message: Message) -> None:
        for seen in self._taps.get(message.route, ()):
            seen.add(message.message_id)
        self.broker.fan_out(message)

    async def _replay(
        self,
        session: StompSession,
        subscription: Subscription,
        route: str,
        after: str,
        seen: set[str],
    ) -> None:
        try:
            # Anything published from here on reaches the subscription live (or the tap): in a
            # cluster, once this node's Redis subscription to the route is in place.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(WATCH_TIMEOUT_S):
                    await self.broker.engine.watching(route)
            kept = await self.store.after(route, after)
        except Exception:
            log.exception("could not read the messages kept for %s", route)
            kept = []
        finally:
            taps = self._taps[route]
            taps.remove(seen)
            if not taps:
                del self._taps[route]
                self.broker.unlisten(route)
        if session.closed or session.conn.subscriptions.get(subscription.id) is not subscription:
            return
        for message in kept:
            if message.message_id not in seen:
                self.broker.send_to(
                    session, subscription, message.headers, message.body, message.message_id
                )
