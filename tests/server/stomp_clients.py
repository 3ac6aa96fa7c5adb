"""STOMP clients for the broker tests: stomp.py with a collecting listener, and raw peers.

* :class:`Collector` is a stomp.py listener that records every CONNECTED, MESSAGE, RECEIPT,
  ERROR, heart-beat and disconnect, and lets a test wait for one with a timeout.
* :func:`open_stomp` connects stomp.py over raw TCP (STOMP 1.0, 1.1 or 1.2) or over WebSocket
  (``stomp.WSConnection``, always 1.2) without ever blocking forever.
* :class:`RawTcp` and :class:`RawWs` are hand-driven peers for what stomp.py cannot send:
  malformed bytes, CR-LF line ends, split frames, silence. They read through the project's own
  client cores (``protocol.client`` for STOMP, ``concert_hub_client.websocket`` for RFC 6455),
  frame by frame until ERROR or close, always with a deadline.
* :class:`Witness` is a publisher/subscriber pair already connected to a server, used to show
  that another session still works after one misbehaved.

Every wait here has a timeout so a broken server fails a test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self
from urllib.parse import urlsplit

import stomp
import stomp.utils
from prometheus_client.parser import text_string_to_metric_families

from concert_hub_client.websocket import Opcode, WebSocketClient
from protocol.client import ClientConnection, Error, HeartBeat, ReceivedFrame
from protocol.codec import escape, serialize
from protocol.frames import Command, StompVersion
from protocol.frames import Frame as ProtocolFrame
from tests.protocol.client import wire

DEFAULT_TIMEOUT = 5.0


class ServerLike(Protocol):
    http_port: int
    stomp_port: int
    host: str

    def token(self, user: str, role: str = "user", ttl: int = 3600) -> str: ...

    def log(self) -> str: ...


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def topic(prefix: str = "test") -> str:
    """A fresh generic topic, so tests sharing the session server never see each other."""
    return f"/topic/{unique(prefix)}"


# -------------------------------------------------------------------------------------------
# stomp.py
# -------------------------------------------------------------------------------------------


class Collector(stomp.ConnectionListener):  # type: ignore[misc]  # stomp.py is untyped
    """Records what a stomp.py connection receives; every wait has a timeout."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.frames: list[tuple[str, stomp.utils.Frame | None]] = []
        self._taken: set[int] = set()
        self.heartbeats: list[float] = []
        self.disconnected = False

    # -- listener callbacks (stomp.py's receiver thread) --

    def _add(self, kind: str, frame: stomp.utils.Frame | None) -> None:
        with self._cond:
            self.frames.append((kind, frame))
            if kind == "DISCONNECTED":
                self.disconnected = True
            self._cond.notify_all()

    def on_connected(self, frame: stomp.utils.Frame) -> None:
        self._add("CONNECTED", frame)

    def on_message(self, frame: stomp.utils.Frame) -> None:
        self._add("MESSAGE", frame)

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        self._add("RECEIPT", frame)

    def on_error(self, frame: stomp.utils.Frame) -> None:
        self._add("ERROR", frame)

    def on_heartbeat(self) -> None:
        with self._cond:
            self.heartbeats.append(time.monotonic())
            self._cond.notify_all()

    def on_disconnected(self) -> None:
        self._add("DISCONNECTED", None)

    # -- test side --

    def describe(self) -> str:
        with self._cond:
            shown = [
                f"{kind} {dict(frame.headers)} {str(frame.body)[:80]!r}" if frame else kind
                for kind, frame in self.frames[-20:]
            ]
        return "\n  ".join(shown) or "(nothing received)"

    def _find(
        self, kind: str, predicate: Callable[[stomp.utils.Frame], bool] | None
    ) -> stomp.utils.Frame | None:
        for index, (k, frame) in enumerate(self.frames):
            if index in self._taken or k != kind:
                continue
            if kind != "DISCONNECTED" and predicate is not None and not predicate(frame):
                continue
            self._taken.add(index)
            return frame or stomp.utils.Frame("DISCONNECTED")
        return None

    def wait(
        self,
        kind: str,
        timeout: float = DEFAULT_TIMEOUT,
        predicate: Callable[[stomp.utils.Frame], bool] | None = None,
    ) -> stomp.utils.Frame:
        """The oldest not yet taken frame of ``kind`` (matching ``predicate``); mark it taken."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._find(kind, predicate)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no {kind} within {timeout}s; received:\n  {self.describe()}"
                    )
                self._cond.wait(left)

    def receipt(self, receipt_id: str, timeout: float = DEFAULT_TIMEOUT) -> stomp.utils.Frame:
        return self.wait("RECEIPT", timeout, lambda f: f.headers.get("receipt-id") == receipt_id)

    def message(
        self, timeout: float = DEFAULT_TIMEOUT, body: str | None = None
    ) -> stomp.utils.Frame:
        return self.wait("MESSAGE", timeout, None if body is None else lambda f: f.body == body)

    def messages(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[stomp.utils.Frame]:
        deadline = time.monotonic() + timeout
        return [self.message(max(deadline - time.monotonic(), 0.01)) for _ in range(count)]

    def error(self, timeout: float = DEFAULT_TIMEOUT) -> stomp.utils.Frame:
        return self.wait("ERROR", timeout)

    def wait_disconnected(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.disconnected:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"still connected after {timeout}s; received:\n  {self.describe()}"
                    )
                self._cond.wait(left)

    def pending(self, kind: str) -> list[stomp.utils.Frame]:
        """Frames of ``kind`` not yet taken (does not take them)."""
        with self._cond:
            return [
                f
                for i, (k, f) in enumerate(self.frames)
                if k == kind and i not in self._taken and f is not None
            ]

    def quiet(self, kind: str = "MESSAGE", seconds: float = 0.5) -> list[stomp.utils.Frame]:
        """Wait ``seconds`` and return what arrived of ``kind`` meanwhile (not taken)."""
        time.sleep(seconds)
        return self.pending(kind)

    def count(self, kind: str) -> int:
        with self._cond:
            return sum(1 for k, _ in self.frames if k == kind)


@dataclass
class Client:
    """A stomp.py connection, its collector and its CONNECTED (or ERROR) frame."""

    conn: Any
    listener: Collector
    reply: stomp.utils.Frame
    transport: str
    version: str

    @property
    def connected(self) -> bool:
        return bool(self.reply.cmd == "CONNECTED")

    def subscribe(
        self,
        destination: str,
        sub_id: str | None = None,
        ack: str = "auto",
        timeout: float = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """SUBSCRIBE (with any further ``headers``, hyphenated STOMP names as they are) and wait
        for its RECEIPT, so later publishes are sure to reach it."""
        sub_id = sub_id or unique("sub")
        receipt = unique("r")
        extra = dict(headers or {})
        if self.version == "1.0":
            self.conn.subscribe(destination, id=sub_id, ack=ack, receipt=receipt, headers=extra)
        else:
            self.conn.subscribe(destination, sub_id, ack=ack, receipt=receipt, headers=extra)
        self.listener.receipt(receipt, timeout)
        return sub_id

    def send(
        self,
        destination: str,
        body: str | bytes = "",
        *,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        receipt: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """SEND (with any further ``headers``); with ``receipt`` wait for the RECEIPT (the message
        was routed)."""
        extra = dict(headers or {})
        if receipt:
            rid = unique("r")
            self.conn.send(destination, body, content_type, extra, receipt=rid)
            self.listener.receipt(rid, timeout)
        else:
            self.conn.send(destination, body, content_type, extra)

    def close(self) -> None:
        """DISCONNECT politely if still connected, then drop the socket; never raises."""
        with contextlib.suppress(Exception):
            if self.conn.is_connected():
                self.conn.disconnect()
                with contextlib.suppress(AssertionError):
                    self.listener.wait_disconnected(2)
        with contextlib.suppress(Exception):
            self.conn.transport.disconnect_socket()


def open_stomp(
    server: ServerLike,
    transport: str = "tcp",
    *,
    token: str | None = None,
    user: str | None = None,
    role: str = "user",
    version: str = "1.2",
    heartbeats: tuple[int, int] = (0, 0),
    headers: dict[str, str] | None = None,
    login: str | None = None,
    with_connect_command: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    expect: str = "CONNECTED",
    binary_mode: bool = False,
) -> Client:
    """Connect stomp.py to ``server`` over ``transport`` ("tcp" or "ws").

    ``user`` mints a token for that user and ``role``; ``token`` passes one as the passcode;
    neither means anonymous. ``expect`` is "CONNECTED" (assert it) or "any" (return whatever came
    first: CONNECTED or ERROR). ``binary_mode`` makes stomp.py send binary WebSocket messages.
    """
    if user is not None and token is None:
        token = server.token(user, role)
    listener = Collector()
    if transport == "tcp":
        classes = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}
        kwargs: dict[str, Any] = {"reconnect_attempts_max": 1}
        if version != "1.0":
            kwargs |= {"heartbeats": heartbeats, "heart_beat_receive_scale": 4.0}
        conn = classes[version]([(server.host, server.stomp_port)], **kwargs)
    elif transport == "ws":
        assert version == "1.2", "stomp.py's WSConnection speaks STOMP 1.2 only"
        conn = stomp.WSConnection(
            [(server.host, server.http_port)],
            ws_path="/ws",
            heartbeats=heartbeats,
            heart_beat_receive_scale=4.0,
            reconnect_attempts_max=1,
            binary_mode=binary_mode,
        )
    else:
        raise ValueError(transport)
    conn.set_listener("collector", listener)
    connect_kwargs: dict[str, Any] = {"wait": False, "headers": dict(headers or {})}
    if version != "1.0":
        connect_kwargs["with_connect_command"] = with_connect_command
    if token is not None:
        conn.connect(login if login is not None else "any", token, **connect_kwargs)
    elif login is not None:
        conn.connect(login, None, **connect_kwargs)
    else:
        conn.connect(**connect_kwargs)
    deadline = time.monotonic() + timeout
    reply = None
    while reply is None and time.monotonic() < deadline:
        for kind in ("CONNECTED", "ERROR"):
            found = listener.pending(kind)
            if found:
                reply = listener.wait(kind, 0.01)
                break
        else:
            time.sleep(0.01)
    if reply is None:
        with contextlib.suppress(Exception):
            conn.transport.disconnect_socket()
        raise AssertionError(
            f"no CONNECTED or ERROR within {timeout}s over {transport}:\n  {listener.describe()}"
        )
    client = Client(conn, listener, reply, transport, version)
    if expect == "CONNECTED" and reply.cmd != "CONNECTED":
        client.close()
        raise AssertionError(f"expected CONNECTED, got {reply.cmd} {reply.headers} {reply.body!r}")
    return client


class Clients:
    """Opens stomp.py clients for one test and closes them all at teardown."""

    def __init__(self, server: ServerLike) -> None:
        self.server = server
        self.opened: list[Client] = []

    def __call__(self, transport: str = "tcp", **kwargs: Any) -> Client:
        server = kwargs.pop("server", self.server)
        client = open_stomp(server, transport, **kwargs)
        self.opened.append(client)
        return client

    def close_all(self) -> None:
        for client in self.opened:
            client.close()


# -------------------------------------------------------------------------------------------
# raw peers
# -------------------------------------------------------------------------------------------


#: A frame the server sent, as the client core reads it: ``command``, ``headers``, ``body``,
#: ``raw`` (the bytes on the wire), ``get(name)``, ``frame[name]``, ``message`` (ERROR).
Frame = ReceivedFrame


def encode_frame(
    command: str,
    headers: Iterable[tuple[str, str]] | dict[str, str] = (),
    body: bytes | str = b"",
    *,
    version: str = "1.2",
    eol: bytes = b"\n",
    content_length: bool = True,
    escape_headers: bool = True,
) -> bytes:
    """A client frame. Well-formed ones are serialized by the codec, as the client core does;
    the switches make what bad-input tests need: headers written exactly as given, CR LF line
    ends, no ``content-length``, commands that do not exist."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    data = body.encode() if isinstance(body, str) else body
    if escape_headers and eol == b"\n" and content_length and command in Command.__members__:
        return serialize(ProtocolFrame(Command(command), items, data), StompVersion(version))
    if escape_headers and command not in ("CONNECT", "STOMP"):
        items = [(escape(k, StompVersion(version)), escape(v, StompVersion(version)))
                 for k, v in items]  # fmt: skip
    if content_length and data and not any(k == "content-length" for k, _ in items):
        items.append(("content-length", str(len(data))))
    return wire(command, items, data, eol=eol)


