"""Where published messages travel between nodes.

The broker hands every publish to an :class:`Engine` and receives every message to deliver
locally from it, so single-node and cluster mode differ only here (the backplane,
:mod:`server.backplane`, provides the engine). An engine is told which routes
this node has subscribers for (:meth:`Engine.watch` / :meth:`Engine.unwatch`), so a cluster engine
can carry only traffic some local session wants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Message:
    """A published message, before it is encoded for any subscriber."""

    route: str
    message_id: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


Deliver = Callable[[Message], None]
#: Called when the engine has (re)connected to the other nodes.
Connected = Callable[[], None]


class Engine(Protocol):
    async def start(self, deliver: Deliver) -> None:
        """Begin handing messages for watched routes to ``deliver``."""

    async def close(self) -> None: ...

    def publish(self, message: Message) -> None:
        """Send ``message`` to every node watching its route, in publish order per route."""

    def watch(self, route: str) -> None:
        """This node now has subscribers for ``route``."""

    def unwatch(self, route: str) -> None:
        """This node no longer has subscribers for ``route``."""

    async def watching(self, route: str) -> None:
        """Return once messages published on ``route`` from now on reach this node (a cluster
        engine's subscription to it is in place); the caller bounds the wait."""

    def when_connected(self, callback: Connected) -> None:
        """Call ``callback`` each time the engine reconnects to the other nodes after losing
        them (whatever they published meanwhile did not reach this node). A single node's
        engine never loses anyone."""
