"""Who may subscribe and send where (SPEC §4), and where a destination routes.

A *destination* is what a client writes in a frame; a *route* is the broker's key for the set of
subscribers. They differ only for user destinations: ``/user/queue/replies`` subscribed by alice
routes to ``/user/alice/queue/replies``, so a user only ever receives their own messages, on every
session and node (the route is also the cluster channel name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from server.auth import Principal, Role

#: An event id as a destination or a REST path writes it: up to nine digits, so that every id a
#: client can name fits the database's INTEGER (a longer one is refused before any query).
EVENT_ID = "[0-9]{1,9}"
_EVENT_ID = re.compile(EVENT_ID)
_EVENT_TOPIC = re.compile(r"/topic/events/([^/]+)/(seats|queue|status|announcements)")
_ADMIN_TOPIC = re.compile(rf"/topic/admin/events/({EVENT_ID})/checkin")
_USER_QUEUES = frozenset({"position", "replies", "errors"})
_BROADCASTERS = frozenset({Role.ADMIN, Role.PUBLISHER})
#: ``/queue/{name}``: letters, digits, ``.``, ``_``, ``-``; up to 128 characters.
_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Queues only the server sends to (integration events).
SERVER_QUEUE_PREFIX = "integration."
_QUEUE_CONSUMERS = frozenset({Role.ADMIN, Role.PUBLISHER, Role.INTEGRATION})


class Kind(Enum):
    SEATS = "seats"  # server-generated seat-map snapshot + deltas
    QUEUE_STATS = "queue"  # server-generated waiting-room stats
    STATUS = "status"  # server-generated: the event's sale status, at subscribe and on change
    ANNOUNCEMENTS = "announcements"  # admin broadcasts, public
    TOPIC = "topic"  # generic pub/sub for authenticated SDKs
    USER = "user"  # per-user queues, server-generated
    APP = "app"  # commands handled by the server
    ADMIN = "admin"  # server-generated figures for the admin console (admins only)
    QUEUE = "p2p"  # /queue/{name}: point-to-point, durable, acknowledged


@dataclass(frozen=True, slots=True)
class Destination:
    kind: Kind
    name: str
    #: The event id for per-event topics, the queue name for user and ``/queue/`` destinations.
    key: str | None = None


class Forbidden(Exception):
    """The principal may not use this destination this way (→ ERROR forbidden destination)."""


def classify(destination: str) -> Destination | None:
    """What kind of destination this is, or ``None`` for one outside the contract."""
    if destination.startswith("/topic/admin/"):
        admin = _ADMIN_TOPIC.fullmatch(destination)
        return Destination(Kind.ADMIN, destination, admin.group(1)) if admin else None
    if destination.startswith("/topic/"):
        if destination == "/topic/announcements":
            return Destination(Kind.ANNOUNCEMENTS, destination)
        match = _EVENT_TOPIC.fullmatch(destination)
        if match:
            kind = {"seats": Kind.SEATS, "queue": Kind.QUEUE_STATS, "status": Kind.STATUS}.get(
                match.group(2), Kind.ANNOUNCEMENTS
            )
            return Destination(kind, destination, match.group(1))
        if len(destination) > len("/topic/"):
            return Destination(Kind.TOPIC, destination)
        return None
    if destination.startswith("/user/queue/"):
        name = destination[len("/user/queue/") :]
        return Destination(Kind.USER, destination, name) if name in _USER_QUEUES else None
    if destination.startswith("/queue/"):
        name = destination[len("/queue/") :]
        if _QUEUE_NAME.fullmatch(name):
            return Destination(Kind.QUEUE, destination, name)
        return None
    if destination.startswith("/app/") and len(destination) > len("/app/"):
        return Destination(Kind.APP, destination)
    return None


def event_of(dest: Destination | None) -> int | None:
    """The event a per-event destination names, or ``None`` when its key is not an event id
    (``/topic/events/x/seats`` is an event topic for no event)."""
    key = dest.key if dest else None
    return int(key) if key is not None and _EVENT_ID.fullmatch(key) else None


def user_route(user: str, queue: str) -> str:
    """The route of ``user``'s ``/user/queue/<queue>``."""
    return f"/user/{user}/queue/{queue}"


def subscription_route(principal: Principal, destination: str) -> str:
    """The route a SUBSCRIBE to ``destination`` joins; raises :class:`Forbidden`."""
    dest = classify(destination)
    if dest is None:
        raise Forbidden(destination)
    if dest.kind in (Kind.SEATS, Kind.QUEUE_STATS, Kind.STATUS, Kind.ANNOUNCEMENTS):
        return destination
    if not principal.authenticated or principal.name is None:
        raise Forbidden(destination)
    if dest.kind is Kind.ADMIN:
        if principal.role is not Role.ADMIN:
            raise Forbidden(destination)
        return destination
    if dest.kind is Kind.TOPIC:
        return destination
    if dest.kind is Kind.USER and dest.key is not None:
        return user_route(principal.name, dest.key)
    if dest.kind is Kind.QUEUE and principal.role in _QUEUE_CONSUMERS:
        # The server's integration events (who bought which seats, for how much) are for the
        # box office's systems: a publisher, there to announce, may not take them from them.
        server_queue = str(dest.key).lower().startswith(SERVER_QUEUE_PREFIX)
        if not server_queue or principal.role is not Role.PUBLISHER:
            return destination
    raise Forbidden(destination)


def check_send(principal: Principal, destination: str) -> Destination:
    """Authorise a client SEND; returns the classified destination or raises :class:`Forbidden`."""
    dest = classify(destination)
    if dest is None:
        raise Forbidden(destination)
    if dest.kind in (Kind.ANNOUNCEMENTS, Kind.TOPIC) and principal.role in _BROADCASTERS:
        return dest
    if dest.kind is Kind.APP and principal.authenticated and principal.role is not Role.SCANNER:
        return dest  # (a door scanner's token is for the door: it does not shop)
    if (
        dest.kind is Kind.QUEUE
        and principal.role in _BROADCASTERS
        # In any case: a queue store may compare names without it (MariaDB's default
        # collation did), and "Integration.orders" must not pass for the server's queue.
        and not str(dest.key).lower().startswith(SERVER_QUEUE_PREFIX)
    ):
        return dest
    raise Forbidden(destination)
