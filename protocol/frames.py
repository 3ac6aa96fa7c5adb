"""Typed STOMP frames (STOMP 1.2 §"STOMP Frames")."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class StompVersion(StrEnum):
    """A protocol version, ordered oldest to newest."""

    V1_0 = "1.0"
    V1_1 = "1.1"
    V1_2 = "1.2"

    @property
    def escapes_headers(self) -> bool:
        """1.0 has no header escaping; 1.1 and 1.2 do (STOMP 1.2 §"Value Encoding")."""
        return self is not StompVersion.V1_0


SUPPORTED_VERSIONS: tuple[StompVersion, ...] = tuple(StompVersion)


class Command(StrEnum):
    # Client frames (STOMP 1.2 §"Client Frames").
    CONNECT = "CONNECT"
    STOMP = "STOMP"
    SEND = "SEND"
    SUBSCRIBE = "SUBSCRIBE"
    UNSUBSCRIBE = "UNSUBSCRIBE"
    ACK = "ACK"
    NACK = "NACK"
    BEGIN = "BEGIN"
    COMMIT = "COMMIT"
    ABORT = "ABORT"
    DISCONNECT = "DISCONNECT"
    # Server frames (STOMP 1.2 §"Server Frames").
    CONNECTED = "CONNECTED"
    MESSAGE = "MESSAGE"
    RECEIPT = "RECEIPT"
    ERROR = "ERROR"


CLIENT_COMMANDS = frozenset(
    {
        Command.CONNECT,
        Command.STOMP,
        Command.SEND,
        Command.SUBSCRIBE,
        Command.UNSUBSCRIBE,
        Command.ACK,
        Command.NACK,
        Command.BEGIN,
        Command.COMMIT,
        Command.ABORT,
        Command.DISCONNECT,
    }
)

#: Frames whose headers are never escaped, whatever the version (STOMP 1.2 §"Value Encoding";
#: STOMP is CONNECT's 1.2 alias).
UNESCAPED_COMMANDS = frozenset({Command.CONNECT, Command.STOMP, Command.CONNECTED})

COMMANDS_BY_NAME: dict[bytes, Command] = {c.value.encode("ascii"): c for c in Command}


@dataclass(slots=True)
class Frame:
    """One STOMP frame.

    ``headers`` keeps order and repeats: STOMP 1.2 says only the first occurrence of a repeated
    header counts, but a faithful codec must still carry all of them.
    """

    command: Command
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (STOMP 1.2 §"Repeated Header Entries")."""
        for key, value in self.headers:
            if key == name:
                return value
        return default
