"""Routing of published messages to local subscriptions, encoding each message once per shape.

Subscribers of a route are grouped by everything that changes a MESSAGE's bytes: the destination
the client subscribed to, its subscription id, its STOMP version, its transport framing and
whether it acknowledges. Browsers using one client library all subscribe with the same ids, so a
message to 5,000 of them is usually encoded and framed once and the loop per recipient is just a
transport write (STYLE.md point 5). No task or coroutine is created per recipient.

Writing to 10,000 sockets takes the event loop tens of milliseconds, and a REST request that
arrives meanwhile would wait for all of it. So a *sliced* fan-out (the seat map's deltas, which
every buyer follows while others book) larger than :data:`SLICE` recipients, and any fan-out
while another is still being written, becomes a *job* in one FIFO queue: each turn of the event
loop writes at most :data:`SLICE` recipients, then yields, so requests and ``/app`` commands are
served between slices. Other fan-outs (pub/sub topics, announcements, positions) are written at
once when nothing is queued, as before: slicing costs CPU per delivery (a reader that idles
between slices is woken again, and the sender's write pays for it), which only the seat map's
deltas are worth. The recipients of a job are fixed when it is
queued, and every message to a session goes through the same queue while it is not empty
(:meth:`Broker.send_to` too), so each session still gets its messages in publication order.
:meth:`Broker.drained` lets a producer (the seat-map tick) wait until everything queued is
written: a delta is never queued behind the previous one still going out. The queue is bounded
(:data:`MAX_BACKLOG` recipients): a node that falls that far behind writes everything at once,
and its publishers wait on their sockets instead.

A route may be *conflated* (:meth:`Broker.conflate`: the seat maps, whose next message makes the
ones before it redundant): a subscriber of it whose client is behind after a write (more than
half its output budget unread; the session's ``push`` says so from the one look at its transport
that the budget needs anyway) is taken off the route and handed to the route's owner, which
brings it back with one message of the current state once it has read its backlog. Other routes
pay nothing for it: their writes ignore what ``push`` says.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from protocol.codec import encode_message
from protocol.connection import ServerConnection, ack_id
from protocol.events import AckMode, Subscription
from protocol.frames import StompVersion
from server.engine import Engine, Message
from server.framing import Framing
from server.metrics import BrokerMetrics

T = TypeVar("T")

#: (destination as subscribed, subscription id, version, framing, client-acknowledged)
GroupKey = tuple[str, str, StompVersion, Framing, bool]

#: Most recipients written in one turn of the event loop (1 to 4 ms of writes). Every database
#: round trip of a request waiting meanwhile waits for one slice: a checkout is 16 of them. In
#: the 10,000-user journey, slices of 1,000 (10 to 15 ms on a small machine) put the node's own
#: hold p99 at 500 ms and checkout p99 at 1 s; slices of 250 brought them under 100 ms and
#: 500 ms (docs/journey-runs.md). Smaller slices cost some CPU per delivery: a subscriber's
#: reader that idles between slices is woken again for the next, and the wake-up is paid in
#: the sender's write.
SLICE = 250
#: Most recipients queued before a fan-out. Past it the node is not keeping up: the next
#: fan-out writes the whole queue and itself at once, holding the loop as an unsliced broker
#: would, so that publishers wait on their sockets (TCP's back-pressure) rather than the queue
#: growing without bound (it holds at most this plus one fan-out's recipients). One fan-out to
#: more subscribers than this is still sliced.
MAX_BACKLOG = 20_000


class Subscriber(Protocol):
    """What the broker needs of a session (:class:`~server.session.StompSession` is one)."""

    conn: ServerConnection
    framing: Framing
    closed: bool

    def push(self, payload: bytes) -> bool | None:
        """Write ``payload``; whether the client is now behind (``None``: cannot tell)."""
        ...

    def push_tracked(
        self, payload: bytes, subscription: Subscription, message_id: str
    ) -> bool | None: ...


#: Told of a subscriber of a conflated route whose client fell behind, taken off the route.
BehindHandler = Callable[[Subscriber, Subscription], None]


#: How far the first recipient moves through a group from one message to the next, as a share
#: of the group (the golden ratio's: starts spread evenly over the group whatever its size).
TURN_STEP = 0.6180339887498949


class Route:
    """The local subscribers of one route, grouped by the bytes they need.

    Each message starts at another point of the groups and of each group (``turn``, a share
    of their number advanced by :data:`TURN_STEP`), so no subscriber is always written last:
    writing to 10,000 sockets takes about 100 ms, and a buyer always at the end would see every
    freed seat that much later than everyone else, in every delta of the sale.
    """

    __slots__ = ("groups", "size", "turn")

    def __init__(self) -> None:
        self.groups: dict[GroupKey, dict[Subscriber, Subscription]] = {}
        self.size = 0
        self.turn = 0.0


class Broker:
    def __init__(self, engine: Engine, metrics: BrokerMetrics, node_id: str) -> None:
        self.engine = engine
        self.metrics = metrics
        self._routes: dict[str, Route] = {}
        # Where each subscription sits, to remove it without searching.
        self._placement: dict[Subscription, tuple[str, GroupKey]] = {}
        self._ids = itertools.count(1)
        # The node's id and its start (milliseconds, hex): a node restarted under the same
        # --node-id (a StatefulSet's pod, Compose's app1) must not issue its ids again, or a
        # client resuming a user queue with ``resume-after`` would be matched to an old message.
        self._id_prefix = f"{node_id}-{time.time_ns() // 1_000_000:x}-"
        self._deliveries = metrics.deliveries
        self._messages_out = metrics.frames_out.labels("MESSAGE")
        #: Routes whose messages a server component handles before (or instead of) fan-out.
        self._handlers: dict[str, Callable[[Message], None]] = {}
        #: Conflated routes (:meth:`conflate`): who takes their subscribers that fall behind.
        self._conflated: dict[str, BehindHandler] = {}
        #: Where messages to users are kept for replay (:mod:`server.user_replay`), if anywhere.
        self._user_messages: Callable[[Message], None] | None = None
        #: Fan-outs still being written, oldest first, and how far the first one got.
        self._jobs: deque[_Job] = deque()
        self._cursor = 0
        self._backlog = 0  # recipients queued and not yet written
        self._scheduled = False  # a _write_slice is due
        self._idle: asyncio.Event | None = None

    # -- subscriptions -----------------------------------------------------------------------

    def subscribe(self, session: Subscriber, subscription: Subscription, route: str) -> None:
        key = group_key(session, subscription)
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

    def unlisten(self, route: str) -> None:
        """Undo :meth:`listen`: the route's messages fan out again."""
        if self._handlers.pop(route, None) is not None and route not in self._routes:
            self.engine.unwatch(route)

    def conflate(self, route: str, on_behind: BehindHandler) -> None:
        """Conflate ``route``: a subscriber whose client is behind after a fan-out's write to it
        (more than half its output budget unread) is unsubscribed and handed to ``on_behind``,
        which subscribes it again when it sees fit (the seat map: after a catch-up snapshot).
        Only :meth:`fan_out` watches for it; :meth:`send_to` does not."""
        self._conflated[route] = on_behind

    def keep_user_messages(self, publish: Callable[[Message], None]) -> None:
        """Publish every message to a user route (``/user/...``) through ``publish``, which
        keeps it for replay and then hands it to the engine."""
        self._user_messages = publish

    def subscriber_count(self, route: str) -> int:
        entry = self._routes.get(route)
        return entry.size if entry else 0

    # -- messages ----------------------------------------------------------------------------

    def next_id(self) -> str:
        """A message id unique across the cluster and the node's restarts (node id, start,
        counter)."""
        return f"{self._id_prefix}{next(self._ids)}"

    def publish(self, route: str, headers: tuple[tuple[str, str], ...], body: bytes) -> None:
        """Publish to every subscriber of ``route`` on every node."""
        message = Message(route, self.next_id(), headers, body)
        if self._user_messages is not None and route.startswith("/user/"):
            self._user_messages(message)
        else:
            self.engine.publish(message)

    def send_to(
        self,
        session: Subscriber,
        subscription: Subscription,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
        message_id: str | None = None,
    ) -> None:
        """Deliver one message to one subscription only (a seat-map snapshot, say); a replayed
        message keeps its ``message_id``."""
        message_id = message_id or self.next_id()
        key = group_key(session, subscription)
        tracked = key[4]
        payload = _payload(key, message_id, headers, body)
        if self._jobs:  # behind what is still being written to this session, not before it
            recipients = ((session, subscription),) if tracked else (session,)
            self._queue(_Job(payload, recipients, message_id, tracked))
        elif tracked:
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

    def fan_out(self, message: Message, *, sliced: bool = False) -> None:
        """Write ``message`` to this node's subscribers of its route; ``sliced``: in slices that
        yield to other work when there are more than :data:`SLICE` of them.

        Node-local pushes (a user's periodic position, which each node computes for its own
        sessions) call this directly.
        """
        entry = self._routes.get(message.route)
        if entry is None:
            return
        message_id = message.message_id
        overloaded = self._backlog > MAX_BACKLOG
        if overloaded:
            self._write_all()  # falling behind: everything queued goes out now, then this
        now = not self._jobs and (not sliced or entry.size <= SLICE or overloaded)
        on_behind = self._conflated.get(message.route)
        self._write_route(
            entry, message_id, message.headers, message.body, now, on_behind=on_behind
        )
        self._deliveries.inc(entry.size)
        self._messages_out.inc(entry.size)

    def fan_out_each(
        self, messages: Sequence[tuple[str, bytes]], headers: tuple[tuple[str, str], ...]
    ) -> int:
        """Write many messages of one kind, each to this node's subscribers of its own route
        (every waiting user's position, each on their own ``/user/`` route), counted once for
        all; returns how many were written.

        :meth:`fan_out` per message would do the same, at twice the CPU: a waiting room's
        positions are thousands of one-recipient messages a second.
        """
        routes = self._routes
        if self._backlog > MAX_BACKLOG:
            self._write_all()  # falling behind: as in fan_out
        now = not self._jobs
        delivered = 0
        for route, body in messages:
            entry = routes.get(route)
            if entry is not None:
                self._write_route(entry, self.next_id(), headers, body, now)
                delivered += entry.size
        self._deliveries.inc(delivered)
        self._messages_out.inc(delivered)
        return delivered

    def _write_route(
        self,
        entry: Route,
        message_id: str,
        headers: tuple[tuple[str, str], ...],
        body: bytes,
        now: bool,
        *,
        on_behind: BehindHandler | None = None,
    ) -> None:
        """Encode the message once per group of ``entry``; write it ``now``, or queue it; the
        groups, and each group's subscribers, from the turn's starting point on (:class:`Route`).
        ``on_behind``: the route is conflated (:meth:`conflate`)."""
        turn = entry.turn
        if entry.size > 1:
            entry.turn = (turn + TURN_STEP) % 1.0
        for key, members in _rotated(tuple(entry.groups.items()), turn):
            payload = _payload(key, message_id, headers, body)
            tracked = key[4]
            recipients = (
                _rotated(tuple(members.items()), turn)
                if tracked
                else _rotated(tuple(members), turn)
            )
            if on_behind is not None:
                job = _Job(payload, recipients, message_id, tracked, members, on_behind)
                if now:
                    self._write_watched(job, 0, len(recipients))
                else:
                    self._queue(job)
            elif not now:
                self._queue(_Job(payload, recipients, message_id, tracked))
            elif tracked:
                for session, subscription in recipients:  # type: ignore[misc]
                    session.push_tracked(payload, subscription, message_id)
            else:
                for session in recipients:
                    session.push(payload)  # type: ignore[union-attr]

    # -- the queue of fan-outs being written ------------------------------------------------

    def _queue(self, job: _Job) -> None:
        if not self._jobs and self._idle is not None:
            self._idle.clear()
        if not self._scheduled:
            asyncio.get_running_loop().call_soon(self._next_slice)
            self._scheduled = True
        self._jobs.append(job)
        self._backlog += len(job.recipients)

    def _next_slice(self) -> None:
        """Schedule the next slice from here, one turn of the event loop on: behind what became
        ready meanwhile. A database answer that arrived while a slice was written resumes its
        request before the next slice, not after it; else each of a checkout's 16 round trips
        waits for one more slice (uvloop runs the callbacks that were ready when its turn began:
        the next slice, scheduled from the slice, came first). In the 10,000-user journey,
        checkout p50 went from 128 and 138 ms to 106 and 103 ms (two runs each side)."""
        asyncio.get_running_loop().call_soon(self._write_slice)

    def _write_slice(self) -> None:
        """Write up to :data:`SLICE` recipients of the queued jobs, then yield to the loop."""
        self._scheduled = False
        if self._write(SLICE):
            asyncio.get_running_loop().call_soon(self._next_slice)
            self._scheduled = True

    def _write_all(self) -> None:
        self._write(self._backlog)  # a _write_slice still scheduled finds the queue empty

    def _write(self, budget: int) -> bool:
        """Write up to ``budget`` queued recipients in order; whether any are left."""
        jobs = self._jobs
        self._backlog -= budget
        while jobs and budget > 0:
            job = jobs[0]
            start = self._cursor
            end = min(len(job.recipients), start + budget)
            payload = job.payload
            if job.on_behind is not None:
                self._write_watched(job, start, end)
            elif job.tracked:
                message_id = job.message_id
                for session, subscription in job.recipients[start:end]:  # type: ignore[misc]
                    session.push_tracked(payload, subscription, message_id)
            else:
                for session in job.recipients[start:end]:
                    session.push(payload)  # type: ignore[union-attr]
            budget -= end - start
            if end < len(job.recipients):
                self._cursor = end
            else:
                jobs.popleft()
                self._cursor = 0
        self._backlog += budget  # what the budget did not use
        if jobs:
            return True
        if self._idle is not None:
            self._idle.set()
        return False

    def _write_watched(self, job: _Job, start: int, end: int) -> None:
        """Write recipients ``start:end`` of a conflated route's ``job``; those left behind
        leave the route for its owner (:meth:`conflate`)."""
        payload = job.payload
        behind: list[tuple[Subscriber, Subscription | None]] = []
        if job.tracked:
            message_id = job.message_id
            for session, subscription in job.recipients[start:end]:  # type: ignore[misc]
                if session.push_tracked(payload, subscription, message_id):
                    behind.append((session, subscription))
        else:
            for session in job.recipients[start:end]:
                if session.push(payload):  # type: ignore[union-attr]
                    behind.append((session, None))  # type: ignore[arg-type]
        if not behind:
            return
        assert job.members is not None and job.on_behind is not None
        for session, known in behind:
            subscription = known or job.members.get(session)
            # Still where the job found it (not gone, not already taken off by an earlier job).
            if subscription is not None and subscription in self._placement:
                self.unsubscribe(session, subscription)
                job.on_behind(session, subscription)

    async def drained(self) -> None:
        """Return once every queued fan-out has been written (at once when none is)."""
        if not self._jobs:
            return
        if self._idle is None:
            self._idle = asyncio.Event()
        self._idle.clear()
        await self._idle.wait()


