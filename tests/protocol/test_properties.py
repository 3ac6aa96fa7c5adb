"""Property-based tests of the codec and the connection (hypothesis).

1. serialize → parse round-trips any frame representable in a version.
2. Arbitrary bytes, chunked arbitrarily, give frames/events or a ProtocolError, never anything
   else, and the parser never holds more than a bounded, incomplete frame.
3. How a byte stream is split into chunks does not change what is parsed from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import FrameParser, escape, serialize, unescape
from protocol.connection import ConnectionState, ServerConnection
from protocol.errors import ProtocolError
from protocol.events import AckMode, ConnectRequest, Subscribe
from protocol.frames import UNESCAPED_COMMANDS, Command, Frame, StompVersion
from protocol.limits import Limits
from tests.protocol.client import parse, wire

EXAMPLES = settings(max_examples=150, deadline=None)

#: Small enough that generated input reaches every limit.
SMALL = Limits(
    max_frame_bytes=512,
    max_headers=8,
    max_header_bytes=128,
    max_subscriptions=2,
    max_unacked=2,
    max_transaction_frames=3,
)
#: What an incomplete frame may hold: a whole frame but its NUL, or a header section at its limit
#: plus the first two bytes ("\n\r") of the empty line that would end it.
BOUND = max(SMALL.max_frame_bytes, SMALL.max_header_bytes + 2)

SPECIALS = ":\\\n\r\x00 c"
EOLS = "\n\r"


def header_text(excluded: str = "", min_size: int = 0) -> st.SearchStrategy[str]:
    """Text rich in the characters escaping is about, minus ``excluded``."""
    specials = [c for c in SPECIALS if c not in excluded]
    alphabet = st.one_of(
        st.sampled_from(specials), st.characters(codec="utf-8", exclude_characters=excluded or None)
    )
    return st.text(alphabet, min_size=min_size, max_size=12)


def headers_for(
    version: StompVersion, command: Command
) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Headers ``serialize`` can carry losslessly for ``command`` in ``version``."""
    # A header's name has one character or more (the grammar); its value may be empty. No
    # version can carry a NUL in a header: the parser takes it for a frame that ended early.
    if command in UNESCAPED_COMMANDS or version is StompVersion.V1_0:
        names, values = header_text(":\x00" + EOLS, min_size=1), header_text("\x00" + EOLS)
    elif version is StompVersion.V1_1:
        names, values = header_text("\r\x00", min_size=1), header_text("\r\x00")
    else:
        names, values = header_text("\x00", min_size=1), header_text("\x00")
    # content-length is the codec's own business; explicit ones are tested on their own.
    names = names.filter(lambda name: name != "content-length")
    return st.lists(st.tuples(names, values), max_size=8)


@st.composite
def frames(draw: st.DrawFn, version: StompVersion) -> Frame:
    command = draw(st.sampled_from(Command))
    headers = draw(headers_for(version, command))
    body = draw(
        st.one_of(st.just(b""), st.binary(max_size=64), st.sampled_from([b"\x00", b"\n\x00\r"]))
    )
    return Frame(command, headers, body)


@st.composite
def versioned_frame(draw: st.DrawFn) -> tuple[StompVersion, Frame]:
    version = draw(st.sampled_from(StompVersion))
    return version, draw(frames(version))


def chunked(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    start = 0
    for cut in sorted(set(cuts)):
        yield data[start:cut]
        start = cut
    yield data[start:]


def cuts_for(data: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(data)), max_size=min(len(data), 40))


# -- 1. round trip ------------------------------------------------------------------------------


class TestRoundTrip:
    @EXAMPLES
    @given(versioned_frame())
    def test_serialize_then_parse(self, case: tuple[StompVersion, Frame]) -> None:
        version, frame = case
        data = serialize(frame, version)
        headers = list(frame.headers)
        if frame.body:
            headers.append(("content-length", str(len(frame.body))))
        assert parse(data, version) == [Frame(frame.command, headers, frame.body)]

    @EXAMPLES
    @given(versioned_frame(), st.data())
    def test_explicit_content_length_is_kept_as_is(
        self, case: tuple[StompVersion, Frame], data: st.DataObject
    ) -> None:
        version, frame = case
        at = data.draw(st.integers(0, len(frame.headers)))
        headers = list(frame.headers)
        headers.insert(at, ("content-length", str(len(frame.body))))
        explicit = Frame(frame.command, headers, frame.body)
        assert parse(serialize(explicit, version), version) == [explicit]

    @EXAMPLES
    @given(st.sampled_from([StompVersion.V1_1, StompVersion.V1_2]), st.data())
    def test_escape_then_unescape(self, version: StompVersion, data: st.DataObject) -> None:
        text = data.draw(header_text("" if version is StompVersion.V1_2 else "\r"))
        assert unescape(escape(text, version), version) == text

    @EXAMPLES
    @given(st.text(max_size=20))
    def test_1_0_is_verbatim_but_for_eols(self, text: str) -> None:
        assert unescape(text, StompVersion.V1_0) == text
        assert escape(text, StompVersion.V1_0) == text.replace("\n", " ").replace("\r", " ")


