"""Per-connection limits (SPEC §7, protocol/limits.py), each refused with its own error and message.

Frame size counts every byte of a frame before its closing NUL, whether the body is delimited by
``content-length`` or by the NUL. The header section counts the command line and the header
lines up to the EOL that ends the last one.
"""

from __future__ import annotations

import pytest

from protocol.codec import FrameParser
from protocol.connection import ConnectionState, ServerConnection, ack_id
from protocol.errors import (
    FrameTooLarge,
    HeaderTooLarge,
    LimitExceeded,
    ProtocolError,
    TooManyHeaders,
    UnknownCommand,
)
from protocol.events import Commit, Send
from protocol.frames import Command
from protocol.limits import Limits
from tests.protocol.client import connect, events, send, sent, subscribe, wire


def parse_with(limits: Limits, data: bytes) -> FrameParser:
    parser = FrameParser(limits)
    parser.feed(data)
    return parser


def test_defaults_are_the_documented_flag_defaults() -> None:
    assert Limits() == Limits(
        max_frame_bytes=65536,
        max_headers=64,
        max_header_bytes=8192,
        max_subscriptions=256,
        max_unacked=4096,
        max_transaction_frames=1024,
        max_transactions=16,
        max_transaction_bytes=1048576,
    )


class TestMaxFrameBytes:
    LIMITS = Limits(max_frame_bytes=64)

    @staticmethod
    def sized(size: int, *, content_length: bool, eol: bytes = b"\n") -> bytes:
        """A SEND frame of exactly ``size`` bytes before its NUL."""
        if content_length:
            head_len = len(wire("SEND", [("content-length", "00")], eol=eol)) - 1
            body = b"\x00" * (size - head_len)
            headers = [("content-length", f"{len(body):02d}")]
        else:
            head_len = len(wire("SEND", eol=eol)) - 1
            body = b"x" * (size - head_len)
            headers = []
        data = wire("SEND", headers, body, eol=eol)
        assert len(data) == size + 1
        return data

    @pytest.mark.parametrize(
        ("content_length", "eol"),
        [(False, b"\n"), (False, b"\r\n"), (True, b"\n"), (True, b"\r\n")],
    )
    def test_boundary(self, content_length: bool, eol: bytes) -> None:
        fits = self.sized(64, content_length=content_length, eol=eol)
        frame = parse_with(self.LIMITS, fits).next_frame()
        assert frame is not None
        assert frame.command is Command.SEND
        too_big = self.sized(65, content_length=content_length, eol=eol)
        with pytest.raises(FrameTooLarge) as info:
            parse_with(self.LIMITS, too_big).next_frame()
        assert info.value.message == "frame too large"
        assert info.value.reason == "frame_too_large"

    def test_without_content_length_refused_before_the_nul_arrives(self) -> None:
        parser = parse_with(self.LIMITS, b"SEND\n\n" + b"x" * 58)
        assert parser.next_frame() is None
        assert parser.buffered == 64
        parser.feed(b"x")
        with pytest.raises(FrameTooLarge):
            parser.next_frame()

    def test_with_content_length_refused_before_the_body_arrives(self) -> None:
        parser = parse_with(self.LIMITS, b"SEND\ncontent-length:100\n\n")
        with pytest.raises(FrameTooLarge, match="frame too large"):
            parser.next_frame()

    @pytest.mark.parametrize("digits", [20, 4300, 5000])
    def test_absurd_content_length(self, digits: int) -> None:
        parser = parse_with(Limits(), wire("SEND", [("content-length", "9" * digits)], b"x"))
        with pytest.raises(FrameTooLarge, match="frame too large"):
            parser.next_frame()

    def test_many_leading_zeros_are_still_a_number(self) -> None:
        frame = parse_with(Limits(), wire("SEND", [("content-length", "0" * 5000 + "1")], b"x"))
        assert frame.next_frame() is not None

    def test_heart_beats_do_not_count(self) -> None:
        parser = parse_with(self.LIMITS, b"\n" * 200 + self.sized(64, content_length=False))
        assert parser.next_frame() is not None

    def test_each_frame_is_measured_on_its_own(self) -> None:
        frame = self.sized(64, content_length=True)
        parser = parse_with(self.LIMITS, frame * 5)
        assert len(parser.frames()) == 5

    def test_through_the_connection(self) -> None:
        conn = connect(limits=self.LIMITS)
        with pytest.raises(FrameTooLarge) as info:
            send(conn, "SEND", [("destination", "/a")], b"x" * 100)
        conn.fail(info.value)
        [error] = sent(conn)
        assert error.get("message") == "frame too large"
        assert conn.state is ConnectionState.CLOSED


