"""A scripted STOMP client: hand-written frame bytes in, a ServerConnection's output parsed back.

Frames are written here byte by byte (no escaping, no added ``content-length``) so the tests see
exactly what goes on the wire, independently of :func:`protocol.codec.serialize`.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol.codec import FrameParser
from protocol.connection import ServerConnection
from protocol.events import ConnectRequest, Event, Subscription
from protocol.frames import Frame, StompVersion
from protocol.limits import Limits

SESSION = "session-1"
SERVER = "concert-hub/test"


def wire(
    command: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    eol: bytes = b"\n",
) -> bytes:
    """The raw bytes of one frame, exactly as given."""
    lines = [command.encode(), *(f"{name}:{value}".encode() for name, value in headers)]
    return eol.join(lines) + eol + eol + body + b"\x00"


def parse(data: bytes, version: StompVersion | None = None) -> list[Frame]:
    """Every frame in ``data``; fails the test if bytes of an incomplete frame remain."""
    parser = FrameParser(version=version)
    parser.feed(data)
    frames = parser.frames()
    assert parser.buffered == 0, f"trailing bytes: {data!r}"
    return frames


def events(conn: ServerConnection) -> list[Event]:
    """Pull events until the connection has none to give."""
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def sent(conn: ServerConnection) -> list[Frame]:
    """The frames the connection wants written, parsed as the client would."""
    return parse(conn.data_to_send(), conn.version)


def connect(
    version: str | None = "1.2",
    *,
    limits: Limits | None = None,
    heart_beat: tuple[int, int] = (10000, 10000),
    client_heart_beat: str | None = None,
    user_name: str | None = None,
) -> ServerConnection:
    """A connection that has read CONNECT, been accepted, and had its CONNECTED drained."""
    conn = ServerConnection(limits, heart_beat=heart_beat)
    headers = [("host", "/")]
    if version is not None:
        headers.append(("accept-version", version))
    if client_heart_beat is not None:
        headers.append(("heart-beat", client_heart_beat))
    conn.receive_data(wire("CONNECT", headers))
    event = conn.next_event()
    assert isinstance(event, ConnectRequest)
    conn.accept(session=SESSION, server=SERVER, user_name=user_name)
    conn.data_to_send()
    return conn


def send(
    conn: ServerConnection,
    command: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Event | None:
    """Feed one frame and return the next event (``None`` if the frame produced none)."""
    conn.receive_data(wire(command, headers, body))
    return conn.next_event()


def subscribe(conn: ServerConnection, sub_id: str, ack: str = "auto") -> Subscription:
    """Subscribe ``sub_id`` to ``/topic/<sub_id>`` and return the registered subscription."""
    send(conn, "SUBSCRIBE", [("id", sub_id), ("destination", f"/topic/{sub_id}"), ("ack", ack)])
    return conn.subscriptions[sub_id]
