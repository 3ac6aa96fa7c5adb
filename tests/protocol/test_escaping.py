"""STOMP 1.2 §"Value Encoding": header escaping per version, and the frames exempt from it.

1.0 has no escaping; 1.1 defines ``\\\\``, ``\\n`` and ``\\c``; 1.2 adds ``\\r``. CONNECT and
CONNECTED are never escaped (their version is not known yet when they are written). Any other
backslash sequence is a fatal protocol error.
"""

from __future__ import annotations

import pytest

from protocol.codec import FrameParser, escape, serialize, unescape
from protocol.connection import ServerConnection
from protocol.errors import MalformedFrame
from protocol.events import ConnectRequest, Send
from protocol.frames import Command, Frame, StompVersion
from tests.protocol.client import connect, parse, send, wire

V1_0, V1_1, V1_2 = StompVersion.V1_0, StompVersion.V1_1, StompVersion.V1_2

# (version, text on the wire, decoded text)
DECODING = [
    (V1_2, "a\\cb", "a:b"),
    (V1_2, "a\\nb", "a\nb"),
    (V1_2, "a\\rb", "a\rb"),
    (V1_2, "a\\\\b", "a\\b"),
    (V1_2, "\\\\n", "\\n"),
    (V1_2, "\\c\\c\\\\\\r\\n", "::\\\r\n"),
    (V1_1, "a\\cb", "a:b"),
    (V1_1, "a\\nb", "a\nb"),
    (V1_1, "a\\\\b", "a\\b"),
    (V1_0, "a\\cb", "a\\cb"),
    (V1_0, "a\\nb", "a\\nb"),
    (V1_0, "a\\rb", "a\\rb"),
    (V1_0, "a\\tb\\", "a\\tb\\"),
]

UNDEFINED = [
    (V1_2, "a\\tb"),
    (V1_2, "trailing\\"),
    (V1_2, "\\C"),
    (V1_2, "\\é"),
    (V1_2, "\\\\\\x"),
    (V1_1, "a\\rb"),
    (V1_1, "a\\tb"),
    (V1_1, "trailing\\"),
]


def parse_headers(data: bytes, version: StompVersion | None) -> list[tuple[str, str]]:
    parser = FrameParser(version=version)
    parser.feed(data)
    frame = parser.next_frame()
    assert frame is not None
    return frame.headers


class TestDecoding:
    @pytest.mark.parametrize(("version", "raw", "text"), DECODING)
    def test_unescape(self, version: StompVersion, raw: str, text: str) -> None:
        assert unescape(raw, version) == text

    @pytest.mark.parametrize(("version", "raw", "text"), DECODING)
    def test_parser_decodes_values_and_names(
        self, version: StompVersion, raw: str, text: str
    ) -> None:
        data = f"SEND\n{raw}:{raw}\n\n\x00".encode()
        assert parse_headers(data, version) == [(text, text)]

    @pytest.mark.parametrize(("version", "raw"), UNDEFINED)
    def test_undefined_escape_is_fatal(self, version: StompVersion, raw: str) -> None:
        with pytest.raises(MalformedFrame) as info:
            unescape(raw, version)
        assert info.value.message == "invalid header escape"
        parser = FrameParser(version=version)
        parser.feed(f"SEND\nk:{raw}\n\n\x00".encode())
        with pytest.raises(MalformedFrame) as info:
            parser.next_frame()
        assert info.value.message == "invalid header escape"

    def test_undefined_escape_in_a_name_is_fatal(self) -> None:
        parser = FrameParser(version=V1_2)
        parser.feed(b"SEND\nk\\t:v\n\n\x00")
        with pytest.raises(MalformedFrame, match="invalid header escape"):
            parser.next_frame()

    def test_no_version_yet_means_no_unescaping(self) -> None:
        assert parse_headers(b"SEND\nk:a\\tb\\c\n\n\x00", None) == [("k", "a\\tb\\c")]


