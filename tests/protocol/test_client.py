"""protocol/client.py, the client side: frames built through the codec, server bytes in, events
out. Synchronous; the server side of each exchange is a real ServerConnection where it can be."""

from __future__ import annotations

import pytest

from protocol.client import (
    ClientConnection,
    Connected,
    Error,
    HeartBeat,
    Message,
    Receipt,
)
from protocol.codec import encode_message
from protocol.connection import ServerConnection
from protocol.errors import FrameTooLarge, MalformedFrame, UnknownCommand
from protocol.events import ConnectRequest, Send, Subscribe
from protocol.frames import StompVersion
from protocol.limits import Limits
from tests.protocol.client import parse, wire


def handshake(
    version: str = "1.2", heart_beat: tuple[int, int] = (0, 0)
) -> tuple[ClientConnection, ServerConnection]:
    """A client and a server connection that exchanged CONNECT and CONNECTED."""
    client = ClientConnection()
    server = ServerConnection(heart_beat=(1000, 2000))
    client.connect(accept_version=(version,), passcode="secret", heart_beat=heart_beat)
    server.receive_data(client.data_to_send())
    request = server.next_event()
    assert isinstance(request, ConnectRequest) and request.passcode == "secret"
    server.accept(session="s-1", server="concert-hub/test", user_name=None)
    events = client.receive_data(server.data_to_send())
    assert [type(e) for e in events] == [Connected]
    return client, server


class TestConnecting:
    """STOMP 1.2 §"Connecting": version and heart-beat negotiation as the client sees it."""

    @pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
    def test_connected_sets_the_version(self, version: str) -> None:
        client, server = handshake(version)
        assert client.version == version == server.version

    def test_heart_beats_are_negotiated_from_both_offers(self) -> None:
        client, _ = handshake(heart_beat=(500, 5000))
        # The server offers (1000, 2000): it beats every max(1000, 5000) ms, we every 2000.
        assert (client.heartbeat_out_ms, client.heartbeat_in_ms) == (2000, 5000)

    def test_connect_is_never_escaped(self) -> None:
        client = ClientConnection()
        client.connect(passcode="a:b", headers=[("x-odd", "c\\d")])
        assert b"\npasscode:a:b\n" in client.data_to_send()

    def test_an_unknown_version_in_connected_is_refused(self) -> None:
        client = ClientConnection()
        with pytest.raises(Exception, match="unsupported protocol version"):
            client.receive_data(wire("CONNECTED", [("version", "3.0")]))


class TestClientFrames:
    """Client frames reach a ServerConnection as the events they stand for."""

    def test_subscribe_and_send(self) -> None:
        client, server = handshake()
        client.subscribe("/topic/a", "s-1", receipt="r-1")
        client.send("/topic/a", b"with\x00nul", content_type="text/plain", receipt="r-2")
        server.receive_data(client.data_to_send())
        subscribe, send = server.next_event(), server.next_event()
        assert isinstance(subscribe, Subscribe) and subscribe.subscription.id == "s-1"
        assert isinstance(send, Send) and send.body == b"with\x00nul"
        assert ("content-type", "text/plain") in send.headers

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_headers_are_escaped_for_the_negotiated_version(self, version: str) -> None:
        client, _ = handshake(version)
        client.send("/topic/a", headers=[("x-tricky", "a:b\nc\\d")])
        data = client.data_to_send()
        assert b"\nx-tricky:a\\cb\\nc\\\\d\n" in data
        (frame,) = parse(data, StompVersion(version))
        assert frame.get("x-tricky") == "a:b\nc\\d"

    @pytest.mark.parametrize("header", [("x-a", "b\x00c"), ("x\x00a", "b")])
    def test_a_nul_in_a_header_is_refused_before_anything_is_sent(
        self, header: tuple[str, str]
    ) -> None:
        client, server = handshake()
        with pytest.raises(ValueError, match="NUL"):
            client.send("/topic/a", b"body", headers=[header])
        assert client.data_to_send() == b""
        client.send("/topic/a", b"next")  # the connection is still good
        server.receive_data(client.data_to_send())
        sent = server.next_event()
        assert isinstance(sent, Send) and sent.body == b"next"

    @pytest.mark.parametrize(
        ("version", "expected"),
        [
            ("1.2", [("id", "m-1/s")]),
            ("1.1", [("message-id", "m-1"), ("subscription", "s")]),
            ("1.0", [("message-id", "m-1")]),
        ],
    )
    def test_ack_names_the_message_as_each_version_wants(
        self, version: str, expected: list[tuple[str, str]]
    ) -> None:
        client, _ = handshake(version)
        ack = "m-1/s" if version == "1.2" else None
        (message,) = client.receive_data(
            encode_message(
                StompVersion(version),
                destination="/t",
                subscription="s",
                message_id="m-1",
                ack=ack,
                headers=[],
                body=b"x",
            )
        )
        assert isinstance(message, Message)
        client.ack(message, receipt="r")
        (frame,) = parse(client.data_to_send(), StompVersion(version))
        assert frame.headers == [*expected, ("receipt", "r")]