def _rotated(items: tuple[T, ...], turn: float) -> tuple[T, ...]:
    """``items`` from the one at ``turn`` (a share of their number) on, then the rest."""
    start = int(turn * len(items))
    return items[start:] + items[:start] if start else items


def group_key(session: Subscriber, subscription: Subscription) -> GroupKey:
    """Everything about a subscription that changes the bytes of a MESSAGE to it."""
    return (
        subscription.destination,
        subscription.id,
        session.conn.version or StompVersion.V1_0,
        session.framing,
        subscription.ack is not AckMode.AUTO,
    )


def _payload(
    key: GroupKey, message_id: str, headers: tuple[tuple[str, str], ...], body: bytes
) -> bytes:
    """The framed MESSAGE bytes for every subscriber of group ``key``."""
    destination, sub_id, version, framing, tracked = key
    ack = ack_id(sub_id, message_id) if tracked and version is StompVersion.V1_2 else None
    return framing(
        encode_message(
            version,
            destination=destination,
            subscription=sub_id,
            message_id=message_id,
            ack=ack,
            headers=headers,
            body=body,
        )
    )


@dataclass(slots=True, eq=False)
class _Job:
    """One queued fan-out: the bytes, and the recipients fixed when it was queued (sessions,
    or (session, subscription) pairs when they acknowledge)."""

    payload: bytes
    recipients: Sequence[Subscriber] | Sequence[tuple[Subscriber, Subscription]]
    message_id: str
    tracked: bool
    #: A conflated route's: the group's subscriptions (to find a recipient's), and who takes
    #: the recipients that fall behind.
    members: dict[Subscriber, Subscription] | None = None
    on_behind: BehindHandler | None = None