class TestMaxHeaders:
    LIMITS = Limits(max_headers=3)

    def test_boundary(self) -> None:
        three = [("a", "1"), ("b", "2"), ("c", "3")]
        frame = parse_with(self.LIMITS, wire("SEND", three)).next_frame()
        assert frame is not None
        assert frame.headers == three
        with pytest.raises(TooManyHeaders) as info:
            parse_with(self.LIMITS, wire("SEND", [*three, ("d", "4")])).next_frame()
        assert info.value.message == "too many headers"
        assert info.value.reason == "too_many_headers"

    def test_repeats_count(self) -> None:
        with pytest.raises(TooManyHeaders):
            parse_with(self.LIMITS, wire("SEND", [("a", "1")] * 4)).next_frame()


class TestMaxHeaderBytes:
    LIMITS = Limits(max_header_bytes=64)

    @staticmethod
    def sized(size: int, eol: bytes = b"\n") -> bytes:
        """A frame whose header section (up to the last header line's LF) is ``size`` bytes."""
        prefix = b"SEND" + eol + b"k:"
        value = "v" * (size - len(prefix) - len(eol) + 1)
        data = wire("SEND", [("k", value)], eol=eol)
        assert data.index(eol + eol) + len(eol) - 1 == size
        return data

    @pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
    def test_boundary(self, eol: bytes) -> None:
        assert parse_with(self.LIMITS, self.sized(64, eol)).next_frame() is not None
        with pytest.raises(HeaderTooLarge) as info:
            parse_with(self.LIMITS, self.sized(65, eol)).next_frame()
        assert info.value.message == "header section too large"
        assert info.value.reason == "header_too_large"

    @pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
    def test_boundary_frame_fed_byte_by_byte(self, eol: bytes) -> None:
        # The terminating empty line arrives in pieces; its first bytes must not tip the limit.
        data = self.sized(64, eol)
        parser = FrameParser(self.LIMITS)
        for i in range(len(data) - 1):
            parser.feed(data[i : i + 1])
            assert parser.next_frame() is None
        parser.feed(data[-1:])
        assert parser.next_frame() is not None

    def test_refused_before_the_section_ends(self) -> None:
        parser = parse_with(self.LIMITS, b"SEND\nk:" + b"v" * 59)
        assert parser.next_frame() is None
        assert parser.buffered == 66
        parser.feed(b"v")
        with pytest.raises(HeaderTooLarge):
            parser.next_frame()

    def test_endless_command_line(self) -> None:
        # No command is that long: refused as soon as it cannot be one, far below the limit.
        parser = parse_with(self.LIMITS, b"S" * 1000)
        with pytest.raises(UnknownCommand):
            parser.next_frame()


class TestMaxSubscriptions:
    def test_boundary_and_release(self) -> None:
        conn = connect(limits=Limits(max_subscriptions=2))
        subscribe(conn, "s1")
        subscribe(conn, "s2")
        with pytest.raises(LimitExceeded) as info:
            send(conn, "SUBSCRIBE", [("id", "s3"), ("destination", "/a"), ("receipt", "r")])
        assert info.value.message == "too many subscriptions"
        assert info.value.reason == "limit"
        assert info.value.receipt_id == "r"
        assert list(conn.subscriptions) == ["s1", "s2"]

    def test_unsubscribe_frees_a_slot(self) -> None:
        conn = connect(limits=Limits(max_subscriptions=1))
        subscribe(conn, "s1")
        send(conn, "UNSUBSCRIBE", [("id", "s1")])
        subscribe(conn, "s2")
        assert list(conn.subscriptions) == ["s2"]


