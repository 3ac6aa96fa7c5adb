"""Where ``/queue/{name}`` messages are kept until a consumer settles them (SPEC §4).

A :class:`QueueStore` is the durable half of a point-to-point queue; :mod:`server.queues` is the
node-local half that hands stored messages to this node's subscribers. The backplane provides
the store, chosen once with the rest of cluster mode (:mod:`server.backplane`):

* :class:`server.backplane.sql_queue.SqlQueueStore` (one node): rows of ``queue_messages`` in the
  node's database, with the ready ones of each queue also in memory;
* :class:`server.backplane.redis.queues.RedisQueueStore` (cluster): one Redis stream per queue,
  read by one consumer group in which every node is a consumer.

A message a node *takes* is this node's until it *settles* it (acknowledged: gone for good) or
*releases* it (back at the head of its queue, marked redelivered). A node that dies holding
messages loses them to the others after ``--queue-lease-s`` (the node renews its hold on the
messages it still has out with :meth:`QueueStore.keep`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Overflow = Literal["reject", "drop-head"]


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """The bounds of every queue (``--queue-max-length``, ``--queue-max-age-s``,
    ``--queue-overflow``) and how long a node's taken messages stay its own
    (``--queue-lease-s``)."""

    max_length: int = 10000
    max_age_s: float = 7 * 86400
    overflow: Overflow = "reject"
    lease_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to store; ``dedupe`` (an event id, say) stores it once however often sent.

    Messages with the same ``group`` (the SENDs of one COMMIT; they stand together in a batch)
    are stored all or none: when one does not fit its queue, none is stored.
    """

    queue: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    dedupe: str | None = None
    group: object | None = None


def groups(messages: Sequence[Outgoing]) -> list[list[Outgoing]]:
    """``messages`` cut into what is stored all or none: runs of one ``group``, and each
    message without one alone."""
    cut: list[list[Outgoing]] = []
    for message in messages:
        if cut and message.group is not None and cut[-1][0].group is message.group:
            cut[-1].append(message)
        else:
            cut.append([message])
    return cut


@dataclass(frozen=True, slots=True)
class Queued:
    """A stored message as a node takes it; ``id`` is its ``message-id``."""

    id: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    redelivered: bool


class QueueStore(Protocol):
    async def append(self, messages: Sequence[Outgoing]) -> list[bool]:
        """Store ``messages`` together (all or none, in order); for each, whether it is stored
        (``True`` also when its ``dedupe`` key was stored before) or refused (its queue is full
        and the overflow policy is ``reject``)."""

    async def take(self, queue: str, count: int) -> list[Queued]:
        """Up to ``count`` messages from the head of ``queue``, now this node's."""

    async def settle(self, queue: str, ids: Sequence[str]) -> None:
        """The consumer acknowledged these messages: forget them."""

    async def release(self, queue: str, ids: Sequence[str]) -> None:
        """Put these taken messages back at the head of ``queue``, marked redelivered."""

    async def give_back(self, queue: str, messages: Sequence[Queued]) -> None:
        """Put these taken messages, which no client was sent, back at the head of ``queue``
        as they were: the next take delivers a first delivery as one, not as redelivered."""

    async def keep(self, queue: str, ids: Sequence[str]) -> None:
        """These taken messages are still out with this node's consumers (renews the lease)."""
