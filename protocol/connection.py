"""The server side of one STOMP connection, as a state machine.

Theory of operation
-------------------
The transport feeds received bytes to :meth:`ServerConnection.receive_data` and then pulls
:meth:`~ServerConnection.next_event` until it returns ``None``. Each event is something the
server must decide or do; when done it calls :meth:`~ServerConnection.complete` so the RECEIPT,
if one was asked for, follows the effect. Whatever the connection wants written (CONNECTED,
RECEIPT, ERROR, heart-beats) accumulates in an outbound buffer the transport drains with
:meth:`~ServerConnection.data_to_send`. MESSAGE frames do not pass through here: the broker
encodes them once for many recipients (:func:`protocol.codec.encode_message`) and tells the
connection only what it must remember for acknowledgement (:meth:`record_delivery`).

States::

    AWAITING_CONNECT --CONNECT/STOMP--> CONNECTING --accept()--> CONNECTED
    any state --ProtocolError / fail()--> CLOSED
    CONNECTED --DISCONNECT--> CLOSED (after its RECEIPT)

While CONNECTING the server authenticates; frames pipelined behind CONNECT stay buffered until it
accepts or fails the connection. A frame with no transition in the table at the end of
this module (``_TRANSITIONS``) is a protocol error naming the state and the command.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from protocol.codec import FrameParser, refuse_cr_in_headers, serialize
from protocol.errors import (
    LimitExceeded,
    LocalProtocolError,
    MalformedFrame,
    MissingHeader,
    ProtocolError,
    VersionMismatch,
)
from protocol.events import (
    Ack,
    AckMode,
    Commit,
    ConnectRequest,
    Disconnect,
    Event,
    Nack,
    Send,
    Settled,
    Subscribe,
    Subscription,
    Unsubscribe,
)
from protocol.frames import SUPPORTED_VERSIONS, Command, Frame, StompVersion
from protocol.limits import Limits


class ConnectionState(Enum):
    AWAITING_CONNECT = "awaiting-connect"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


#: Headers of SEND that belong to the exchange, not to the message (STOMP 1.2 §"SEND"), and
#: those the broker sets on a MESSAGE: a publisher's ``redelivered`` would pass for the
#: broker's (the first of repeated headers wins), on a first delivery or hiding a redelivery.
_SEND_PROTOCOL_HEADERS = frozenset(
    {"destination", "receipt", "transaction", "content-length", "message-id", "subscription",
     "ack", "redelivered"}
)  # fmt: skip

_VERSION_LIST = ",".join(v.value for v in SUPPORTED_VERSIONS)


def ack_id(subscription_id: str, message_id: str) -> str:
    """The STOMP 1.2 ``ack`` header of a MESSAGE: unique among a session's unacknowledged
    deliveries (a redelivery of a message to the same subscription has the same one, once the
    first delivery is settled; what tells them apart is the delivery number each records)."""
    return f"{message_id}/{subscription_id}"


def negotiate_heartbeat(server: tuple[int, int], client: tuple[int, int]) -> tuple[int, int]:
    """(server→client, client→server) intervals in ms (STOMP 1.2 §"Heart-beating")."""
    sx, sy = server
    cx, cy = client
    outgoing = 0 if sx == 0 or cy == 0 else max(sx, cy)
    incoming = 0 if cx == 0 or sy == 0 else max(cx, sy)
    return outgoing, incoming


def _parse_heartbeat(value: str | None) -> tuple[int, int]:
    if not value:
        return 0, 0
    # isdigit() alone admits digits int() rejects ("²"). No one needs an interval of 10**9 ms
    # (11 days) or more, and bounding it keeps int() working and the result a usable delay.
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(
        p.isascii() and p.isdigit() and len(p.lstrip("0")) <= 9 for p in parts
    ):
        raise MalformedFrame("invalid heart-beat header", f"heart-beat {value[:32]!r}")
    return int(parts[0].lstrip("0") or "0"), int(parts[1].lstrip("0") or "0")


def _buffered_size(frame: Frame) -> int:
    """What buffering ``frame`` in a transaction costs: its body and headers, in bytes (as
    characters: headers are decoded; close enough to bound the memory they hold)."""
    return len(frame.body) + sum(len(k) + len(v) + 2 for k, v in frame.headers)


class _Transaction:
    """An open transaction: the events it holds until COMMIT, and what they cost."""

    __slots__ = ("events", "size")

    def __init__(self) -> None:
        self.events: list[Send | Ack | Nack] = []
        self.size = 0


def _required(frame: Frame, name: str) -> str:
    value = frame.get(name)
    if value is None:
        article = "an" if name[0] in "aeiou" else "a"
        raise MissingHeader(
            f"missing header: {name}", f"{frame.command.value} requires {article} {name} header"
        )
    return value


class ServerConnection:
    """Protocol state of one client connection; no I/O."""

    # Thousands of these live at once: slots keep each one small.
    __slots__ = (
        "_acks",
        "_deliveries",
        "_out",
        "_parser",
        "_server_heart_beat",
        "_transaction_bytes",
        "_transaction_frames",
        "_transactions",
        "heartbeat_in_ms",
        "heartbeat_out_ms",
        "limits",
        "on_frame",
        "state",
        "subscriptions",
        "version",
    )

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        heart_beat: tuple[int, int] = (10000, 10000),
    ) -> None:
        self.limits = limits or Limits()
        self.state = ConnectionState.AWAITING_CONNECT
        self.version: StompVersion | None = None
        #: Negotiated intervals in ms, 0 meaning none; set when the CONNECT is read.
        self.heartbeat_out_ms = 0
        self.heartbeat_in_ms = 0
        self.subscriptions: dict[str, Subscription] = {}
        self._server_heart_beat = heart_beat
        self._parser = FrameParser(self.limits)
        self._out: list[bytes] = []
        self._transactions: dict[str, _Transaction] = {}
        self._transaction_frames = 0
        self._transaction_bytes = 0
        self._acks: dict[str, tuple[Subscription, str]] = {}
        self._deliveries = 0
        #: Observer of every frame read, before it is acted on (the server counts frames and
        #: applies its rate limit here); it may raise ProtocolError to refuse the frame.
        self.on_frame: Callable[[Frame], None] | None = None

    # -- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if self.state is not ConnectionState.CLOSED:
            self._parser.feed(data)

    @property
    def buffered(self) -> int:
        """Received bytes not yet consumed as frames."""
        return self._parser.buffered

    def next_event(self) -> Event | None:
        """The next event to act on, or ``None`` until more data (or accept()) comes.

        Raises :class:`~protocol.errors.ProtocolError` when the peer broke the protocol; the
        caller answers with :meth:`fail`.
        """
        while True:
            if self.state in (ConnectionState.CONNECTING, ConnectionState.CLOSED):
                return None
            frame = self._parser.next_frame()
            if frame is None:
                return None
            handler = _TRANSITIONS.get((self.state, frame.command))
            try:
                if self.on_frame is not None:
                    self.on_frame(frame)
                if handler is None:
                    raise self._no_transition(frame.command)
                event = handler(self, frame)
            except ProtocolError as exc:
                if exc.receipt_id is None:
                    exc.receipt_id = frame.get("receipt")
                raise
            if event is not None:
                return event

    def _no_transition(self, command: Command) -> ProtocolError:
        if self.state is ConnectionState.AWAITING_CONNECT:
            return MalformedFrame(
                "expected CONNECT", f"{command.value} is not allowed before CONNECT"
            )
        if command in (Command.CONNECT, Command.STOMP):
            return MalformedFrame("already connected", f"{command.value} sent twice")
        return MalformedFrame("unexpected frame", f"{command.value} is not a client frame")

    # -- output ------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes to write to the peer, in order; empties the outbound buffer."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def _emit(self, frame: Frame) -> None:
        self._out.append(serialize(frame, self.version or StompVersion.V1_0))

    def accept(self, *, session: str, server: str, user_name: str | None) -> None:
        """Answer the pending CONNECT with CONNECTED (STOMP 1.2 §"CONNECTED Frame")."""
        if self.state is not ConnectionState.CONNECTING:
            raise LocalProtocolError(f"accept() in state {self.state.value}")
        # STOMP 1.0 has no heart-beating: its intervals stay 0,0, and CONNECTED says so (as
        # RabbitMQ does), so every CONNECTED carries the header.
        headers = [
            ("version", (self.version or StompVersion.V1_0).value),
            ("heart-beat", f"{self.heartbeat_out_ms},{self.heartbeat_in_ms}"),
            ("session", session),
            ("server", server),
        ]
        if user_name is not None:
            headers.append(("user-name", user_name))
        self._emit(Frame(Command.CONNECTED, headers))
        self.state = ConnectionState.CONNECTED

    def fail(self, error: ProtocolError) -> None:
        """Send ERROR for ``error`` and close (STOMP 1.2 §"ERROR")."""
        if self.state is ConnectionState.CLOSED:
            return
        headers = [("message", error.message), *error.headers]
        if error.receipt_id is not None:
            headers.append(("receipt-id", error.receipt_id))
        body = error.detail.encode("utf-8")
        if body:
            headers.append(("content-type", "text/plain"))
        self._emit(Frame(Command.ERROR, headers, body))
        self._close()

    def complete(self, event: Event) -> None:
        """The server has carried ``event`` out: send its RECEIPT if one was asked for."""
        if self.state is ConnectionState.CLOSED:
            return
        if isinstance(event, Commit):
            for held in event.events:
                if held.receipt is not None:
                    self._receipt(held.receipt)
        if event.receipt is not None and not isinstance(event, ConnectRequest):
            self._receipt(event.receipt)
        if isinstance(event, Disconnect):
            self._close()

    def _receipt(self, receipt: str) -> None:
        self._emit(Frame(Command.RECEIPT, [("receipt-id", receipt)]))

    @staticmethod
    def _settled(frame: Frame) -> Settled | None:
        """A frame that took effect here: the event for its RECEIPT, if it asked for one."""
        receipt = frame.get("receipt")
        return None if receipt is None else Settled(receipt)

    def heartbeat(self) -> bytes:
        """One heart-beat EOL (STOMP 1.2 §"Heart-beating")."""
        return b"\n"

    def _close(self) -> None:
        self.state = ConnectionState.CLOSED
        self._transactions.clear()
        self._transaction_frames = 0
        self._transaction_bytes = 0
        self._acks.clear()

    # -- deliveries --------------------------------------------------------------------------

    @property
    def unacked(self) -> int:
        """Deliveries awaiting an ACK or NACK, on all subscriptions (at most
        ``limits.max_unacked``: one more is refused by :meth:`record_delivery`)."""
        return len(self._acks)

    def record_delivery(self, subscription: Subscription, message_id: str) -> None:
        """Remember a MESSAGE sent on a client-ack subscription until it is ACKed or NACKed."""
        if len(self._acks) >= self.limits.max_unacked:
            raise LimitExceeded(
                "too many unacknowledged messages",
                f"limit is {self.limits.max_unacked}; ACK or NACK what you received",
            )
        self._deliveries += 1
        subscription.pending[message_id] = self._deliveries
        self._acks[ack_id(subscription.id, message_id)] = (subscription, message_id)

    # -- frame handlers ----------------------------------------------------------------------

    def _on_connect(self, frame: Frame) -> Event:
        accepted = frame.get("accept-version")
        if accepted is None:
            version = StompVersion.V1_0
        else:
            offered = {v.strip() for v in accepted.split(",")}
            common = [v for v in SUPPORTED_VERSIONS if v.value in offered]
            if not common:
                raise VersionMismatch(
                    "unsupported protocol version",
                    f"supported versions are {_VERSION_LIST}",
                    headers=(("version", _VERSION_LIST),),
                )
            version = common[-1]
        if version is StompVersion.V1_2:
            # The parser read this frame before it knew the version; 1.2's grammar holds now.
            refuse_cr_in_headers(frame.headers)
        self.version = version
        self._parser.version = version
        if version is not StompVersion.V1_0:
            client_beat = _parse_heartbeat(frame.get("heart-beat"))
            self.heartbeat_out_ms, self.heartbeat_in_ms = negotiate_heartbeat(
                self._server_heart_beat, client_beat
            )
        self.state = ConnectionState.CONNECTING
        return ConnectRequest(
            # CONNECT is answered by CONNECTED, never a RECEIPT (:meth:`complete`); a receipt it
            # carries names its ERROR, as for any refused frame.
            receipt=frame.get("receipt"),
            version=version,
            login=frame.get("login"),
            passcode=frame.get("passcode"),
            authorization=frame.get("Authorization") or frame.get("authorization"),
            host=frame.get("host"),
            headers=frame.headers,
        )

    def _in_transaction(self, frame: Frame, event: Send | Ack | Nack) -> Event | None:
        """Buffer ``event`` if ``frame`` names a transaction; else return it to act on now."""
        name = frame.get("transaction")
        if name is None:
            return event
        transaction = self._transactions.get(name)
        if transaction is None:
            raise MalformedFrame("unknown transaction", f"transaction {name!r} is not open")
        limits = self.limits
        if self._transaction_frames >= limits.max_transaction_frames:
            raise LimitExceeded(
                "transaction too large",
                f"at most {limits.max_transaction_frames} frames in open transactions",
            )
        size = _buffered_size(frame)
        if self._transaction_bytes + size > limits.max_transaction_bytes:
            raise LimitExceeded(
                "transaction too large",
                f"at most {limits.max_transaction_bytes} bytes in open transactions",
            )
        self._transaction_frames += 1
        self._transaction_bytes += size
        transaction.size += size
        # The frame takes effect at COMMIT, and so its RECEIPT comes then, right after the effect
        # (as RabbitMQ does); an ABORT drops the frame and its receipt with it.
        transaction.events.append(event)
        return None

    def _on_send(self, frame: Frame) -> Event | None:
        destination = _required(frame, "destination")
        headers = [(k, v) for k, v in frame.headers if k not in _SEND_PROTOCOL_HEADERS]
        event = Send(frame.get("receipt"), destination, headers, frame.body)
        return self._in_transaction(frame, event)

    def _on_subscribe(self, frame: Frame) -> Event:
        destination = _required(frame, "destination")
        if self.version is StompVersion.V1_0:
            sub_id = frame.get("id") or destination
        else:
            sub_id = _required(frame, "id")
        if sub_id in self.subscriptions:
            raise MalformedFrame("duplicate subscription id", f"subscription {sub_id!r} exists")
        if len(self.subscriptions) >= self.limits.max_subscriptions:
            raise LimitExceeded(
                "too many subscriptions", f"limit is {self.limits.max_subscriptions} per session"
            )
        mode = frame.get("ack") or "auto"
        try:
            ack = AckMode(mode)
        except ValueError:
            raise MalformedFrame("invalid ack mode", f"ack {mode!r}") from None
        subscription = Subscription(sub_id, destination, ack, frame.headers)
        self.subscriptions[sub_id] = subscription
        return Subscribe(frame.get("receipt"), subscription)

    def _on_unsubscribe(self, frame: Frame) -> Event | None:
        if self.version is StompVersion.V1_0:
            # STOMP 1.0: by ``id``, or by ``destination``: the subscription to it, whatever id
            # it was given (one without an id has its destination as id).
            sub_id = frame.get("id")
            if sub_id is None:
                destination = _required(frame, "destination")
                sub_id = next(
                    (s.id for s in self.subscriptions.values() if s.destination == destination),
                    destination,
                )
        else:
            sub_id = _required(frame, "id")
        subscription = self.subscriptions.pop(sub_id, None)
        if subscription is None:
            # Like RabbitMQ: unsubscribing what is not subscribed is a no-op, not an error.
            return self._settled(frame)
        for message_id in subscription.pending:
            self._acks.pop(ack_id(subscription.id, message_id), None)
        return Unsubscribe(frame.get("receipt"), subscription)

    def _on_ack(self, frame: Frame) -> Event | None:
        subscription, message_id = self._find_delivery(frame)
        if subscription.ack is AckMode.CLIENT:
            # Cumulative (STOMP 1.2 §"SUBSCRIBE ack Header"): everything up to this message.
            covered = []
            for mid in subscription.pending:
                covered.append(mid)
                if mid == message_id:
                    break
        else:
            covered = [message_id]
        receipt = frame.get("receipt")
        deliveries = [subscription.pending[mid] for mid in covered]
        if frame.command is Command.ACK:
            event: Ack | Nack = Ack(receipt, subscription, covered, deliveries)
        else:
            event = Nack(receipt, subscription, covered, deliveries)
        if frame.get("transaction") is None:
            self._settle(event)
        # Inside a transaction the delivery stays unacknowledged until COMMIT (and again
        # after ABORT), as STOMP 1.2 §"BEGIN" says of every frame in a transaction.
        return self._in_transaction(frame, event)

    def _settle(self, event: Ack | Nack) -> None:
        """Forget the deliveries an ACK/NACK covers (those still pending at this point: one
        settled since, or made again since, is left alone)."""
        subscription = event.subscription
        pending = subscription.pending
        still = [
            (mid, delivery)
            for mid, delivery in zip(event.message_ids, event.deliveries, strict=True)
            if pending.get(mid) == delivery
        ]
        for mid, _ in still:
            del pending[mid]
            self._acks.pop(ack_id(subscription.id, mid), None)
        event.message_ids = [mid for mid, _ in still]
        event.deliveries = [delivery for _, delivery in still]

    def _find_delivery(self, frame: Frame) -> tuple[Subscription, str]:
        """Resolve an ACK/NACK to the delivery it settles, per version's headers."""
        unknown = MalformedFrame(
            "unknown ack id", "no unacknowledged message matches this ACK/NACK"
        )
        if self.version is StompVersion.V1_2:
            found = self._acks.get(_required(frame, "id"))
            if found is None:
                raise unknown
            return found
        message_id = _required(frame, "message-id")
        sub_id = frame.get("subscription")
        if sub_id is None and self.version is StompVersion.V1_1:
            raise MissingHeader(
                "missing header: subscription",
                f"{frame.command.value} requires a subscription header",
            )
        for subscription in self.subscriptions.values():
            if (sub_id is None or subscription.id == sub_id) and message_id in subscription.pending:
                return subscription, message_id
        raise unknown

    def _on_begin(self, frame: Frame) -> Settled | None:
        name = _required(frame, "transaction")
        if name in self._transactions:
            raise MalformedFrame("transaction already open", f"transaction {name!r}")
        if len(self._transactions) >= self.limits.max_transactions:
            raise LimitExceeded(
                "too many transactions",
                f"limit is {self.limits.max_transactions} open transactions per session",
            )
        self._transactions[name] = _Transaction()
        return self._settled(frame)

    def _end_transaction(self, frame: Frame) -> tuple[str, list[Send | Ack | Nack]]:
        """Close the frame's transaction; returns its name and what it buffered."""
        name = _required(frame, "transaction")
        transaction = self._transactions.pop(name, None)
        if transaction is None:
            raise MalformedFrame("unknown transaction", f"transaction {name!r} is not open")
        self._transaction_frames -= len(transaction.events)
        self._transaction_bytes -= transaction.size
        return name, transaction.events

    def _on_commit(self, frame: Frame) -> Event:
        name, buffered = self._end_transaction(frame)
        for event in buffered:
            if isinstance(event, Ack | Nack):
                self._settle(event)
        return Commit(frame.get("receipt"), name, buffered)

    def _on_abort(self, frame: Frame) -> Settled | None:
        self._end_transaction(frame)
        return self._settled(frame)

    def _on_disconnect(self, frame: Frame) -> Event:
        # Open transactions are aborted (STOMP 1.2 §"DISCONNECT" / §"BEGIN").
        self._transactions.clear()
        self._transaction_frames = 0
        self._transaction_bytes = 0
        return Disconnect(frame.get("receipt"))


