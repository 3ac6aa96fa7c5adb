"""Events a :class:`~protocol.connection.ServerConnection` hands to the server.

Each is something the server must act on (authenticate, route, register); frames the state
machine settles by itself (BEGIN, ABORT, frames buffered in a transaction) produce no event, or
a :class:`Settled` when they ask for a RECEIPT. After acting, the server calls
``connection.complete(event)`` so that a requested RECEIPT is sent only once the frame took
effect (STOMP 1.2 §"Header receipt"), in its turn behind the frames before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from protocol.frames import StompVersion


class AckMode(StrEnum):
    AUTO = "auto"
    CLIENT = "client"
    CLIENT_INDIVIDUAL = "client-individual"


@dataclass(eq=False, slots=True)
class Subscription:
    """One SUBSCRIBE of one session; identity, not value, makes two subscriptions equal."""

    id: str
    destination: str
    ack: AckMode
    headers: list[tuple[str, str]]
    #: Message ids delivered and not yet acknowledged, oldest first (client modes only), each
    #: with the number its connection gave that delivery (a redelivery gets a new one).
    pending: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Event:
    receipt: str | None


@dataclass(slots=True)
class ConnectRequest(Event):
    version: StompVersion
    login: str | None
    passcode: str | None
    authorization: str | None
    host: str | None
    headers: list[tuple[str, str]]


@dataclass(slots=True)
class Send(Event):
    destination: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(slots=True)
class Subscribe(Event):
    subscription: Subscription


@dataclass(slots=True)
class Unsubscribe(Event):
    subscription: Subscription


@dataclass(slots=True)
class Ack(Event):
    subscription: Subscription
    message_ids: list[str]
    #: The delivery of each message the frame named (see :attr:`Subscription.pending`): an ACK
    #: held in a transaction settles, at COMMIT, only the delivery it named, not a redelivery
    #: of the same message made since. (The connection's bookkeeping: not compared.)
    deliveries: list[int] = field(default_factory=list, compare=False)


@dataclass(slots=True)
class Nack(Event):
    subscription: Subscription
    message_ids: list[str]
    #: As :attr:`Ack.deliveries`.
    deliveries: list[int] = field(default_factory=list, compare=False)


@dataclass(slots=True)
class Commit(Event):
    """A committed transaction: the frames it held act now, in the order they came, as one
    (STOMP 1.2 §"BEGIN": "processed atomically"). Completing it sends their RECEIPTs, then its
    own; when it fails, the ERROR names the COMMIT's receipt. Its frames are not emitted alone."""

    transaction: str
    events: list[Send | Ack | Nack] = field(default_factory=list)


@dataclass(slots=True)
class Disconnect(Event):
    pass


@dataclass(slots=True)
class Settled(Event):
    """A frame the connection carried out itself (BEGIN, ABORT, an UNSUBSCRIBE of an unknown id)
    that asks for a RECEIPT: the server has nothing to do but complete it, so that its RECEIPT
    comes after those of the frames before it that are still taking effect."""

    receipt: str