class TestEncoding:
    @pytest.mark.parametrize(
        ("version", "text", "raw"),
        [
            (V1_2, "a:b\\c\nd\re", "a\\cb\\\\c\\nd\\re"),
            (V1_1, "a:b\\c\nd\re", "a\\cb\\\\c\\nd\re"),
            # 1.0 cannot encode a line break: it becomes a space; the rest goes out raw.
            (V1_0, "a:b\\c\nd\re", "a:b\\c d e"),
        ],
    )
    def test_escape(self, version: StompVersion, text: str, raw: str) -> None:
        assert escape(text, version) == raw

    @pytest.mark.parametrize("version", [V1_1, V1_2])
    def test_escape_then_unescape_is_identity(self, version: StompVersion) -> None:
        text = "\\c:\\n\n\\\\:" + ("\r" if version is V1_2 else "")
        assert unescape(escape(text, version), version) == text

    @pytest.mark.parametrize(
        ("version", "line"),
        [
            (V1_2, b"x\\cy:a\\cb\\nc\\rd\\\\"),
            (V1_1, b"x\\cy:a\\cb\\nc\rd\\\\"),
            (V1_0, b"x_y:a:b c d\\"),
        ],
    )
    def test_serialize_escapes_names_and_values(self, version: StompVersion, line: bytes) -> None:
        frame = Frame(Command.MESSAGE, [("x:y", "a:b\nc\rd\\")])
        assert serialize(frame, version) == b"MESSAGE\n" + line + b"\n\n\x00"


class TestUnescapedFrames:
    """CONNECT and CONNECTED headers are never escaped, whatever the version."""

    @pytest.mark.parametrize("version", [None, *StompVersion])
    def test_connect_headers_are_literal(self, version: StompVersion | None) -> None:
        data = b"CONNECT\nlogin:a\\cb\npasscode:x\\ty\\\n\n\x00"
        assert parse_headers(data, version) == [("login", "a\\cb"), ("passcode", "x\\ty\\")]

    @pytest.mark.parametrize("version", list(StompVersion))
    def test_connected_is_serialized_raw(self, version: StompVersion) -> None:
        frame = Frame(Command.CONNECTED, [("session", "a:b\\c"), ("server", "x\\ny")])
        assert serialize(frame, version) == b"CONNECTED\nsession:a:b\\c\nserver:x\\ny\n\n\x00"

    @pytest.mark.parametrize("version", list(StompVersion))
    def test_connected_parses_back_literally(self, version: StompVersion) -> None:
        frame = Frame(Command.CONNECTED, [("session", "a:b\\c")])
        assert parse(serialize(frame, version), version) == [frame]

    def test_connection_passes_connect_headers_through_literally(self) -> None:
        conn = ServerConnection()
        conn.receive_data(wire("CONNECT", [("accept-version", "1.2"), ("passcode", "p\\c\\q")]))
        event = conn.next_event()
        assert isinstance(event, ConnectRequest)
        assert event.passcode == "p\\c\\q"

    def test_accepted_session_id_goes_out_raw(self) -> None:
        conn = ServerConnection()
        conn.receive_data(wire("CONNECT", [("accept-version", "1.2")]))
        conn.next_event()
        conn.accept(session="a:b", server="s\\1", user_name=None)
        data = conn.data_to_send()
        assert b"\nsession:a:b\n" in data
        assert b"\nserver:s\\1\n" in data


class TestNegotiatedVersionDecodesLaterFrames:
    """After CONNECT the connection unescapes client frames per the negotiated version."""

    @pytest.mark.parametrize(
        ("version", "raw", "destination"),
        [
            ("1.2", "/a\\cb\\r", "/a:b\r"),
            ("1.1", "/a\\cb\\n", "/a:b\n"),
            ("1.0", "/a\\cb\\rc", "/a\\cb\\rc"),
        ],
    )
    def test_send_destination(self, version: str, raw: str, destination: str) -> None:
        event = send(connect(version), "SEND", [("destination", raw)])
        assert isinstance(event, Send)
        assert event.destination == destination

    def test_1_1_rejects_the_1_2_only_escape(self) -> None:
        with pytest.raises(MalformedFrame, match="invalid header escape"):
            send(connect("1.1"), "SEND", [("destination", "/a\\r")])

    def test_1_1_escapes(self) -> None:
        conn = connect("1.1")
        event = send(conn, "SEND", [("destination", "/a\\cb"), ("x\\ny", "\\\\")])
        assert isinstance(event, Send)
        assert event.destination == "/a:b"
        assert event.headers == [("x\ny", "\\")]

    def test_receipt_is_escaped_per_version(self) -> None:
        conn = connect("1.2")
        event = send(conn, "SEND", [("destination", "/a"), ("receipt", "r\\c1")])
        assert event is not None
        conn.complete(event)
        data = conn.data_to_send()
        assert data == b"RECEIPT\nreceipt-id:r\\c1\n\n\x00"