class TestMaxUnacked:
    def test_boundary_and_release(self) -> None:
        conn = connect(limits=Limits(max_unacked=2))
        s1 = subscribe(conn, "s1", "client-individual")
        s2 = subscribe(conn, "s2", "client")
        conn.record_delivery(s1, "m1")
        conn.record_delivery(s2, "m2")
        with pytest.raises(LimitExceeded) as info:
            conn.record_delivery(s1, "m3")
        assert info.value.message == "too many unacknowledged messages"
        assert "m3" not in s1.pending
        send(conn, "ACK", [("id", ack_id("s1", "m1"))])
        conn.record_delivery(s1, "m3")
        assert list(s1.pending) == ["m3"]

    def test_unsubscribe_releases(self) -> None:
        conn = connect(limits=Limits(max_unacked=1))
        conn.record_delivery(subscribe(conn, "s1", "client"), "m1")
        send(conn, "UNSUBSCRIBE", [("id", "s1")])
        conn.record_delivery(subscribe(conn, "s2", "client"), "m2")


class TestMaxTransactionFrames:
    def test_counted_across_open_transactions(self) -> None:
        conn = connect(limits=Limits(max_transaction_frames=3))
        send(conn, "BEGIN", [("transaction", "t1")])
        send(conn, "BEGIN", [("transaction", "t2")])
        send(conn, "SEND", [("destination", "/a"), ("transaction", "t1")])
        send(conn, "SEND", [("destination", "/a"), ("transaction", "t2")])
        send(conn, "SEND", [("destination", "/a"), ("transaction", "t2")])
        with pytest.raises(LimitExceeded) as info:
            send(conn, "SEND", [("destination", "/a"), ("transaction", "t1"), ("receipt", "r")])
        assert info.value.message == "transaction too large"
        assert info.value.receipt_id == "r"

    @pytest.mark.parametrize("end", ["COMMIT", "ABORT"])
    def test_ending_a_transaction_frees_its_frames(self, end: str) -> None:
        conn = connect(limits=Limits(max_transaction_frames=2))
        for _ in range(3):
            send(conn, "BEGIN", [("transaction", "tx")])
            send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")])
            send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")])
            conn.receive_data(wire(end, [("transaction", "tx")]))
            got = events(conn)
            if end == "COMMIT":
                (commit,) = got
                assert isinstance(commit, Commit)
                assert [type(e) for e in commit.events] == [Send, Send]
            else:
                assert got == []

    def test_frames_outside_transactions_do_not_count(self) -> None:
        conn = connect(limits=Limits(max_transaction_frames=1))
        send(conn, "BEGIN", [("transaction", "tx")])
        for _ in range(3):
            assert isinstance(send(conn, "SEND", [("destination", "/a")]), Send)
        assert send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")]) is None


class TestMaxTransactions:
    def test_one_more_begin_is_refused(self) -> None:
        conn = connect(limits=Limits(max_transactions=3))
        for n in range(3):
            send(conn, "BEGIN", [("transaction", f"t{n}")])
        with pytest.raises(LimitExceeded) as info:
            send(conn, "BEGIN", [("transaction", "t3"), ("receipt", "r")])
        assert info.value.message == "too many transactions"
        assert "3" in info.value.detail
        assert info.value.receipt_id == "r"
        conn.fail(info.value)
        assert conn.state is ConnectionState.CLOSED
        (error,) = sent(conn)
        assert (error.command, error.get("message")) == (Command.ERROR, "too many transactions")

    @pytest.mark.parametrize("end", ["COMMIT", "ABORT"])
    def test_ending_a_transaction_frees_its_slot(self, end: str) -> None:
        conn = connect(limits=Limits(max_transactions=2))
        send(conn, "BEGIN", [("transaction", "keep")])
        for n in range(5):
            send(conn, "BEGIN", [("transaction", f"t{n}")])
            conn.receive_data(wire(end, [("transaction", f"t{n}")]))
            events(conn)
        with pytest.raises(LimitExceeded):
            for n in range(2):
                send(conn, "BEGIN", [("transaction", f"more{n}")])