#: The transition table: (state, command) → handler. A frame with no entry is a protocol error
#: (see ``ServerConnection._no_transition``).
_TRANSITIONS: dict[
    tuple[ConnectionState, Command], Callable[[ServerConnection, Frame], Event | None]
] = {
    # state                            command              handler
    (ConnectionState.AWAITING_CONNECT, Command.CONNECT): ServerConnection._on_connect,
    (ConnectionState.AWAITING_CONNECT, Command.STOMP): ServerConnection._on_connect,
    (ConnectionState.CONNECTED, Command.SEND): ServerConnection._on_send,
    (ConnectionState.CONNECTED, Command.SUBSCRIBE): ServerConnection._on_subscribe,
    (ConnectionState.CONNECTED, Command.UNSUBSCRIBE): ServerConnection._on_unsubscribe,
    (ConnectionState.CONNECTED, Command.ACK): ServerConnection._on_ack,
    (ConnectionState.CONNECTED, Command.NACK): ServerConnection._on_ack,
    (ConnectionState.CONNECTED, Command.BEGIN): ServerConnection._on_begin,
    (ConnectionState.CONNECTED, Command.COMMIT): ServerConnection._on_commit,
    (ConnectionState.CONNECTED, Command.ABORT): ServerConnection._on_abort,
    (ConnectionState.CONNECTED, Command.DISCONNECT): ServerConnection._on_disconnect,
}
