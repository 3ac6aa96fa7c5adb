"""STOMP wire format: parse bytes into frames and serialize frames into bytes.

Implements STOMP 1.2 §"Augmented BNF" with the 1.0/1.1 differences:

* EOL is LF or CR LF for every version (1.2 requires accepting CR LF; being lenient with 1.0/1.1
  costs nothing and matches RabbitMQ). A CR that is not followed by LF is no EOL: between frames
  and on the command line it is refused in every version (no grammar allows it there). In a header
  1.2 forbids it (``header-name``/``header-value`` exclude CR; 1.2 writes it as ``\\r``), while
  1.1's grammar, whose only EOL is LF, lets a header hold one and 1.0 has no grammar: their
  headers keep it, as they keep any other byte.
* A NUL ends a frame. The grammar's header octets do not exclude it, but a NUL before the empty
  line that ends the headers is in practice a frame that ended too soon (a client that forgot
  the empty line), and passed on in a MESSAGE header it would end the frame early for a client
  that finds frames by their NUL. It is refused as soon as it is read, not when the header-size
  limit is reached.
* Header escaping (§"Value Encoding"): none in 1.0; ``\\\\ \\n \\c`` in 1.1; plus ``\\r`` in 1.2.
  CONNECT and CONNECTED are never escaped. An undefined escape is a protocol error.
* ``content-length`` (§"Header content-length") is honoured, so bodies may contain NUL; without it
  the body runs to the first NUL.
* Heart-beats (§"Heart-beating") are bare EOLs between frames and are skipped.

The parser is incremental and bounded: after :meth:`FrameParser.next_frame` returns ``None`` the
buffered, incomplete frame never exceeds the configured limits (it raises first), and a frame fed
one byte at a time is scanned in linear, not quadratic, time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from protocol.errors import (
    FrameTooLarge,
    HeaderTooLarge,
    MalformedFrame,
    TooManyHeaders,
    UnknownCommand,
)
from protocol.frames import COMMANDS_BY_NAME, UNESCAPED_COMMANDS, Command, Frame, StompVersion
from protocol.limits import Limits

_ESCAPES_1_1 = {"\\\\": "\\", "\\n": "\n", "\\c": ":"}
_ESCAPES_1_2 = {**_ESCAPES_1_1, "\\r": "\r"}
_ESCAPE_RE = re.compile(r"\\.?", re.DOTALL)
#: A run of EOLs: heart-beats, between frames (matched in C, whatever its length). A character
#: class: ``(?:\r?\n)*`` is 25 times slower on a flood of them; a CR without its LF is found
#: after the match (:meth:`FrameParser._eols_end`).
_EOLS = re.compile(rb"[\r\n]*")

_ENCODE_1_1 = str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c"})
_ENCODE_1_2 = str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c", "\r": "\\r"})
# STOMP 1.0 cannot represent a line break in a header; it is replaced by a space, and a colon
# in a header *name* would be read as the separator, so it becomes an underscore.
_ENCODE_1_0_VALUE = str.maketrans({"\n": " ", "\r": " "})
_ENCODE_1_0_NAME = str.maketrans({"\n": " ", "\r": " ", ":": "_"})
#: Every character any of the tables above changes: most values have none, and looking for them
#: costs a fifth of translating (the fan-out encodes a MESSAGE per waiting user every interval).
_SPECIAL = re.compile(r"[\\\n\r:]")


#: Every byte string a frame's first line can start with: the prefixes of each command, with
#: the CR of a CR LF line end. Anything else buffered before a first LF cannot become a frame
#: (a TLS ClientHello on the plain port, binary garbage) and is refused at once, not when a
#: limit or a timeout is reached.
_COMMAND_PREFIXES = frozenset(
    line[:n]
    for name in COMMANDS_BY_NAME
    for line in (name + b"\r",)
    for n in range(1, len(line) + 1)
)
_LONGEST_COMMAND_LINE = max(len(name) for name in COMMANDS_BY_NAME) + 1


def _not_a_frame(start: bytes) -> UnknownCommand:
    if start[:1] == b"\x16":
        detail = "this port speaks STOMP in plain text, not TLS"
    elif (lone_cr := _lone_cr_after_command(start)) is not None:
        detail = lone_cr
    else:
        detail = f"bytes that cannot begin a STOMP frame: {start[:16]!r}"
    return UnknownCommand("unknown command", detail)


def _lone_cr_after_command(line: bytes) -> str | None:
    """What is wrong with a command line whose command is followed by a CR without its LF
    (``SEND\\rdestination:...``), or ``None`` when that is not it: said plainly, since the
    command itself is one the client meant."""
    name, cr, _ = line.partition(b"\r")
    if not cr or name not in COMMANDS_BY_NAME:
        return None
    return f"a CR not followed by LF after {name.decode()}: a line ends with LF or CR LF"


def _cr_in_header() -> MalformedFrame:
    return MalformedFrame(
        "malformed header",
        "a header holds a CR that is not part of a CR LF line end; STOMP 1.2 writes it as \\r",
    )


def refuse_cr_in_headers(headers: Iterable[tuple[str, str]]) -> None:
    """Raise the error of a raw CR in a header if one of ``headers`` holds one: for CONNECT,
    which is read before its version is known and never unescaped, once it turns out to be 1.2
    (STOMP 1.2 §"Augmented BNF" excludes CR from header names and values)."""
    if any("\r" in name or "\r" in value for name, value in headers):
        raise _cr_in_header()


def _identity(text: str) -> str:
    return text


def unescape(text: str, version: StompVersion) -> str:
    """Decode a header name or value per ``version``; raise on an undefined escape."""
    if "\\" not in text or version is StompVersion.V1_0:
        return text
    table = _ESCAPES_1_2 if version is StompVersion.V1_2 else _ESCAPES_1_1

    def replace(match: re.Match[str]) -> str:
        try:
            return table[match.group(0)]
        except KeyError:
            raise MalformedFrame(
                "invalid header escape", f"undefined escape sequence {match.group(0)!r}"
            ) from None

    return _ESCAPE_RE.sub(replace, text)


def escape(text: str, version: StompVersion) -> str:
    """Encode a header value per ``version``."""
    if version is StompVersion.V1_2:
        return text.translate(_ENCODE_1_2)
    if version is StompVersion.V1_1:
        return text.translate(_ENCODE_1_1)
    return text.translate(_ENCODE_1_0_VALUE)


def _encoders(
    version: StompVersion, command: Command
) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """(name encoder, value encoder) for a frame of ``command`` in ``version``."""
    if command in UNESCAPED_COMMANDS:
        return _identity, _identity
    if version is StompVersion.V1_0:
        return (lambda t: t.translate(_ENCODE_1_0_NAME)), (lambda t: t.translate(_ENCODE_1_0_VALUE))
    table = _ENCODE_1_2 if version is StompVersion.V1_2 else _ENCODE_1_1
    return (lambda t: t.translate(table)), (lambda t: t.translate(table))


def serialize(frame: Frame, version: StompVersion = StompVersion.V1_2) -> bytes:
    """Encode ``frame`` for a peer speaking ``version``.

    A ``content-length`` header is added when the body is not empty and the frame has none, so a
    body holding NUL bytes always survives the trip.
    """
    encode_name, encode_value = _encoders(version, frame.command)
    lines = [frame.command.value]
    has_length = False
    for name, value in frame.headers:
        if name == "content-length":
            has_length = True
        lines.append(f"{encode_name(name)}:{encode_value(value)}")
    if frame.body and not has_length:
        lines.append(f"content-length:{len(frame.body)}")
    lines.append("\n")
    return "\n".join(lines).encode("utf-8") + frame.body + b"\x00"


def encode_message(
    version: StompVersion,
    *,
    destination: str,
    subscription: str,
    message_id: str,
    ack: str | None,
    headers: Iterable[tuple[str, str]],
    body: bytes,
) -> bytes:
    """Encode one MESSAGE frame (STOMP 1.2 §"MESSAGE").

    The broker calls this once per distinct recipient shape and writes the same bytes to every
    recipient of that shape, so it favours one straight pass over generality.
    """
    esc = _ENCODE_1_2 if version is StompVersion.V1_2 else _ENCODE_1_1
    if version is StompVersion.V1_0:
        esc = _ENCODE_1_0_VALUE
        name_esc = _ENCODE_1_0_NAME
    else:
        name_esc = esc
    special = _SPECIAL.search
    parts = [
        "MESSAGE\ndestination:",
        destination.translate(esc) if special(destination) else destination,
        "\nmessage-id:",
        message_id.translate(esc) if special(message_id) else message_id,
        "\nsubscription:",
        subscription.translate(esc) if special(subscription) else subscription,
    ]
    if ack is not None:
        parts += ["\nack:", ack.translate(esc) if special(ack) else ack]
    for name, value in headers:
        parts += [
            "\n",
            name.translate(name_esc) if special(name) else name,
            ":",
            value.translate(esc) if special(value) else value,
        ]
    parts += ["\ncontent-length:", str(len(body)), "\n\n"]
    return "".join(parts).encode("utf-8") + body + b"\x00"


def decode_head(
    section: bytes, version: StompVersion | None, limits: Limits
) -> tuple[Command, list[tuple[str, str]]]:
    """The command and headers of a frame's header section (its bytes up to the blank line),
    headers unescaped per ``version``; raises :class:`~protocol.errors.ProtocolError`.

    The one decoding of headers: :class:`FrameParser` uses it, and so does a client that has
    found a frame's boundaries itself and decodes its headers only when they are read
    (:class:`protocol.client.ReceivedFrame`).
    """
    lines = section.split(b"\n")
    command_name = lines[0].removesuffix(b"\r")  # EOL is [CR] LF: one CR, no more
    command = COMMANDS_BY_NAME.get(command_name)
    if command is None:
        shown = command_name[:32].decode("utf-8", "replace")
        raise UnknownCommand("unknown command", f"unknown command {shown!r}")
    if len(lines) - 1 > limits.max_headers:
        raise TooManyHeaders("too many headers", f"limit is {limits.max_headers} headers")
    unescaping = version
    if version is None or not version.escapes_headers or command in UNESCAPED_COMMANDS:
        unescaping = None
    # 1.2 allows a CR only as part of an EOL (see the module's docstring). Most frames have LF
    # line ends and no CR at all: one search of the section spares them the per-line check.
    strict_cr = version is StompVersion.V1_2 and b"\r" in section
    headers: list[tuple[str, str]] = []
    for raw in lines[1:]:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if strict_cr and b"\r" in line:
            raise _cr_in_header()
        name, sep, value = line.partition(b":")
        if not sep:
            raise MalformedFrame("malformed header", "a header line has no colon")
        if not name:  # the grammar: header-name = 1*<any OCTET except CR or LF or ":">
            raise MalformedFrame("malformed header", "a header has an empty name")
        try:
            key = name.decode("utf-8")
            val = value.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedFrame("malformed header", "header is not valid UTF-8") from None
        if unescaping is not None:
            key = unescape(key, unescaping)
            val = unescape(val, unescaping)
        headers.append((key, val))
    return command, headers


@dataclass(slots=True, eq=False)
class _PendingFrame:
    """A frame whose headers are parsed and whose body is still arriving."""

    command: Command
    headers: list[tuple[str, str]]
    body_start: int
    content_length: int | None
    #: Where the search for the NUL resumes (a frame without ``content-length``).
    scan_from: int


class FrameParser:
    """Incremental, bounded STOMP frame parser.

    ``version`` decides header unescaping; it is ``None`` until the connection negotiates one,
    which is right for the only frame allowed before that (CONNECT, never escaped).
    """

    __slots__ = ("_buffer", "_header_scan_from", "_pending", "limits", "version")

    def __init__(self, limits: Limits | None = None, version: StompVersion | None = None) -> None:
        self.limits = limits or Limits()
        self.version = version
        self._buffer = bytearray()
        self._pending: _PendingFrame | None = None
        self._header_scan_from = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as frames."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def frames(self) -> list[Frame]:
        """Every complete frame buffered so far."""
        out = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or ``None`` until more bytes arrive.

        Raises a :class:`~protocol.errors.ProtocolError` subclass on malformed input or a limit.
        """
        if self._pending is None:
            self._pending = self._parse_head()
            if self._pending is None:
                return None
        return self._take_body(self._pending)

    def _parse_head(self) -> _PendingFrame | None:
        buf = self._buffer
        # Heart-beats: EOLs between frames (STOMP 1.2 §"Heart-beating").
        eols = _EOLS.match(buf)
        skip = eols.end() if eols else 0
        if skip:
            if buf.find(b"\r", 0, skip) != -1:
                skip = self._eols_end(skip)
            del buf[:skip]
            self._header_scan_from = 0
        if not buf or buf == b"\r":  # nothing, or the CR of a CR LF whose LF is still to come
            return None
        # The command line first, whatever else is buffered, so that the outcome does not
        # depend on how the input was split.
        first_line_end = buf.find(b"\n", 0, _LONGEST_COMMAND_LINE + 1)
        if first_line_end == -1:
            head = bytes(buf[: _LONGEST_COMMAND_LINE + 1])
            if head not in _COMMAND_PREFIXES:
                raise _not_a_frame(head)
        elif (name := bytes(buf[:first_line_end]).removesuffix(b"\r")) not in COMMANDS_BY_NAME:
            detail = _lone_cr_after_command(name)
            if detail is None:
                detail = f"unknown command {name[:32].decode('utf-8', 'replace')!r}"
            raise UnknownCommand("unknown command", detail)
        limits = self.limits
        # The header section ends at the first empty line: "\n\n" or "\n\r\n".
        start = max(self._header_scan_from - 2, 0)
        end = -1
        nl = buf.find(b"\n", start)
        while nl != -1:
            if nl + 1 < len(buf) and buf[nl + 1] == 0x0A:
                end, body_start = nl, nl + 2
                break
            if nl + 2 < len(buf) and buf[nl + 1] == 0x0D and buf[nl + 2] == 0x0A:
                end, body_start = nl, nl + 3
                break
            if nl > limits.max_header_bytes:
                break
            nl = buf.find(b"\n", nl + 1)
        # A NUL ends a frame, so one before the empty line ends this frame inside its headers.
        # Each byte is searched once (from where the last call stopped), and only within the
        # limit: a NUL past it follows a section already too large, and is refused as that, as
        # it is when the bytes come one at a time.
        nul = buf.find(
            b"\x00",
            self._header_scan_from,
            min(len(buf) if end == -1 else end, limits.max_header_bytes + 1),
        )
        if nul != -1:
            raise MalformedFrame(
                "malformed frame",
                "a NUL byte before the empty line that ends the headers: a NUL ends a frame,"
                " so this one ended inside its header section",
            )
        if end == -1:
            # The first one or two bytes of the terminating empty line ("\n" or "\n\r") may
            # already be here; until they could not belong to an acceptable section, wait.
            if len(buf) > limits.max_header_bytes + 2:
                raise HeaderTooLarge(
                    "header section too large", f"limit is {limits.max_header_bytes} bytes"
                )
            self._header_scan_from = len(buf)
            return None
        self._header_scan_from = 0
        if end > limits.max_header_bytes:
            raise HeaderTooLarge(
                "header section too large", f"limit is {limits.max_header_bytes} bytes"
            )
        command, headers = decode_head(bytes(buf[:end]), self.version, limits)
        content_length: int | None = None
        for key, val in headers:
            if key == "content-length":  # the first one counts (STOMP 1.2 §"Repeated Header")
                content_length = self._content_length(val, body_start)
                break
        return _PendingFrame(command, headers, body_start, content_length, scan_from=body_start)

    def _eols_end(self, run: int) -> int:
        """Where the EOLs of the buffer's first ``run`` bytes (CRs and LFs) end; raises if a CR
        among them is not followed by LF (STOMP 1.2 §"Augmented BNF": EOL is ``[CR] LF``). A CR
        that ends the buffer may still get its LF: it stays, and the run ends before it."""
        buf = self._buffer
        waiting = run == len(buf) and buf[run - 1] == 0x0D
        if buf.count(b"\r", 0, run) - waiting != buf.count(b"\r\n", 0, run):
            raise MalformedFrame(
                "malformed frame", "a CR not followed by LF between frames: an EOL is LF or CR LF"
            )
        return run - waiting

    def _content_length(self, value: str, body_start: int) -> int:
        if not value.isdigit() or not value.isascii():
            raise MalformedFrame("invalid content-length", f"content-length {value[:32]!r}")
        digits = value.lstrip("0") or "0"
        # Bound the digits first: int() refuses more than 4300 of them with ValueError.
        if len(digits) > len(str(self.limits.max_frame_bytes)):
            raise FrameTooLarge("frame too large", f"limit is {self.limits.max_frame_bytes} bytes")
        length = int(digits)
        # Same measure as a frame without content-length: every byte before the closing NUL.
        if body_start + length > self.limits.max_frame_bytes:
            raise FrameTooLarge("frame too large", f"limit is {self.limits.max_frame_bytes} bytes")
        return length

    def _take_body(self, pending: _PendingFrame) -> Frame | None:
        buf = self._buffer
        limit = self.limits.max_frame_bytes
        if pending.content_length is not None:
            end = pending.body_start + pending.content_length
            if len(buf) <= end:
                return None
            if buf[end] != 0:
                raise MalformedFrame(
                    "malformed frame", "frame body is not followed by NUL at content-length"
                )
        else:
            end = buf.find(b"\x00", pending.scan_from)
            if end == -1:
                if len(buf) > limit:
                    raise FrameTooLarge("frame too large", f"limit is {limit} bytes")
                pending.scan_from = len(buf)
                return None
            if end > limit:
                raise FrameTooLarge("frame too large", f"limit is {limit} bytes")
        frame = Frame(pending.command, pending.headers, bytes(buf[pending.body_start : end]))
        del buf[: end + 1]
        self._pending = None
        return frame


def only_eols(data: bytes) -> bool:
    """Whether ``data`` holds nothing but heart-beat EOLs (or nothing at all)."""
    return _EOLS.fullmatch(data) is not None
