"""Where ``/queue/{name}`` messages are kept until a consumer settles them (SPEC §4).

A :class:`QueueStore` is the durable half of a point-to-point queue; :mod:`server.queues` is the
node-local half that hands stored messages to this node's subscribers. The backplane provides
the store, chosen once with the rest of cluster mode (:mod:`server.backplane`):

* :class:`server.backplane.sql_queue.SqlQueueStore` (one node): rows of ``queue_messages`` in the
  node's database (bodies stay there until taken: memory holds a few counters per queue and
  what is out with consumers);
* :class:`server.backplane.redis.queues.RedisQueueStore` (cluster): one Redis stream per queue,
  read by one consumer group in which every node is a consumer.

A message a node *takes* is this node's until it *settles* it (acknowledged: gone for good) or
*releases* it (back at the head of its queue, marked redelivered). A node that dies holding
messages loses them to the others after ``--queue-lease-s`` (the node renews its hold on the
messages it still has out with :meth:`QueueStore.keep`).

Bounds (:class:`QueuePolicy`), in both stores alike: per queue a length and a byte count (of
bodies, ready and out with consumers, like RabbitMQ's ``x-max-length``/``x-max-length-bytes``)
and an age; and a number of queues for the whole deployment (the node's database, or the
cluster's Redis): a queue counts while it holds messages or has subscribers (:meth:`open`), and
is forgotten once it has neither. The server's own queues (:data:`SERVER_QUEUES`) count but
are never refused.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from booking.integration import EVENT_TYPES, queue_of

Overflow = Literal["reject", "drop-head"]

#: The queues the server stores integration events on (``integration.orders`` …).
SERVER_QUEUES = frozenset(queue_of(event_type) for event_type in EVENT_TYPES)


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """The bounds of every queue (``--queue-max-length``, ``--queue-max-bytes``,
    ``--queue-max-age-s``, ``--queue-overflow``), of their number (``--max-queues``) and of what
    a node lets wait to be stored (``--queue-max-backlog-bytes``); how long a node's taken
    messages stay its own (``--queue-lease-s``)."""

    max_length: int = 10000
    max_bytes: int = 16 << 20
    max_age_s: float = 7 * 86400
    overflow: Overflow = "reject"
    lease_s: float = 30.0
    max_queues: int = 100
    max_backlog_bytes: int = 16 << 20

    @staticmethod
    def always_admitted(queue: str) -> bool:
        """The server's own queues (:data:`SERVER_QUEUES`) count, but are never refused."""
        return queue in SERVER_QUEUES


class Refused(enum.Enum):
    """Why a store did not store a message (its ERROR's ``message``)."""

    #: Over ``--queue-max-length`` or ``--queue-max-bytes`` with ``reject`` (or with
    #: ``drop-head`` and too few ready messages to drop).
    FULL = "queue full"
    #: It would make one queue more than ``--max-queues``.
    TOO_MANY_QUEUES = "too many queues"


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
    async def append(self, messages: Sequence[Outgoing]) -> list[Refused | None]:
        """Store ``messages`` together (all or none, in order); for each, ``None`` when it is
        stored (also when its ``dedupe`` key was stored before), else why it was refused."""

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
        """``queue`` still has subscribers on this node, and these taken messages are still out
        with them (renews the lease of both)."""

    async def open(self, queue: str) -> bool:
        """``queue`` has subscribers on this node: it counts, and is kept while empty, until
        :meth:`close`. ``False`` (and nothing changes) when it would be one queue more than
        ``--max-queues``."""

    async def close(self, queue: str) -> None:
        """The subscribers of ``queue`` on this node (since :meth:`open`) are gone."""
