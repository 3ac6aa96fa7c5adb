"""What cluster mode changes, chosen once from the settings (SPEC §8).

A :class:`Backplane` provides the four things that differ between one node and a cluster: the
message engine that carries broker messages between nodes, the waiting-room store, the seat
sequencer, and the store of ``/queue/`` messages. :func:`open_backplane` picks the implementation
from ``--redis-url``, once, at start-up; everything downstream receives the pieces and never asks
which kind it got (as Centrifugo's ``configureEngines`` does).

* :mod:`server.backplane.memory`: one node, everything in this process (``/queue/`` messages in
  the node's database, :mod:`server.backplane.sql_queue`).
* :mod:`server.backplane.redis`: any number of nodes sharing one Redis; it owns the Redis client,
  its pool size and key prefix (``--redis-pool-size``, ``--redis-key-prefix``).
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from booking.inventory import Inventory
from booking.waiting_room import WaitingRoom
from server.backplane.memory import InProcessBackplane
from server.backplane.redis import RedisBackplane
from server.engine import Engine
from server.metrics import InfraMetrics
from server.outflow import SharedOutflow
from server.queue_store import QueueStore
from server.seat_sequencer import SeatSequencer
from server.settings import Settings
from server.user_replay import UserMessages


class Backplane(Protocol):
    @property
    def engine(self) -> Engine: ...

    @property
    def waiting_room(self) -> WaitingRoom: ...

    @property
    def queue_store(self) -> QueueStore: ...

    @property
    def outflow(self) -> SharedOutflow | None:
        """The cluster's shared adaptive admission rates (``None``: one node, its own)."""

    def seat_sequencer(self, inventory: Inventory) -> SeatSequencer:
        """The sequencer of this node's seat maps (it reads their layout order from
        ``inventory`` and rebuilds shared state from it after an outage)."""

    def user_messages(self, count: int, ttl_s: float, max_bytes: int) -> UserMessages:
        """Where messages to users are kept for replay: the last ``count`` per route, for
        ``ttl_s`` seconds (:mod:`server.user_replay`); in memory, at most ``max_bytes`` in all
        (Redis bounds its lists with its own ``maxmemory``: each list has an expiry, so a
        ``volatile-*`` eviction policy takes them first)."""

    async def check_ready(self) -> str | None:
        """``None`` when the backplane can carry messages, else why not (for ``/readyz``)."""

    async def close(self) -> None: ...


def open_backplane(
    settings: Settings, database: AsyncEngine, metrics: InfraMetrics | None = None
) -> Backplane:
    """The backplane ``settings`` ask for; a Redis one reports its connection to ``metrics``.
    A single node keeps its ``/queue/`` messages in ``database``."""
    if settings.redis_url:
        return RedisBackplane(settings, metrics)
    return InProcessBackplane(database, settings.queue_policy)
