"""The client side of one STOMP connection, sans I/O.

Theory of operation
-------------------
The caller asks for client frames by name (:meth:`ClientConnection.connect`, ``subscribe``,
``send``, ``ack`` …); each is serialized by :func:`protocol.codec.serialize` for the version in
use and queued, and the transport drains the queue with :meth:`~ClientConnection.data_to_send`.
Bytes received from the server go to :meth:`~ClientConnection.receive_data`, which returns what
arrived as events: :class:`Connected`, :class:`Message`, :class:`Receipt`, :class:`Error` and
:class:`HeartBeat`. The same core serves the asyncio client (``concert_hub_client``) and the
tests' blocking peers.

Receiving is built for a process that reads many connections at once (the fan-out benchmark
holds 10,000): frame boundaries are found by byte search (the blank line closing the header
section, then ``content-length`` or the NUL, STOMP 1.2 §"Augmented BNF"), and a frame's headers
are decoded by the codec's :func:`~protocol.codec.decode_head`, with the escaping of the version
in force, only when first read. A reader that wants only a MESSAGE's body pays for no header
decoding. The search is bounded by :class:`~protocol.limits.Limits` like the server's parser.

The reader is lenient about order, strict about syntax: a test peer may have written its CONNECT
as raw bytes, so CONNECTED is accepted whenever it comes and sets the version; a frame that is not
a server frame, a bad ``content-length`` or an oversized frame raises a
:class:`~protocol.errors.ProtocolError`. After an ERROR the server closes the connection
(STOMP 1.2 §"ERROR"), so :attr:`ClientConnection.closed` turns true.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from protocol.codec import decode_head, serialize
from protocol.connection import negotiate_heartbeat
from protocol.errors import (
    FrameTooLarge,
    HeaderTooLarge,
    MalformedFrame,
    UnknownCommand,
    VersionMismatch,
)
from protocol.frames import SUPPORTED_VERSIONS, Command, Frame, StompVersion
from protocol.limits import Limits

Headers = Iterable[tuple[str, str]]
#: How a received frame's headers are to be decoded: the limits and the version in force.
Decoding = tuple[Limits, StompVersion | None]

#: What a client accepts by default: frames from a trusted server may be larger than a client's.
CLIENT_LIMITS = Limits(max_frame_bytes=16 << 20, max_headers=1024, max_header_bytes=1 << 20)

_CONTENT_LENGTH = b"\ncontent-length:"


class ReceivedFrame:
    """A frame from the server; its headers are decoded on first use.

    ``raw`` holds the frame's bytes exactly as received (command to NUL), so a test can look at
    the wire form, e.g. how a header value was escaped.
    """

    # Built once per frame received, 10,000s of times a second in the fan-out benchmark: three
    # slots set here, the parsed frame only once someone reads a header.
    __slots__ = ("_body_start", "_decoding", "_frame", "raw")

    command: Command
    _frame: Frame  # unset until first read

    def __init__(self, raw: bytes, body_start: int, decoding: Decoding) -> None:
        self.raw = raw
        self._body_start = body_start
        self._decoding = decoding

    @property
    def version(self) -> StompVersion | None:
        """The version whose escaping the headers use (``None``: before CONNECTED)."""
        return self._decoding[1]

    @property
    def body(self) -> bytes:
        return self.raw[self._body_start : -1]

    @property
    def frame(self) -> Frame:
        """The frame parsed by the codec (headers unescaped per :attr:`version`)."""
        try:
            return self._frame
        except AttributeError:
            pass
        raw, start = self.raw, self._body_start
        # The header section ends before the blank line: "\n\n", or "\n\r\n".
        end = start - 3 if raw[start - 3 : start] == b"\n\r\n" else start - 2
        limits, version = self._decoding
        command, headers = decode_head(raw[:end], version, limits)
        frame = self._frame = Frame(command, headers, raw[start:-1])
        return frame

    @property
    def headers(self) -> list[tuple[str, str]]:
        return self.frame.headers

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (STOMP 1.2 §"Repeated Header Entries")."""
        return self.frame.get(name, default)

    def peek(self, name: str) -> str | None:
        """The first value of header ``name`` read straight from the wire, without decoding
        the frame's other headers: for a hot path reading a header whose values never need
        unescaping (an id, a number; an escaped value reads as sent). The journey benchmark
        reads ``subscription`` and ``seq`` of every seat delta of 10,000 sessions; decoding
        every header of each took a third of its client's CPU."""
        raw, end = self.raw, self._body_start
        key = b"\n" + name.encode() + b":"
        at = raw.find(key, 0, end)
        if at < 0:
            return None
        at += len(key)
        return raw[at : raw.find(b"\n", at, end)].rstrip(b"\r").decode()

    def __getitem__(self, name: str) -> str:
        value = self.frame.get(name)
        if value is None:
            raise KeyError(f"{self.command} has no {name!r} header: {self.headers}")
        return value

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.raw[:200]!r}>"