# -- 2. arbitrary input -------------------------------------------------------------------------

NAMES = [
    "destination", "id", "ack", "receipt", "transaction", "content-length", "accept-version",
    "heart-beat", "message-id", "subscription", "login",
]  # fmt: skip
VALUES = [
    "0", "1", "1/0", "/a", "auto", "client", "client-individual", "1.0", "1.1", "1.2", "1.0,1.2",
    "tx", "0,0", "10,10", "", "5", "0005", "9999999999", "\\c", "\\t",
]  # fmt: skip
COMMAND_NAMES = [c.value for c in Command] + ["FOO", "send"]

loose_headers = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(NAMES), st.text(max_size=6)),
        st.one_of(st.sampled_from(VALUES), st.text(max_size=6)),
    ),
    max_size=10,
)
serialized_frame = st.builds(
    serialize,
    st.builds(
        Frame,
        st.sampled_from(Command),
        loose_headers,
        st.binary(max_size=600),
    ),
    st.sampled_from(StompVersion),
)
hand_written_frame = st.builds(
    lambda command, headers, body, eol: wire(command, headers, body, eol=eol),
    st.sampled_from(COMMAND_NAMES),
    loose_headers,
    st.binary(max_size=200),
    st.sampled_from([b"\n", b"\r\n"]),
)
tokens = st.sampled_from(
    [b"\n", b"\r\n", b"\r", b"\x00", b":", b"\\", b"\n\n", b"\n\r\n", b"\xff", b"SEND\n",
     b"content-length:3\n", b"CONNECT\naccept-version:1.2\n\n\x00"]
)  # fmt: skip


@st.composite
def frame_at_a_limit(draw: st.DrawFn) -> bytes:
    """A SEND whose header section or whole size is within a few bytes of a SMALL limit."""
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    slack = draw(st.integers(-3, 3))
    if draw(st.booleans()):
        # Header section: "SEND" EOL "k:" value, up to the LF ending that line.
        value = b"v" * (SMALL.max_header_bytes + slack - 7 - 2 * (len(eol) - 1))
        return b"SEND" + eol + b"k:" + value + eol + eol + b"\x00"
    head = b"SEND" + eol + b"content-length:000" + eol + eol
    size = SMALL.max_frame_bytes + slack - len(head)
    if draw(st.booleans()):
        head = head.replace(b"000", b"%03d" % size)
    return head + b"x" * size + b"\x00"


byte_streams = st.lists(
    st.one_of(
        serialized_frame, hand_written_frame, tokens, st.binary(max_size=64), frame_at_a_limit()
    ),
    max_size=10,
).map(b"".join)

connect_frames = st.builds(
    lambda versions, beat: wire("CONNECT", [*versions, *beat]),
    st.sampled_from([[], *([("accept-version", v)] for v in ["1.2", "1.2", "1.1", "1.0", "2.0"])]),
    st.sampled_from(
        [[], [("heart-beat", "0,0")], [("heart-beat", "10,10")], [("heart-beat", "x")]]
    ),
)

REQUIRED: dict[str, list[list[tuple[str, str]]]] = {
    "SEND": [[("destination", "/a")]],
    "SUBSCRIBE": [[("destination", "/a"), ("id", "0")], [("destination", "/b"), ("id", "1")]],
    "UNSUBSCRIBE": [[("id", "0")], [("id", "1")]],
    "ACK": [[("id", "1/0")], [("id", "1/1")], [("message-id", "1"), ("subscription", "0")]],
    "NACK": [[("id", "1/0")], [("message-id", "1")]],
    "BEGIN": [[("transaction", "t")], [("transaction", "u")]],
    "COMMIT": [[("transaction", "t")], [("transaction", "u")]],
    "ABORT": [[("transaction", "t")]],
    "DISCONNECT": [[]],
}
EXTRA = [
    ("ack", "client"), ("ack", "client-individual"), ("receipt", "r"), ("transaction", "t"),
    ("content-type", "text/plain"), ("id", "0"),
]  # fmt: skip


@st.composite
def client_frame(draw: st.DrawFn) -> bytes:
    """A mostly well-formed client frame over a few ids, so sessions get somewhere."""
    command = draw(st.sampled_from(sorted(REQUIRED)))
    headers = draw(st.sampled_from(REQUIRED[command])) + draw(
        st.lists(st.sampled_from(EXTRA), max_size=2)
    )
    return wire(command, headers, draw(st.binary(max_size=16)))


@st.composite
def sessions(draw: st.DrawFn) -> bytes:
    """A CONNECT, client frames, and somewhere among them a piece of anything."""
    pieces = draw(st.lists(client_frame(), max_size=12))
    anything = st.one_of(serialized_frame, hand_written_frame, tokens, st.binary(max_size=64))
    pieces.insert(draw(st.integers(0, len(pieces))), draw(st.one_of(st.just(b""), anything)))
    return draw(connect_frames) + b"".join(pieces)


