"""A STOMP session on any transport: protocol events in, broker actions and bytes out.

The transports (:mod:`server.tcp`, :mod:`server.websocket`) only move bytes; everything a session
decides — authentication, destination rules, limits, heart-beats — is here, once. Every
:class:`~protocol.errors.ProtocolError` raised while handling input becomes an ERROR frame and a
close at exactly one place (:meth:`StompSession.data_received`); any other exception is logged
with its traceback and the peer gets a generic ``internal error``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from protocol import events
from protocol.codec import only_eols
from protocol.connection import ConnectionState, ServerConnection
from protocol.errors import LimitExceeded, ProtocolError
from protocol.frames import Frame
from server.auth import ANONYMOUS, AuthenticationFailed, Principal, TokenAuthority
from server.broker import Broker
from server.client_addresses import ClientAddresses
from server.command_router import AppCommand, CommandRouter
from server.destinations import (
    Forbidden,
    Kind,
    check_send,
    classify,
    subscription_route,
)
from server.errors import (
    AuthenticationRefused,
    ForbiddenDestination,
    ServerShutdown,
    SlowConsumer,
    Timeout,
)
from server.framing import Framing
from server.logs import session_extra
from server.metrics import BrokerMetrics
from server.queues import QueueBroker
from server.rate_limits import TokenBuckets
from server.settings import Settings
from server.tally import Tally
from server.task_set import TaskSet

log = logging.getLogger(__name__)

SERVER_NAME = "concert-hub/0.1.0"

#: How long a closing session may take to flush its last frames before it is cut.
CLOSE_GRACE_S = 5.0
#: How long sessions get to flush their ERROR frames when the node stops.
DRAIN_S = 2.0
#: How long, after cutting the sessions left at the end of :data:`DRAIN_S`, their readers get to
#: notice (each a callback and the end of its handler, all at once).
CUT_S = 1.0

T = TypeVar("T")

#: Told of a SUBSCRIBE after the broker registered it; what it returns, the SUBSCRIBE's RECEIPT
#: waits for (its failure with a ProtocolError is the SUBSCRIBE's ERROR).
SubscribeListener = Callable[["StompSession", events.Subscription, str], Awaitable[object] | None]


@dataclass
class StompService:
    """What every session of a node shares."""

    settings: Settings
    tokens: TokenAuthority
    broker: Broker
    metrics: BrokerMetrics
    #: ``/queue/`` destinations: stored, then handed to one subscriber each.
    queues: QueueBroker
    sessions: set[StompSession] = field(default_factory=set)
    #: Handlers for SEND to ``/app/...`` destinations, by destination template.
    app_commands: CommandRouter[StompSession] = field(default_factory=CommandRouter)
    #: Called after a SUBSCRIBE is registered (the seat map sends its snapshot here).
    subscribe_listeners: dict[Kind, SubscribeListener] = field(default_factory=dict)
    accepting: bool = True
    #: Open sessions by client address (``--max-connections-per-ip``).
    per_address: Tally = field(default_factory=Tally)
    #: Connected sessions by user name (``--max-sessions-per-user``): a message to a user goes
    #: to every one of them (SPEC §4), so their number multiplies what a user can make the
    #: node write.
    per_user: Tally = field(default_factory=Tally)
    #: ``/app`` commands by user: the REST API's per-user bucket (``--rest-rate-per-user``),
    #: since the commands are its calls over STOMP; ``None``: not limited.
    commands_per_user: TokenBuckets | None = None
    #: ``/app`` commands under way (:mod:`server.app_commands`): a stop lets them finish.
    commands: TaskSet = field(default_factory=TaskSet)

    def __post_init__(self) -> None:
        s = self.settings
        self.limits = s.stomp_limits
        self._session_ids = itertools.count(1)
        #: Whose address a session counts against (``--max-connections-per-ip``).
        self.addresses = ClientAddresses(s.trusted_proxy_networks)
        self._empty = asyncio.Event()
        self._empty.set()
        # Counted where they are, at scrape time: a subscription the broker holds back (a seat
        # map's snapshot hand-over) is still the client's subscription.
        self.metrics.subscriptions.set_function(self.subscription_count)

    def subscription_count(self) -> int:
        return sum(len(session.conn.subscriptions) for session in self.sessions)

    def next_session_id(self) -> str:
        return f"{self.settings.node_id}-s{next(self._session_ids)}"

    def register(self, session: StompSession) -> None:
        self.sessions.add(session)
        self._empty.clear()
        self.metrics.connections.inc()
        if session.address is not None:
            self.per_address.add(session.address)

    def forget(self, session: StompSession) -> None:
        self.sessions.discard(session)
        self.metrics.connections.dec()
        if not self.sessions:
            self._empty.set()
        if session.address is not None:
            self.per_address.remove(session.address)

    def sign_in(self, user: str) -> None:
        """Count a session of ``user``, or refuse it (ERROR ``too many connections``)."""
        cap = self.settings.max_sessions_per_user
        if cap and self.per_user[user] >= cap:
            raise LimitExceeded(
                "too many connections", f"at most {cap} sessions of one user on this node"
            )
        self.per_user.add(user)

    def sign_out(self, user: str) -> None:
        self.per_user.remove(user)

    def take_command(self, user: str) -> None:
        """Charge an ``/app`` command to ``user``'s bucket, or refuse it (ERROR ``rate limit
        exceeded``): a reply goes to all the user's sessions, so a refusal answered by reply
        would multiply as the flood does; the flooding session is closed instead."""
        buckets = self.commands_per_user
        if buckets is not None and buckets.take(user) > 0:
            detail = f"limit is {buckets.rate:g} /app commands per second per user"
            raise LimitExceeded("rate limit exceeded", detail)

    def refusal(self, address: str | None) -> LimitExceeded | None:
        """Why a new session from ``address`` is refused (``None``: it is welcome)."""
        settings = self.settings
        if not self.accepting:
            return LimitExceeded("server shutting down")
        if len(self.sessions) >= settings.max_connections:
            return LimitExceeded("too many connections", "the server is full")
        cap = settings.max_connections_per_ip
        if cap and address is not None and self.per_address[address] >= cap:
            return LimitExceeded(
                "too many connections", f"at most {cap} connections from one client address"
            )
        return None

    async def drain(self) -> None:
        """Refuse new sessions, tell every session the server is going away (SPEC §1 SIGTERM:
        ERROR ``server shutting down``, WebSocket close 1001) and give them ``DRAIN_S`` to
        flush it and close; then cut the connections of those left, all at once. ``/app``
        commands under way get the same ``DRAIN_S`` to finish, as in-flight REST requests get
        the runner's grace: a hold being decided commits, and its reply reaches the user's
        other sessions and the replay kept for their reconnect, instead of being cut off
        unanswered with the database and backplane closing under it.

        Bounded whatever the number of sessions (SPEC §1: exit within 10 s): the sessions are
        told in one pass and close concurrently, and those whose clients have not answered the
        close by then are not left to their own grace timers (:data:`CLOSE_GRACE_S` after each
        close) or to the runner's shutdown timeout per connection."""
        self.accepting = False
        loop = asyncio.get_running_loop()
        until = loop.time() + DRAIN_S
        shutdown = ServerShutdown("server shutting down")
        for session in tuple(self.sessions):
            session.fail(shutdown)
        if not await self._emptied(DRAIN_S) and self.sessions:
            log.warning("%d sessions did not close in time; cutting them", len(self.sessions))
            for session in tuple(self.sessions):
                session.transport.abort()  # type: ignore[attr-defined]
            if not await self._emptied(CUT_S):
                log.warning("%d sessions still open after the cut", len(self.sessions))
        cut_short = await self.commands.finish(until - loop.time())
        if cut_short:
            log.warning("%d /app commands did not finish in time; cancelled", cut_short)

    async def _emptied(self, timeout_s: float) -> bool:
        """Whether every session is gone within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._empty.wait()
        except TimeoutError:
            return not self.sessions
        return True


class StompSession(ABC):
    """One client connection's STOMP session; subclasses move its bytes."""

    __slots__ = (
        "__weakref__",
        "_behind_limit",
        "_counted",
        "_frames_in",
        "_frames_out",
        "_last_completion",
        "_loop",
        "_rx_at",
        "_signed_in",
        "_slow_limit",
        "_timers",
        "_tokens",
        "_tokens_at",
        "_tx_seen",
        "address",
        "closed",
        "conn",
        "principal",
        "service",
        "session_id",
        "transport",
    )

    #: How broker payloads are framed for this transport (shared by all its sessions).
    framing: Framing
    transport_name: str

    def __init__(
        self,
        service: StompService,
        transport: asyncio.BaseTransport,
        address: str | None = None,
    ) -> None:
        self.service = service
        self.transport = transport
        #: The client's address for ``--max-connections-per-ip`` (``None``: not capped).
        self.address = address
        self.conn = ServerConnection(service.limits, heart_beat=service.settings.heartbeat_ms)
        self.conn.on_frame = self._on_frame
        self.principal: Principal = ANONYMOUS
        self.session_id = service.next_session_id()
        self.closed = False
        self._tx_seen = False
        self._loop = asyncio.get_running_loop()
        self._rx_at = self._loop.time()
        self._timers: list[asyncio.TimerHandle] = []
        self._tokens = float(service.settings.max_send_rate)
        self._tokens_at = self._loop.time()
        self._counted = False
        #: The user this session counts against (``--max-sessions-per-user``), once connected.
        self._signed_in: str | None = None
        #: The completion of the last frame whose RECEIPT waits (for its effect, storing a
        #: queue message or settling one, or for the frames before it): while it runs, every
        #: later frame's RECEIPT waits behind it, so RECEIPTs go out in the order frames came.
        self._last_completion: asyncio.Task[None] | None = None
        self._slow_limit = service.settings.slow_consumer_bytes
        #: Unread output past which the client is *behind* (:meth:`push`): half the budget, as
        #: the queue broker's flow control has it; the other half is room for everything else.
        self._behind_limit = self._slow_limit // 2
        self._frames_in = service.metrics.frames_in
        self._frames_out = service.metrics.frames_out

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Register the new connection, or refuse it when the node is full or closing."""
        service = self.service
        refused = service.refusal(self.address)
        if refused is not None:
            service.metrics.rejected_connections.inc()
            self.fail(refused, close_code=1013)
            return
        service.register(self)
        self._after(service.settings.login_timeout_s, self._login_timeout)

    def connection_lost(self) -> None:
        """The transport is gone: forget the session everywhere."""
        if self not in self.service.sessions:
            self.closed = True
            return
        self.closed = True
        service = self.service
        service.forget(self)
        if self._signed_in is not None:
            service.sign_out(self._signed_in)
        if self._counted:
            service.metrics.sessions.labels(self.transport_name).dec()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._unsubscribe_all()

    def _end(self, code: int = 1000) -> None:
        """Close the transport and end the subscriptions now: the session delivers nothing
        more, and a queue's unacked messages go back to its head at once, not when a lingering
        close lets the transport go (up to ``CLOSE_GRACE_S`` later, after a DISCONNECT)."""
        self.close(code)
        self._unsubscribe_all()

    def _unsubscribe_all(self) -> None:
        service = self.service
        for subscription in tuple(self.conn.subscriptions.values()):
            service.broker.unsubscribe(self, subscription)
            service.queues.unsubscribe(subscription)

    # -- input -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self._rx_at = self._loop.time()
        conn = self.conn
        conn.receive_data(data)
        try:
            if only_eols(data):
                # Heart-beats alone (or an empty WebSocket message): no frame to charge to the
                # rate bucket, so the input is charged instead, one token a read or message. A
                # client beating every interval spends a token now and then; a flood runs dry.
                self._take_token("a read or message of heart-beats alone counts as one")
            while (event := conn.next_event()) is not None:
                try:
                    effect = self._handle(event)
                except ProtocolError as exc:
                    # Refused by the server (ACL, auth, ...) rather than the parser: the ERROR
                    # still names the frame's receipt (SPEC §3 Errors).
                    if exc.receipt_id is None:
                        exc.receipt_id = event.receipt
                    raise
                if effect is not None or self._last_completion is not None:
                    self._complete_after(event, effect)
                    if isinstance(event, events.Disconnect):
                        break  # nothing after DISCONNECT counts
                    continue
                self._complete(event)
                # Out before the next event: CONNECTED and RECEIPTs must precede any MESSAGE
                # that handling a later frame of the same batch writes straight to the socket.
                self._flush()
        except ProtocolError as exc:
            self.fail(exc)
            return
        except Exception:
            self._internal_error()
            return
        self._flush()
        if conn.state is ConnectionState.CLOSED:
            self._end()

    def _on_frame(self, frame: Frame) -> None:
        self._frames_in.labels(frame.command.value).inc()
        self._take_token()

    def _take_token(self, counted: str = "") -> None:
        """Charge one client frame (or heart-beat-only input) to the ``--max-send-rate``
        bucket: refused with ERROR ``rate limit exceeded`` when it is empty."""
        now = self._loop.time()
        rate = self.service.settings.max_send_rate
        self._tokens = min(rate, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._tokens < 1:
            detail = f"limit is {rate:g} frames per second"
            raise LimitExceeded(
                "rate limit exceeded", f"{detail}; {counted}" if counted else detail
            )
        self._tokens -= 1

    def _handle(self, event: events.Event, group: object | None = None) -> Awaitable[object] | None:
        """Act on ``event``; an awaitable when its effect completes later (its RECEIPT waits).
        ``group``: the COMMIT it is part of."""
        if isinstance(event, events.Send):
            return self._on_send(event, group)
        if isinstance(event, events.Subscribe):
            return self._on_subscribe(event)
        if isinstance(event, events.Unsubscribe):
            self.service.broker.unsubscribe(self, event.subscription)
            self.service.queues.unsubscribe(event.subscription)
        elif isinstance(event, events.Ack):
            return self.service.queues.ack(event.subscription, event.message_ids)
        elif isinstance(event, events.Nack):
            return self.service.queues.nack(event.subscription, event.message_ids)
        elif isinstance(event, events.ConnectRequest):
            self._on_connect(event)
        elif isinstance(event, events.Commit):
            return self._on_commit(event)
        # Ack and Nack of a topic: topics are at-most-once, so settling a delivery only releases
        # the connection's bookkeeping, which ServerConnection already did (the queue broker
        # knows no topic subscription). Disconnect: complete() closes the connection, and
        # data_received() closes the transport after the RECEIPT. Settled: the connection did
        # it; only its RECEIPT is left, in its turn.
        return None

    def _complete(self, event: events.Event) -> None:
        """Send ``event``'s RECEIPT (a COMMIT's frames' first), now that it took effect."""
        self.conn.complete(event)
        receipts = int(event.receipt is not None)
        if isinstance(event, events.Commit):
            receipts += sum(held.receipt is not None for held in event.events)
        if receipts:
            self._frames_out.labels("RECEIPT").inc(receipts)

    def _complete_after(self, event: events.Event, effect: Awaitable[object] | None) -> None:
        """Complete ``event`` once ``effect`` is done and the frames before it completed; fail
        the session if the effect failed (a full queue, say)."""
        before = self._last_completion

        async def complete() -> None:
            try:
                if effect is not None:
                    await effect
                if before is not None:
                    await before
            except ProtocolError as exc:
                if exc.receipt_id is None:
                    exc.receipt_id = event.receipt
                self.fail(exc)
                return
            except Exception:
                self._internal_error()
                return
            if self.closed:
                return
            self._complete(event)
            self._flush()
            if self.conn.state is ConnectionState.CLOSED:
                self._end()

        task = self._last_completion = asyncio.create_task(complete())
        task.add_done_callback(self._completion_done)

    def _completion_done(self, task: asyncio.Task[None]) -> None:
        if self._last_completion is task:
            self._last_completion = None  # all before it are done too

    def _on_connect(self, event: events.ConnectRequest) -> None:
        service = self.service
        try:
            principal = service.tokens.from_stomp(event.passcode, event.authorization)
        except AuthenticationFailed as exc:
            raise AuthenticationRefused("authentication failed", str(exc)) from None
        if not principal.authenticated and not service.settings.anonymous_allowed:
            raise AuthenticationRefused("authentication failed", "credentials are required")
        if principal.name is not None:
            service.sign_in(principal.name)
            self._signed_in = principal.name
        self.principal = principal
        self.conn.accept(session=self.session_id, server=SERVER_NAME, user_name=principal.name)
        self._frames_out.labels("CONNECTED").inc()
        service.metrics.sessions.labels(self.transport_name).inc()
        self._counted = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self.conn.heartbeat_out_ms:
            self._every(self.conn.heartbeat_out_ms / 4000, self._beat_out)
        # A client may offer any interval up to 11 days; three of them longer than the idle
        # timeout would outlast it, so such a session is watched as one without heart-beats:
        # silent, and holding no subscription, it goes at --idle-timeout-s all the same.
        silence = 3 * self.conn.heartbeat_in_ms / 1000
        idle = service.settings.idle_timeout_s
        if silence and silence <= idle:
            self._watch_silence(silence, idle=False)
        else:
            self._watch_silence(idle, idle=True)

    def _on_commit(self, event: events.Commit) -> Awaitable[object] | None:
        """Act on a COMMIT's frames, in order: it completes once they all took effect. A SEND
        this session may not make refuses the whole COMMIT before any of its frames acts, and
        its queue SENDs are stored all or none (one ``group``)."""
        for held in event.events:
            if isinstance(held, events.Send):
                destination = self._allowed(check_send, held.destination, "send to")
                if destination.kind is Kind.APP:
                    self._app_command(destination.name, held.destination)
        effects = [
            effect for held in event.events if (effect := self._handle(held, event)) is not None
        ]
        return asyncio.gather(*effects) if effects else None

    def _on_send(self, event: events.Send, group: object | None) -> Awaitable[None] | None:
        destination = self._allowed(check_send, event.destination, "send to")
        if destination.kind is Kind.QUEUE:
            # Its RECEIPT means "stored".
            return self.service.queues.send(
                str(destination.key), tuple(event.headers), event.body, group=group
            )
        if destination.kind is Kind.APP:
            command, params = self._app_command(destination.name, event.destination)
            assert self.principal.name is not None  # /app needs a user (destinations.check_send)
            self.service.take_command(self.principal.name)
            return command(self, params, event.headers, event.body)
        self.service.broker.publish(event.destination, tuple(event.headers), event.body)
        return None

    def _app_command(
        self, name: str, destination: str
    ) -> tuple[AppCommand[StompSession], dict[str, str]]:
        """The ``/app`` command ``name`` and its parameters, or the ERROR when there is none."""
        resolved = self.service.app_commands.resolve(name)
        if resolved is None:
            raise ForbiddenDestination("forbidden destination", f"no command at {destination!r}")
        return resolved

    def _on_subscribe(self, event: events.Subscribe) -> Awaitable[object] | None:
        subscription = event.subscription
        route = self._allowed(subscription_route, subscription.destination, "subscribe to")
        classified = classify(subscription.destination)
        if classified is not None and classified.kind is Kind.QUEUE:
            # Its RECEIPT means "counted" (ERROR ``too many queues`` when one queue too many).
            return self.service.queues.subscribe(self, subscription, str(classified.key))
        self.service.broker.subscribe(self, subscription, route)
        listener = self.service.subscribe_listeners.get(classified.kind) if classified else None
        return None if listener is None else listener(self, subscription, route)

    def _allowed(self, rule: Callable[[Principal, str], T], destination: str, verb: str) -> T:
        """What ``rule`` makes of this principal using ``destination``, or the ERROR."""
        try:
            return rule(self.principal, destination)
        except Forbidden:
            raise ForbiddenDestination(
                "forbidden destination", f"you may not {verb} {destination!r}"
            ) from None

    # -- output ------------------------------------------------------------------------------

    # Output has one budget per session, ``--slow-consumer-bytes``: whatever the session queued
    # and the client has not read yet (broker MESSAGEs, RECEIPTs, CONNECTED, heart-beats). Every
    # write is followed by the same check, and a session over the budget is closed with ERROR
    # ``slow consumer`` (written past the budget: it is the last frame) and cut after
    # CLOSE_GRACE_S. The check is one call on the transport, so the fan-out stays a write and a
    # comparison per recipient.

    @property
    def gone(self) -> bool:
        """Closed, or about to be: the transport is closing (the peer left, and the session's
        ``connection_lost`` has not run yet), so what is written now is dropped unread."""
        return self.closed or self.transport.is_closing()

    def push(self, payload: bytes) -> bool:
        """Write a pre-framed broker payload (the fan-out hot path); whether the client is now
        behind: more than half the budget unread, from the same one look at the transport as
        the budget's (the seat map sends such a client no more deltas until it has read most of
        it: server/seat_stream.py)."""
        if self.closed:
            return False
        transport = self.transport
        try:
            transport.write(payload)  # type: ignore[attr-defined]
        except RuntimeError:  # uvloop: the connection is gone, and the session not told yet
            self.closed = True
            return False
        self._tx_seen = True
        queued: int = transport.get_write_buffer_size()  # type: ignore[attr-defined]
        if queued <= self._behind_limit:
            return False
        if queued > self._slow_limit:
            self._over_budget()
            return False
        return True

    def push_tracked(
        self, payload: bytes, subscription: events.Subscription, message_id: str
    ) -> bool:
        """Like :meth:`push`, for a subscription that must ACK what it receives."""
        if self.closed:
            return False
        try:
            self.conn.record_delivery(subscription, message_id)
        except ProtocolError as exc:
            self.fail(exc)
            return False
        return self.push(payload)

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed:
            self._send(data)

    def _send(self, data: bytes) -> None:
        """Write protocol bytes (CONNECTED, RECEIPT, heart-beats) within the output budget."""
        self.write(data)
        self._tx_seen = True
        if self.queued_bytes() > self._slow_limit:
            self._over_budget()

    def _over_budget(self) -> None:
        self.fail(SlowConsumer("slow consumer", "the client does not read fast enough"))

    @property
    def output_budget(self) -> int:
        """``--slow-consumer-bytes``: how much :meth:`queued_bytes` may reach (the queue broker
        sends no more while half of it is unread)."""
        return self._slow_limit

    def queued_bytes(self) -> int:
        """Output written for the client and not sent yet (what the budget bounds)."""
        return self.transport.get_write_buffer_size()  # type: ignore[attr-defined, no-any-return]

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Write protocol bytes (CONNECTED, RECEIPT, ERROR, heart-beats) to the client."""

    @abstractmethod
    def close(self, code: int = 1000) -> None:
        """Close the transport after flushing what was written."""

    def fail(self, error: ProtocolError, close_code: int | None = None) -> None:
        """Send ERROR for ``error`` and close (SPEC §3 Errors)."""
        if self.closed:
            return
        self.service.metrics.errors.labels(_metric_reason(error)).inc()
        self._frames_out.labels("ERROR").inc()
        log.info("session %s: ERROR %s (%s)", self.session_id, error.message, error.detail,
                 extra=session_extra(self.session_id))  # fmt: skip
        self.conn.fail(error)
        # Past the budget on purpose: the ERROR is the last thing the session writes.
        data = self.conn.data_to_send()
        if data:
            self.write(data)
        if close_code is None:
            close_code = 1001 if isinstance(error, ServerShutdown) else 1000
        self._end(close_code)

    # -- timers --------------------------------------------------------------------------------

    def _internal_error(self) -> None:
        """A bug of ours while handling the client's input: the whole traceback goes to the log,
        the client gets a generic ERROR (never our internals) and the session ends."""
        log.exception("internal error in session %s", self.session_id,
                      extra=session_extra(self.session_id))  # fmt: skip
        self.fail(ProtocolError("internal error", "the server failed; see its log"))

    def _after(self, delay: float, callback: Callable[[], None]) -> None:
        self._timers.append(self._loop.call_later(delay, callback))

    def _every(self, period: float, callback: Callable[[], None]) -> None:
        def tick() -> None:
            if self.closed:
                return
            callback()
            if not self.closed:
                self._timers[index] = self._loop.call_later(period, tick)

        index = len(self._timers)
        self._timers.append(self._loop.call_later(period, tick))

    def _login_timeout(self) -> None:
        if self.conn.state is not ConnectionState.CONNECTED:
            self.fail(Timeout("login timeout", "no CONNECT frame in time"))

    def _beat_out(self) -> None:
        # Runs every quarter interval: a beat goes out when nothing else did since the last
        # tick, so the client never waits more than half an interval for a byte (a flag, not a
        # time per write: writes are the fan-out's hot path). Ticking every half interval let
        # the silence reach a whole one: the first beat came just at the interval, on the bound.
        # The beat is a byte sent (``_send`` flags it), so an idle session beats every other
        # tick, every half interval, as the README says; clearing the flag after it doubled
        # the beats.
        if self._tx_seen:
            self._tx_seen = False
        else:
            self._send(self.conn.heartbeat())

    def _watch_silence(self, limit: float, *, idle: bool) -> None:
        """Close the session once the client has sent nothing for ``limit`` seconds: three
        negotiated heart-beat intervals (``heart-beat timeout``), or, without heart-beats,
        ``--idle-timeout-s`` while it holds no subscription (``idle timeout``).

        One timer, due when the limit would be reached counting from the last byte received,
        so the close comes at the limit itself, not up to an interval later."""

        def check() -> None:
            if self.closed:
                return
            quiet = self._loop.time() - self._rx_at
            if quiet >= limit:
                if not idle:
                    detail = "no data from the client for 3 intervals"
                    self.fail(Timeout("heart-beat timeout", detail))
                    return
                if not self.conn.subscriptions:
                    detail = f"no frame and no subscription for {limit:g} s"
                    self.fail(Timeout("idle timeout", detail))
                    return
                quiet = 0.0  # subscribed: not idle; look again a limit later
            self._timers[index] = self._loop.call_later(limit - quiet, check)

        index = len(self._timers)
        self._timers.append(self._loop.call_later(limit, check))


def _metric_reason(error: ProtocolError) -> str:
    """``concert_hub_errors_total``'s ``reason``: the error's short code, and for a limit which
    one (``too_many_connections``, ``rate_limit_exceeded`` …: a limit's message is one of a
    fixed few, never client text), since "limit" alone does not tell an operator what to raise."""
    if isinstance(error, LimitExceeded):
        return error.message.replace(" ", "_")
    return error.reason