class HeaderValue:
    """A read-only frame attribute: the first value of one header, ``None`` when absent."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, frame: ReceivedFrame, owner: type[ReceivedFrame] | None = None) -> str | None:
        return frame.get(self.name)


class Connected(ReceivedFrame):
    __slots__ = ()
    command = Command.CONNECTED


class Message(ReceivedFrame):
    __slots__ = ()
    command = Command.MESSAGE
    subscription = HeaderValue("subscription")
    message_id = HeaderValue("message-id")
    destination = HeaderValue("destination")


class Receipt(ReceivedFrame):
    __slots__ = ()
    command = Command.RECEIPT
    receipt_id = HeaderValue("receipt-id")


class Error(ReceivedFrame):
    __slots__ = ()
    command = Command.ERROR
    #: The ``message`` header: the short reason (the body has the detail).
    message = HeaderValue("message")


class HeartBeat:
    """One EOL between frames (STOMP 1.2 §"Heart-beating")."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<HeartBeat>"


HEART_BEAT = HeartBeat()

Event = ReceivedFrame | HeartBeat

_SERVER_FRAMES: tuple[tuple[bytes, type[ReceivedFrame]], ...] = (
    (b"MESSAGE", Message),
    (b"RECEIPT", Receipt),
    (b"CONNECTED", Connected),
    (b"ERROR", Error),
)


def _frame_class(buf: bytes, start: int, head_end: int) -> type[ReceivedFrame]:
    line_end = buf.find(b"\n", start, head_end + 1)
    command = buf[start:line_end].rstrip(b"\r")
    for name, cls in _SERVER_FRAMES:
        if command == name:
            return cls
    shown = command[:32].decode("utf-8", "replace")
    raise UnknownCommand("unknown command", f"not a server frame: {shown!r}")


def _parse_heart_beat(value: str | None) -> tuple[int, int]:
    """``heart-beat`` of CONNECTED as (sx, sy); absent (STOMP 1.0) means no heart-beats."""
    if not value:
        return 0, 0
    try:
        sx, sy = (int(part) for part in value.split(","))
    except ValueError:
        raise MalformedFrame("invalid heart-beat header", f"heart-beat {value[:32]!r}") from None
    return sx, sy


