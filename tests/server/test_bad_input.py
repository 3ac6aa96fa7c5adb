"""SPEC §3 "Errors" and §7: hostile or broken input gets its documented ERROR, then close.

Each case runs over raw TCP and over WebSocket (binary messages, so that non-UTF-8 garbage
reaches the STOMP layer). Before the bad input a :class:`Witness` publisher/subscriber pair is
connected to the same server; afterwards it must still complete a round trip, and the ERROR must
carry a ``message`` header and never a traceback.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.server.stomp_clients import RawPeer, RawTcp, RawWs, Witness, encode_frame, unique

DEST = "/topic/bad-input"


def _documented_messages() -> set[str]:
    """Every ERROR ``message`` in the README's Errors table (first column, back-quoted)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Errors", 1)[1].split("\n## ", 1)[0]
    found: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `") and not line.endswith("| when |"):
            first_cell = line.split("|")[1]
            found.update(re.findall(r"`([^`]+)`", first_cell))
    return found


#: Every ERROR ``message`` the README documents (``missing header: NAME`` is matched by prefix).
CONTRACT_MESSAGES = _documented_messages()


def frame(
    command: str,
    headers: dict[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    **kw: object,
) -> bytes:
    return encode_frame(command, headers, body, escape_headers=False, **kw)  # type: ignore[arg-type]


def junk(size: int) -> bytes:
    """Random bytes with no EOL and no NUL: never a frame boundary."""
    rng = random.Random(size)
    return bytes(rng.choice([b for b in range(256) if b not in (0, 10, 13)]) for _ in range(size))


@dataclass
class Case:
    id: str
    data: Callable[[], list[bytes]]
    messages: tuple[str, ...]
    connect: bool = True
    version: str = "1.2"
    receipt: bool = False  # the ERROR must carry receipt-id:bad
    note: str = field(default="")


CASES = [
    Case(
        "oversized-frame-with-content-length",
        lambda: [frame("SEND", {"destination": DEST, "content-length": "100000"}, b"a" * 2000)],
        ("frame too large",),
    ),
    Case(
        "oversized-frame-without-content-length",
        lambda: [frame("SEND", {"destination": DEST}, b"a" * 65600, content_length=False)],
        ("frame too large",),
    ),
    Case(
        "absurd-content-length",
        lambda: [frame("SEND", {"destination": DEST, "content-length": "9" * 60}, b"a")],
        ("frame too large",),
    ),
    Case(
        "too-many-headers",
        lambda: [frame("SEND", [("destination", DEST)] + [(f"h{n}", "v") for n in range(100)])],
        ("too many headers",),
    ),
    Case(
        "oversized-header-section",
        lambda: [frame("SEND", {"destination": DEST, "x-big": "z" * 9000})],
        ("header section too large",),
    ),
    Case(
        "endless-header-line",
        lambda: [b"SEND\ndestination:" + b"q" * 20000],
        ("header section too large",),
    ),
    Case(
        "garbage-before-connect",
        lambda: [b"\x16\x03\x01\x02\x00garbage\xff\xfe\x80\n\n\x00"],
        ("unknown command",),
        connect=False,
    ),
    Case(
        "garbage-without-line-breaks",
        lambda: [junk(10000)],
        ("header section too large", "unknown command"),
        connect=False,
    ),
    Case(
        "garbage-after-connect",
        lambda: [b"\x00\x01\x02\xff\xfeNOT STOMP\n\n\x00"],
        ("unknown command",),
    ),
    Case(
        "http-request-on-stomp",
        lambda: [b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"],
        ("unknown command",),
        connect=False,
    ),
    Case(
        "invalid-escape-1.2",
        lambda: [frame("SEND", {"destination": DEST, "x-bad": "tab\\there"}, b"x")],
        ("invalid header escape",),
    ),
    Case(
        "invalid-escape-1.1-cr",
        lambda: [frame("SEND", {"destination": DEST, "x-bad": "cr\\rhere"}, b"x")],
        ("invalid header escape",),
        version="1.1",
    ),
    Case(
        "trailing-backslash",
        lambda: [frame("SEND", {"destination": DEST, "x-bad": "end\\"}, b"x")],
        ("invalid header escape",),
    ),
    Case("unknown-command", lambda: [frame("FOO", {"receipt": "bad"})], ("unknown command",)),
    Case("lowercase-command", lambda: [frame("send", {"destination": DEST})], ("unknown command",)),
    Case(
        "server-frame-from-client",
        lambda: [frame("MESSAGE", {"destination": DEST, "message-id": "1", "subscription": "s"})],
        ("unexpected frame",),
        note="MESSAGE is a server frame: the README documents `unexpected frame` for it",
    ),
    Case(
        "send-without-destination",
        lambda: [frame("SEND", {"receipt": "bad"}, b"x")],
        ("missing header: destination",),
        receipt=True,
    ),
    Case(
        "subscribe-without-id",
        lambda: [frame("SUBSCRIBE", {"destination": DEST, "receipt": "bad"})],
        ("missing header: id",),
        receipt=True,
    ),
    Case(
        "subscribe-duplicate-id",
        lambda: [
            frame("SUBSCRIBE", {"id": "dup", "destination": DEST, "receipt": "ok"}),
            frame("SUBSCRIBE", {"id": "dup", "destination": "/topic/other", "receipt": "bad"}),
        ],
        ("duplicate subscription id",),
        receipt=True,
    ),
    Case(
        "subscribe-invalid-ack-mode",
        lambda: [
            frame(
                "SUBSCRIBE", {"id": "s", "destination": DEST, "ack": "sometimes", "receipt": "bad"}
            )
        ],
        ("invalid ack mode",),
        receipt=True,
    ),
    Case(
        "ack-unknown-id",
        lambda: [frame("ACK", {"id": "no-such-message", "receipt": "bad"})],
        ("unknown ack id",),
        receipt=True,
    ),
    Case(
        "nack-unknown-id",
        lambda: [frame("NACK", {"id": "no-such-message", "receipt": "bad"})],
        ("unknown ack id",),
        receipt=True,
    ),
    Case(
        "ack-without-id",
        lambda: [frame("ACK", {"receipt": "bad"})],
        ("missing header: id",),
        receipt=True,
    ),
    Case(
        "invalid-content-length",
        lambda: [frame("SEND", {"destination": DEST, "content-length": "12abc"}, b"x")],
        ("invalid content-length",),
    ),
    Case(
        "negative-content-length",
        lambda: [frame("SEND", {"destination": DEST, "content-length": "-1"}, b"x")],
        ("invalid content-length",),
    ),
    Case(
        "content-length-too-short",
        lambda: [frame("SEND", {"destination": DEST, "content-length": "2"}, b"xyz")],
        ("malformed frame",),
    ),
    Case(
        "header-without-colon",
        lambda: [b"SEND\ndestination:/topic/x\nno colon here\n\nbody\x00"],
        ("malformed header",),
    ),
    Case(
        "header-not-utf8",
        lambda: [b"SEND\ndestination:/topic/x\nx-h:\xff\xfe\n\nbody\x00"],
        ("malformed header",),
    ),
    Case(
        "frame-before-connect",
        lambda: [frame("SEND", {"destination": DEST, "receipt": "bad"}, b"x")],
        ("expected CONNECT",),
        connect=False,
    ),
    Case(
        "connect-twice",
        lambda: [frame("CONNECT", {"accept-version": "1.2", "host": "x"})],
        ("already connected",),
    ),
    Case(
        "commit-unknown-transaction",
        lambda: [frame("COMMIT", {"transaction": "nope", "receipt": "bad"})],
        ("unknown transaction",),
        receipt=True,
    ),
    Case(
        "send-in-unknown-transaction",
        lambda: [frame("SEND", {"destination": DEST, "transaction": "nope", "receipt": "bad"})],
        ("unknown transaction",),
        receipt=True,
    ),
    Case(
        "begin-twice",
        lambda: [
            frame("BEGIN", {"transaction": "t1"}),
            frame("BEGIN", {"transaction": "t1", "receipt": "bad"}),
        ],
        ("transaction already open",),
        receipt=True,
    ),
    Case(
        "begin-without-transaction",
        lambda: [frame("BEGIN", {"receipt": "bad"})],
        ("missing header: transaction",),
        receipt=True,
    ),
    Case(
        "invalid-heart-beat-header",
        lambda: [frame("CONNECT", {"accept-version": "1.2", "host": "x", "heart-beat": "soon"})],
        ("invalid heart-beat header",),
        connect=False,
        note="the README documents `invalid heart-beat header`",
    ),
]


def open_peer(server: ServerProcess, transport: str) -> RawPeer:
    if transport == "tcp":
        return RawTcp.to(server)
    return RawWs.to(server, binary=True)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_error_and_others_carry_on(
    server: ServerProcess, transport: str, case: Case
) -> None:
    witness = Witness(server)
    try:
        with open_peer(server, transport) as peer:
            if case.connect:
                token = server.token(unique("bad"), "publisher")
                reply = peer.connect(token=token, accept_version=case.version)
                assert reply.command == "CONNECTED", str(reply)
            for chunk in case.data():
                peer.send_raw(chunk)
            error = peer.expect_error(timeout=8)
            assert error.message is not None  # expect_error already asserted it is set
            assert error.message in CONTRACT_MESSAGES or error.message.startswith(
                "missing header: "
            ), f"undocumented ERROR message {error.message!r}"
            assert error.message in case.messages, f"{error.message!r}: {error}"
            if case.receipt:
                assert error.get("receipt-id") == "bad", str(error)
        witness.check()
    finally:
        witness.close()