class TestReceiving:
    """Server bytes in, events out: boundaries, heart-beats, lazy headers, bounds."""

    def test_a_message_split_anywhere_arrives_once_and_intact(self) -> None:
        client, _ = handshake()
        data = encode_message(StompVersion.V1_2, destination="/t", subscription="s",
                              message_id="m", ack=None, headers=[("k", "a:b")],
                              body=b"\x00body\x00")  # fmt: skip
        for cut in range(1, len(data)):
            first = client.receive_data(data[:cut])
            second = client.receive_data(data[cut:])
            (message,) = first + second
            assert isinstance(message, Message)
            assert message.body == b"\x00body\x00" and message["k"] == "a:b"
            assert message.raw == data and client.buffered == 0

    def test_a_crlf_frame_whose_body_starts_with_a_newline_arrives_whole(self) -> None:
        client, _ = handshake()
        crlf = b"MESSAGE\r\nsubscription:s\r\nmessage-id:m\r\ncontent-length:3\r\n\r\n\nab\x00"
        (message,) = client.receive_data(crlf)
        assert isinstance(message, Message)
        assert message.body == b"\nab" and message["message-id"] == "m"
        assert client.buffered == 0

    def test_peek_reads_the_first_value_of_a_header_as_get_does(self) -> None:
        client, _ = handshake()
        data = encode_message(StompVersion.V1_2, destination="/t", subscription="seats",
                              message_id="m-7", ack=None,
                              headers=[("seq", "41"), ("seq", "42"), ("k", "a:b")],
                              body=b"\nseq:99\n")  # fmt: skip
        blank = data.index(b"\n\n") + 2
        crlf = data[:blank].replace(b"\n", b"\r\n") + data[blank:]  # CRLF line ends
        for raw in (data, crlf):
            (message,) = client.receive_data(raw)
            assert isinstance(message, Message)
            for name in ("subscription", "seq", "message-id", "destination"):
                assert message.peek(name) == message.get(name), name
            assert message.peek("seq") == "41"
            assert message.peek("k") == "a\\cb"  # as sent: peek does not unescape
            assert message.peek("id") is None  # not "message-id", nor anything in the body
            assert message.peek("nine") is None

    def test_heart_beats_between_frames_are_events(self) -> None:
        client, _ = handshake()
        events = client.receive_data(b"\n\r\n" + wire("RECEIPT", [("receipt-id", "r")]) + b"\n")
        assert [type(e) for e in events] == [HeartBeat, HeartBeat, Receipt, HeartBeat]
        receipt = events[2]
        assert isinstance(receipt, Receipt) and receipt.receipt_id == "r"

    def test_crlf_frames_parse_like_lf(self) -> None:
        client, _ = handshake()
        (error,) = client.receive_data(wire("ERROR", [("message", "bad")], b"detail", eol=b"\r\n"))
        assert isinstance(error, Error)
        assert error.message == "bad" and error.body == b"detail"
        assert client.closed

    def test_a_client_frame_from_the_server_is_refused(self) -> None:
        client, _ = handshake()
        with pytest.raises(UnknownCommand):
            client.receive_data(wire("SEND", [("destination", "/a")]))

    @pytest.mark.parametrize("length", ["abc", "-1", "1 2"])
    def test_a_bad_content_length_is_refused(self, length: str) -> None:
        client, _ = handshake()
        with pytest.raises(MalformedFrame, match="invalid content-length"):
            client.receive_data(wire("MESSAGE", [("content-length", length)], b"x"))

    def test_a_huge_content_length_is_too_large_at_once(self) -> None:
        client, _ = handshake()
        with pytest.raises(FrameTooLarge):
            client.receive_data(wire("MESSAGE", [("content-length", "9" * 20)], b"x"))

    def test_no_nul_at_content_length_is_refused(self) -> None:
        client, _ = handshake()
        with pytest.raises(MalformedFrame):
            client.receive_data(wire("MESSAGE", [("content-length", "1")], b"xy"))

    def test_a_frame_over_the_limit_is_refused_before_it_is_complete(self) -> None:
        client = ClientConnection(Limits(max_frame_bytes=100, max_header_bytes=50))
        with pytest.raises(FrameTooLarge):
            client.receive_data(b"MESSAGE\ndestination:/t\n\n" + b"x" * 200)
        with pytest.raises(Exception, match="header section too large"):
            ClientConnection(Limits(max_header_bytes=50)).receive_data(b"MESSAGE\n" + b"h" * 60)

    def test_a_bad_escape_shows_when_the_headers_are_read(self) -> None:
        client, _ = handshake()
        (message,) = client.receive_data(wire("MESSAGE", [("k", "a\\tb")], b"body"))
        assert isinstance(message, Message) and message.body == b"body"
        with pytest.raises(MalformedFrame, match="invalid header escape"):
            message.get("k")