class ClientConnection:
    """Protocol state of one client connection; no I/O."""

    __slots__ = (
        "_buffer",
        "_decoding",
        "_out",
        "_send_version",
        "closed",
        "heart_beat",
        "heartbeat_in_ms",
        "heartbeat_out_ms",
        "limits",
        "on_message",
        "version",
    )

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or CLIENT_LIMITS
        #: The version the server chose (from CONNECTED); ``None`` until then.
        self.version: StompVersion | None = None
        #: What this client offered in CONNECT as (cx, cy) in ms.
        self.heart_beat = (0, 0)
        #: Negotiated intervals in ms, 0 meaning none: how often this client must send
        #: something, and how long the server may stay silent (STOMP 1.2 §"Heart-beating").
        self.heartbeat_out_ms = 0
        self.heartbeat_in_ms = 0
        self.closed = False
        #: Where MESSAGEs go as they are read, instead of into :meth:`receive_data`'s list: a
        #: reader of thousands of connections saves a list entry and a type test per message.
        self.on_message: Callable[[Message], None] | None = None
        # Frames written before CONNECTED arrives are escaped for the best version offered.
        self._send_version = StompVersion.V1_2
        self._buffer = b""
        self._out: list[bytes] = []
        self._decoding: Decoding = (self.limits, None)

    # -- sending -------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued for the server since the last call."""
        out, self._out = self._out, []
        return b"".join(out)

    def _emit(self, command: Command, headers: list[tuple[str, str]], body: bytes = b"") -> None:
        # No STOMP version can carry a NUL in a header (it ends the frame, and servers refuse
        # it): say so here, to the caller, rather than lose the connection to an ERROR.
        for name, value in headers:
            if "\x00" in name or "\x00" in value:
                raise ValueError(f"a STOMP header cannot hold a NUL byte: {name!r}")
        self._out.append(serialize(Frame(command, headers, body), self._send_version))

    @staticmethod
    def _with(headers: list[tuple[str, str]], **optional: str | None) -> list[tuple[str, str]]:
        """``headers`` plus every ``optional`` header that has a value (``_`` → ``-``)."""
        headers += [(k.replace("_", "-"), v) for k, v in optional.items() if v is not None]
        return headers

    def connect(
        self,
        *,
        host: str = "/",
        accept_version: Sequence[str] = ("1.2",),
        login: str | None = None,
        passcode: str | None = None,
        heart_beat: tuple[int, int] = (0, 0),
        headers: Headers = (),
        command: Command = Command.CONNECT,
    ) -> None:
        """CONNECT (or its 1.2 alias STOMP), never escaped (STOMP 1.2 §"CONNECT or STOMP")."""
        self.heart_beat = heart_beat
        offered = [StompVersion(v) for v in accept_version]
        self._send_version = max(offered, key=list(StompVersion).index, default=StompVersion.V1_0)
        frame_headers = [("accept-version", ",".join(accept_version)), ("host", host)]
        frame_headers.append(("heart-beat", f"{heart_beat[0]},{heart_beat[1]}"))
        self._with(frame_headers, login=login, passcode=passcode)
        self._emit(command, [*frame_headers, *headers])

    def subscribe(
        self,
        destination: str,
        sub_id: str,
        *,
        ack: str = "auto",
        receipt: str | None = None,
        headers: Headers = (),
    ) -> None:
        frame_headers = [("id", sub_id), ("destination", destination), ("ack", ack)]
        self._emit(Command.SUBSCRIBE, [*self._with(frame_headers, receipt=receipt), *headers])

    def unsubscribe(self, sub_id: str, *, receipt: str | None = None) -> None:
        self._emit(Command.UNSUBSCRIBE, self._with([("id", sub_id)], receipt=receipt))

    def send(
        self,
        destination: str,
        body: bytes = b"",
        *,
        content_type: str | None = None,
        receipt: str | None = None,
        transaction: str | None = None,
        headers: Headers = (),
    ) -> None:
        """SEND; ``content-length`` is added for a non-empty body (bodies may hold NUL)."""
        frame_headers = self._with(
            [("destination", destination)],
            content_type=content_type,
            receipt=receipt,
            transaction=transaction,
        )
        self._emit(Command.SEND, [*frame_headers, *headers], body)

    def _settle(
        self,
        command: Command,
        message: Message,
        transaction: str | None,
        receipt: str | None,
    ) -> None:
        # STOMP 1.2 acknowledges the MESSAGE's ``ack`` header as ``id``; 1.1 names the message
        # and its subscription; 1.0 the message alone (§"ACK" of each version).
        if self.version is StompVersion.V1_2:
            headers = [("id", message["ack"])]
        else:
            headers = [("message-id", message["message-id"])]
            if self.version is StompVersion.V1_1:
                headers.append(("subscription", message["subscription"]))
        self._emit(command, self._with(headers, transaction=transaction, receipt=receipt))

    def ack(
        self, message: Message, *, transaction: str | None = None, receipt: str | None = None
    ) -> None:
        self._settle(Command.ACK, message, transaction, receipt)

    def nack(
        self, message: Message, *, transaction: str | None = None, receipt: str | None = None
    ) -> None:
        self._settle(Command.NACK, message, transaction, receipt)

    def begin(self, transaction: str, *, receipt: str | None = None) -> None:
        self._emit(Command.BEGIN, self._with([("transaction", transaction)], receipt=receipt))

    def commit(self, transaction: str, *, receipt: str | None = None) -> None:
        self._emit(Command.COMMIT, self._with([("transaction", transaction)], receipt=receipt))

    def abort(self, transaction: str, *, receipt: str | None = None) -> None:
        self._emit(Command.ABORT, self._with([("transaction", transaction)], receipt=receipt))

    def disconnect(self, *, receipt: str | None = None) -> None:
        self._emit(Command.DISCONNECT, self._with([], receipt=receipt))

    def heartbeat(self) -> None:
        """One heart-beat EOL (STOMP 1.2 §"Heart-beating")."""
        self._out.append(b"\n")

    # -- receiving -----------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame received so far."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> list[Event]:
        """The server frames (and heart-beats) completed by ``data``, in order; MESSAGEs go to
        :attr:`on_message` instead when it is set."""
        buf = self._buffer + data if self._buffer else data
        size = len(buf)
        pos = 0
        events: list[Event] = []
        max_head, max_frame = self.limits.max_header_bytes, self.limits.max_frame_bytes
        on_message = self.on_message
        while pos < size:
            first = buf[pos]
            if first == 0x0A:
                events.append(HEART_BEAT)
                pos += 1
                continue
            if first == 0x0D:
                if pos + 1 == size:
                    break
                if buf[pos + 1] != 0x0A:
                    raise MalformedFrame("malformed frame", "CR without LF between frames")
                events.append(HEART_BEAT)
                pos += 2
                continue
            # The header section ends at the first empty line: "\n\n" or "\n\r\n".
            head_end = buf.find(b"\n\n", pos)
            # A CR before that (rare: servers write LF) may start an earlier "\n\r\n", which
            # may end on the first LF of that "\n\n" (a CRLF frame whose body starts with LF).
            limit = head_end + 1 if head_end >= 0 else size
            crlf = buf.find(b"\n\r\n", pos, limit) if buf.find(b"\r", pos, limit) >= 0 else -1
            if crlf >= 0:
                head_end, body_start = crlf, crlf + 3
            elif head_end >= 0:
                body_start = head_end + 2
            else:
                if size - pos > max_head + 2:
                    raise HeaderTooLarge("header section too large", f"limit is {max_head} bytes")
                break
            if head_end - pos > max_head:
                raise HeaderTooLarge("header section too large", f"limit is {max_head} bytes")
            length_at = buf.find(_CONTENT_LENGTH, pos, head_end)
            if length_at >= 0:
                line_end = buf.find(b"\n", length_at + 1, head_end + 1)
                value = buf[length_at + 16 : line_end]  # 16: len(_CONTENT_LENGTH)
                if not value.isdigit() and not (value := value.rstrip(b"\r")).isdigit():
                    raise MalformedFrame("invalid content-length", f"content-length {value!r}")
                if len(value) > 12:
                    raise FrameTooLarge("frame too large", f"content-length {value[:20]!r}")
                end = body_start + int(value)
                if end - pos > max_frame:
                    raise FrameTooLarge("frame too large", f"limit is {max_frame} bytes")
                if end >= size:
                    break
                if buf[end] != 0:
                    raise MalformedFrame("malformed frame", "no NUL after content-length body")
            else:
                end = buf.find(b"\x00", body_start)
                if end < 0:
                    if size - pos > max_frame:
                        raise FrameTooLarge("frame too large", f"limit is {max_frame} bytes")
                    break
            if buf.startswith(b"MESSAGE\n", pos):
                raw = buf if pos == 0 and end + 1 == size else buf[pos : end + 1]
                message = Message(raw, body_start - pos, self._decoding)
                if on_message is not None:
                    on_message(message)
                else:
                    events.append(message)
            else:
                cls = _frame_class(buf, pos, head_end)
                event = cls(buf[pos : end + 1], body_start - pos, self._decoding)
                self._on_frame(event)
                events.append(event)
            pos = end + 1
        self._buffer = buf[pos:] if pos < size else b""
        return events

    def _on_frame(self, event: ReceivedFrame) -> None:
        if isinstance(event, Connected):
            # CONNECTED is never escaped; without a version header the server speaks 1.0.
            version = event.get("version") or StompVersion.V1_0
            if version not in SUPPORTED_VERSIONS:
                raise VersionMismatch("unsupported protocol version", f"CONNECTED {version!r}")
            self.version = StompVersion(version)
            self._send_version = self.version
            self._decoding = (self.limits, self.version)
            server = _parse_heart_beat(event.get("heart-beat"))
            self.heartbeat_in_ms, self.heartbeat_out_ms = negotiate_heartbeat(
                server, self.heart_beat
            )
        elif isinstance(event, Error):
            self.closed = True