def parse_chunks(
    chunks: Iterable[bytes], limits: Limits, version: StompVersion | None = None
) -> tuple[list[Frame], str | None, int]:
    """(frames, name of the ProtocolError raised or None, bytes left buffered)."""
    parser = FrameParser(limits, version)
    out: list[Frame] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (frame := parser.next_frame()) is not None:
                out.append(frame)
            assert parser.buffered <= BOUND
    except ProtocolError as exc:
        assert exc.message
        return out, type(exc).__name__, -1
    return out, None, parser.buffered


class TestArbitraryInput:
    @EXAMPLES
    @given(st.data())
    def test_parser_raises_only_protocol_errors_and_stays_bounded(
        self, data: st.DataObject
    ) -> None:
        stream = data.draw(st.one_of(byte_streams, st.binary(max_size=2000)))
        parse_chunks(chunked(stream, data.draw(cuts_for(stream))), SMALL)

    @EXAMPLES
    @given(st.data())
    def test_connection_raises_only_protocol_errors_and_stays_bounded(
        self, data: st.DataObject
    ) -> None:
        stream = data.draw(sessions())
        conn = ServerConnection(SMALL)
        failed = False
        try:
            for chunk in chunked(stream, data.draw(cuts_for(stream))):
                conn.receive_data(chunk)
                while (event := conn.next_event()) is not None:
                    if isinstance(event, ConnectRequest):
                        conn.accept(session="s", server="srv", user_name=None)
                        continue
                    if isinstance(event, Subscribe) and event.subscription.ack is not AckMode.AUTO:
                        conn.record_delivery(event.subscription, "1")
                    conn.complete(event)
                if conn.state is ConnectionState.CONNECTED:
                    assert conn.buffered <= BOUND
        except ProtocolError as exc:
            failed = True
            conn.fail(exc)
            assert conn.state is ConnectionState.CLOSED
            conn.receive_data(stream)
            assert conn.next_event() is None
        # Whatever the server writes, a client can read.
        written = parse(conn.data_to_send(), conn.version)
        if failed:
            assert written[-1].command is Command.ERROR


# -- 3. chunking invariance ---------------------------------------------------------------------


class TestChunking:
    @EXAMPLES
    @given(st.lists(frames(StompVersion.V1_2), min_size=1, max_size=6), st.data())
    def test_valid_stream_parses_the_same_however_split(
        self, sources: list[Frame], data: st.DataObject
    ) -> None:
        beats = st.sampled_from([b"", b"\n", b"\r\n", b"\n\n"])
        stream = b"".join(data.draw(beats) + serialize(f) for f in sources) + data.draw(beats)
        v1_2 = StompVersion.V1_2
        whole = parse_chunks([stream], Limits(), v1_2)
        assert whole[1] is None
        assert whole[0] == [
            Frame(
                f.command,
                [*f.headers, *([("content-length", str(len(f.body)))] if f.body else [])],
                f.body,
            )
            for f in sources
        ]
        split = chunked(stream, data.draw(cuts_for(stream)))
        assert parse_chunks(split, Limits(), v1_2) == whole

    @EXAMPLES
    @given(st.data())
    def test_any_stream_same_outcome_however_split(self, data: st.DataObject) -> None:
        # Near the small limits too: the same frames, then the same error (or none).
        stream = data.draw(byte_streams)
        whole = parse_chunks([stream], SMALL)
        assert parse_chunks(chunked(stream, data.draw(cuts_for(stream))), SMALL) == whole

    @EXAMPLES
    @given(st.data())
    def test_one_byte_at_a_time(self, data: st.DataObject) -> None:
        stream = data.draw(byte_streams)
        whole = parse_chunks([stream], SMALL)
        assert parse_chunks((stream[i : i + 1] for i in range(len(stream))), SMALL) == whole


class TestLargeBodyByteByByte:
    """A 64 KiB body fed one byte at a time completes: no rescans of what was already seen."""

    BODY = bytes(range(1, 256)) * 257  # 65535 bytes, no NUL

    def feed_bytewise(self, data: bytes) -> Frame:
        parser = FrameParser(Limits(max_frame_bytes=70000))
        for i in range(len(data) - 1):
            parser.feed(data[i : i + 1])
            assert parser.next_frame() is None
        parser.feed(data[-1:])
        frame = parser.next_frame()
        assert frame is not None
        return frame

    def test_without_content_length(self) -> None:
        body = self.BODY + b"!"
        frame = self.feed_bytewise(wire("SEND", [("destination", "/a")], body))
        assert frame == Frame(Command.SEND, [("destination", "/a")], body)

    def test_with_content_length(self) -> None:
        body = b"\x00" + self.BODY
        frame = self.feed_bytewise(serialize(Frame(Command.SEND, [("destination", "/a")], body)))
        assert frame.body == body
        assert frame.get("content-length") == "65536"