class RawPeer:
    """A hand-driven STOMP peer; subclasses move the bytes (TCP or WebSocket).

    What it reads goes through the client core (:class:`protocol.client.ClientConnection`), so
    a frame the server sends is checked by the same code as every client of the project.
    """

    transport = "?"

    def __init__(self) -> None:
        self.stomp = ClientConnection()
        self._unread: deque[ReceivedFrame] = deque()
        self.heartbeats: list[float] = []
        self.frames: list[ReceivedFrame] = []
        self.closed = False
        self.reset = False
        self.send_failed = False

    @property
    def version(self) -> str:
        """How frames sent from now on are escaped: the negotiated version, else 1.2."""
        return self.stomp.version or "1.2"

    # -- transport (subclasses) --

    def send_raw(self, data: bytes) -> None:
        raise NotImplementedError

    def _recv_chunk(self, timeout: float) -> bytes | None:
        """Bytes received, ``None`` when the peer closed; raises TimeoutError."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- frames --

    def send(self, command: str, headers: Any = (), body: bytes | str = b"", **kw: Any) -> None:
        kw.setdefault("version", self.version)
        self.send_raw(encode_frame(command, headers, body, **kw))

    def _feed(self, chunk: bytes) -> None:
        for event in self.stomp.receive_data(chunk):
            if isinstance(event, HeartBeat):
                self.heartbeats.append(time.monotonic())
            else:
                self.frames.append(event)
                self._unread.append(event)

    def _receive(self, timeout: float) -> None:
        """Read once (up to ``timeout``): feed what came, or note that the peer closed."""
        try:
            chunk = self._recv_chunk(timeout)
        except TimeoutError:
            return
        if chunk is None:
            self.closed = True
        else:
            self._feed(chunk)

    def read_frame(self, timeout: float = DEFAULT_TIMEOUT) -> ReceivedFrame | None:
        """The next frame, or ``None`` if the peer closed first; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while not self._unread:
            if self.closed:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no frame within {timeout}s over {self.transport}; buffered "
                    f"{self.stomp.buffered} bytes; frames so far: {self.frames}"
                )
            self._receive(left)
        return self._unread.popleft()

    def read_until(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> ReceivedFrame:
        """Read frames until one with ``command``; fail on close or ERROR (unless asked)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(max(deadline - time.monotonic(), 0.01))
            if frame is None:
                raise AssertionError(f"connection closed before {command}; frames: {self.frames}")
            if frame.command == command:
                return frame
            if frame.command == "ERROR":
                raise AssertionError(f"ERROR while waiting for {command}: {frame}")

    def expect_error(self, timeout: float = DEFAULT_TIMEOUT) -> Error:
        """Read until an ERROR frame, then assert that the server closes the connection."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(max(deadline - time.monotonic(), 0.01))
            if frame is None:
                raise AssertionError(
                    f"closed without ERROR over {self.transport} (reset={self.reset}); "
                    f"frames: {self.frames}"
                )
            if isinstance(frame, Error):
                break
        return self.ended_by(frame, max(deadline - time.monotonic(), 2.0))

    def ended_by(self, frame: Error, timeout: float = DEFAULT_TIMEOUT) -> Error:
        """Assert ``frame`` is an ERROR as SPEC §3 has it (a ``message``, no traceback) and
        that the server then closes the connection."""
        body = frame.body.decode("utf-8", "replace")
        assert "Traceback" not in body, f"traceback sent to the client: {body}"
        assert frame.message, f"ERROR without a message header: {frame}"
        self.expect_closed(timeout)
        return frame

    def expect_closed(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Assert the server closes the connection (after any frames still on the way)."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"server did not close the {self.transport} connection within {timeout}s"
                )
            self._receive(left)

    def connect(
        self,
        *,
        token: str | None = None,
        accept_version: str | None = "1.2",
        heart_beat: str | None = None,
        command: str = "CONNECT",
        extra: dict[str, str] | None = None,
        eol: bytes = b"\n",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> ReceivedFrame:
        """Send CONNECT and return the reply frame (CONNECTED or ERROR)."""
        headers: list[tuple[str, str]] = []
        if accept_version is not None:
            headers.append(("accept-version", accept_version))
        headers.append(("host", "127.0.0.1"))
        if heart_beat is not None:
            headers.append(("heart-beat", heart_beat))
        if token is not None:
            headers += [("login", "any"), ("passcode", token)]
        headers += list((extra or {}).items())
        self.send_raw(encode_frame(command, headers, eol=eol))
        frame = self.read_frame(timeout)
        assert frame is not None, f"closed without a reply to CONNECT over {self.transport}"
        return frame

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RawTcp(RawPeer):
    transport = "tcp"

    def __init__(
        self, host: str, port: int, *, rcvbuf: int | None = None, mss: int | None = None
    ) -> None:
        """``rcvbuf``: a small receive buffer; ``mss``: a small segment size, which keeps the
        server's send buffer small too (on loopback the kernel grows it to megabytes), so that
        what a peer that stops reading is sent soon waits in the server's own buffer."""
        super().__init__()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if mss is not None:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        self.sock.settimeout(DEFAULT_TIMEOUT)
        self.sock.connect((host, port))

    @classmethod
    def to(cls, server: ServerLike, **kw: Any) -> RawTcp:
        return cls(server.host, server.stomp_port, **kw)

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.settimeout(DEFAULT_TIMEOUT)
            self.sock.sendall(data)
        except OSError:
            # The server may already have answered with ERROR and closed; reading shows that.
            self.send_failed = True

    def _recv_chunk(self, timeout: float) -> bytes | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise
        except ConnectionResetError:
            self.reset = True
            return None
        return data or None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class RawWs(RawTcp):
    """STOMP over a WebSocket made by the project's client core (RFC 6455 framing and all);
    ``send_raw`` puts any bytes in one WebSocket message, text or binary."""

    transport = "ws"

    def __init__(
        self,
        url: str,
        *,
        subprotocols: list[str] | None = None,
        binary: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        headers: Iterable[tuple[str, str]] = (),
        rcvbuf: int | None = None,
        mss: int | None = None,
    ) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None, url
        super().__init__(parts.hostname, parts.port, rcvbuf=rcvbuf, mss=mss)
        self.binary = binary
        self.opcodes: list[int] = []  # opcode of every data frame received
        self.ws = WebSocketClient(
            f"{parts.hostname}:{parts.port}", parts.path, subprotocols or (), headers=tuple(headers)
        )
        self.sock.sendall(self.ws.data_to_send())
        deadline = time.monotonic() + timeout
        pending = b""
        while not self.ws.open:
            data = RawTcp._recv_chunk(self, max(deadline - time.monotonic(), 0.001))
            assert data is not None, f"{url}: closed during the WebSocket handshake"
            pending += self._unwrap(data)
        if pending:
            self._feed(pending)

    @classmethod
    def to(cls, server: ServerLike, **kw: Any) -> RawWs:
        return cls(f"ws://{server.host}:{server.http_port}/ws", **kw)

    @property
    def subprotocol(self) -> str | None:
        return self.ws.subprotocol

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    @property
    def close_reason(self) -> str:
        return self.ws.close_reason

    def _unwrap(self, data: bytes) -> bytes:
        """The STOMP bytes of ``data``; answers pings and echoes a close frame at once."""
        payloads = []
        for opcode, payload in self.ws.receive_data(data):
            self.opcodes.append(opcode)
            payloads.append(payload)
        answer = self.ws.data_to_send()
        if answer:
            with contextlib.suppress(OSError):
                self.sock.sendall(answer)
        return b"".join(payloads)

    def send_raw(self, data: bytes, *, binary: bool | None = None) -> None:
        use_binary = self.binary if binary is None else binary
        self.ws.send(data, Opcode.BINARY if use_binary else Opcode.TEXT)
        super().send_raw(self.ws.data_to_send())

    def _recv_chunk(self, timeout: float) -> bytes | None:
        if self.ws.closed:
            return None
        data = super()._recv_chunk(timeout)
        if data is None:
            self.reset = self.ws.close_code is None  # the TCP connection ended without a close
            return None
        return self._unwrap(data)

    def close(self) -> None:
        if not self.ws.closed:
            self.ws.close(1000)
            with contextlib.suppress(OSError):
                self.sock.sendall(self.ws.data_to_send())
        super().close()


def raw_peer(server: ServerLike, transport: str, **kw: Any) -> RawPeer:
    return RawTcp.to(server, **kw) if transport == "tcp" else RawWs.to(server, **kw)


# -------------------------------------------------------------------------------------------
# a session that must keep working
# -------------------------------------------------------------------------------------------


class Witness:
    """A connected publisher (TCP) and subscriber (WebSocket) on one topic of ``server``.

    Open it *before* the misbehaviour; :meth:`check` then proves that other sessions on the same
    server still work: a fresh message is published and must be delivered.
    """

    def __init__(
        self, server: ServerLike, pub_transport: str = "tcp", sub_transport: str = "ws"
    ) -> None:
        self.topic = topic("witness")
        self.publisher = open_stomp(server, pub_transport, user=unique("wpub"), role="publisher")
        self.subscriber = open_stomp(server, sub_transport, user=unique("wsub"))
        self.subscriber.subscribe(self.topic)

    def check(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        for client in (self.publisher, self.subscriber):
            assert not client.listener.pending("ERROR"), (
                f"an unrelated session got ERROR: {client.listener.describe()}"
            )
            assert not client.listener.disconnected, "an unrelated session was disconnected"
        body = unique("still-alive")
        self.publisher.send(self.topic, body, timeout=timeout)
        self.subscriber.listener.message(timeout, body=body)

    def close(self) -> None:
        self.publisher.close()
        self.subscriber.close()


@contextlib.contextmanager
def witness(server: ServerLike) -> Iterator[Witness]:
    w = Witness(server)
    try:
        yield w
    finally:
        w.close()


# -------------------------------------------------------------------------------------------
# HTTP
# -------------------------------------------------------------------------------------------


def http_get(url: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str, str]:
    """(status, content-type, body) of a GET; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def http_json(url: str) -> Any:
    status, _, body = http_get(url)
    assert status == 200, (status, body)
    return json.loads(body)


def metric_families(server: ServerLike) -> dict[str, list[Any]]:
    """Family name → samples from ``/metrics`` (counter names lose their ``_total``)."""
    status, _, body = http_get(f"http://{server.host}:{server.http_port}/metrics")
    assert status == 200, body
    return {family.name: family.samples for family in text_string_to_metric_families(body)}


def metric_sum(server: ServerLike, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 if none yet)."""
    samples = metric_families(server).get(name, [])
    return float(
        sum(s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items()))
    )


def log_tail(server: ServerLike, lines: int = 40) -> str:
    try:
        return "\n".join(server.log().splitlines()[-lines:])
    except OSError:
        return "(no log)"