class TestMaxTransactionBytes:
    """The bytes of what open transactions buffer (bodies and headers), across all of them."""

    def test_counted_in_bytes_across_open_transactions(self) -> None:
        conn = connect(limits=Limits(max_transaction_bytes=1000))
        send(conn, "BEGIN", [("transaction", "t1")])
        send(conn, "BEGIN", [("transaction", "t2")])
        body = b"x" * 300
        send(conn, "SEND", [("destination", "/a"), ("transaction", "t1")], body)
        send(conn, "SEND", [("destination", "/a"), ("transaction", "t2")], body)
        send(conn, "SEND", [("destination", "/a"), ("transaction", "t2")], body)
        with pytest.raises(LimitExceeded) as info:
            send(conn, "SEND", [("destination", "/a"), ("transaction", "t1"), ("receipt", "r")],
                 body)  # fmt: skip
        assert info.value.message == "transaction too large"
        assert "1000 bytes" in info.value.detail
        assert info.value.receipt_id == "r"

    def test_far_under_the_frame_count(self) -> None:
        """1,024 frames of 64 KiB used to be buffered (64 MiB a session): bytes bound it."""
        conn = connect(limits=Limits(max_frame_bytes=70000, max_transaction_bytes=1 << 20))
        send(conn, "BEGIN", [("transaction", "t")])
        body = b"x" * 65000
        with pytest.raises(LimitExceeded) as info:
            for _ in range(1024):
                send(conn, "SEND", [("destination", "/a"), ("transaction", "t")], body)
        assert info.value.message == "transaction too large"
        assert conn._transaction_bytes <= 1 << 20

    @pytest.mark.parametrize("end", ["COMMIT", "ABORT"])
    def test_ending_a_transaction_frees_its_bytes(self, end: str) -> None:
        conn = connect(limits=Limits(max_transaction_bytes=1000))
        for _ in range(5):
            send(conn, "BEGIN", [("transaction", "tx")])
            send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")], b"x" * 400)
            send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")], b"x" * 400)
            conn.receive_data(wire(end, [("transaction", "tx")]))
            events(conn)
        assert conn._transaction_bytes == 0
        send(conn, "BEGIN", [("transaction", "tx")])
        send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")], b"x" * 400)
        send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")], b"x" * 400)
        with pytest.raises(LimitExceeded):
            send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")], b"x" * 400)

    def test_frames_outside_transactions_do_not_count(self) -> None:
        conn = connect(limits=Limits(max_transaction_bytes=1024))
        send(conn, "BEGIN", [("transaction", "tx")])
        for _ in range(3):
            assert isinstance(send(conn, "SEND", [("destination", "/a")], b"x" * 800), Send)
        assert send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")], b"x") is None
        with pytest.raises(LimitExceeded):
            send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")], b"x" * 1000)


@pytest.mark.parametrize(
    ("limits", "data", "error"),
    [
        (Limits(max_frame_bytes=256), wire("SEND", [], b"x" * 300), FrameTooLarge),
        (Limits(max_headers=1), wire("SEND", [("a", "1"), ("b", "2")]), TooManyHeaders),
        (Limits(max_header_bytes=64), wire("SEND", [("k", "v" * 100)]), HeaderTooLarge),
    ],
)
def test_connection_applies_its_limits_to_the_parser(
    limits: Limits, data: bytes, error: type[ProtocolError]
) -> None:
    conn = ServerConnection(limits)
    conn.receive_data(wire("CONNECT", [("accept-version", "1.2")]) + data)
    conn.next_event()
    conn.accept(session="s", server="srv", user_name=None)
    with pytest.raises(error):
        conn.next_event()
