"""The two ways a STOMP exchange can go wrong (after h11's split).

:class:`ProtocolError` means the peer broke the protocol or a limit: it carries the ``message``
header of the ERROR frame to answer with (and any extra headers, such as ``version`` for a failed
negotiation). :class:`LocalProtocolError` means our own code misused this package; it is a bug,
never shown to the peer beyond a generic message.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """The peer violated STOMP or a configured limit; answer with ERROR and close."""

    #: Short, stable reason used as a metrics label.
    reason: str = "protocol"

    def __init__(
        self,
        message: str,
        detail: str = "",
        *,
        headers: tuple[tuple[str, str], ...] = (),
        receipt_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.headers = headers
        self.receipt_id = receipt_id

    def __init_subclass__(cls, *, reason: str, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.reason = reason


# One class per reason, so callers and tests can catch the kind they expect.
class FrameTooLarge(ProtocolError, reason="frame_too_large"): ...


class TooManyHeaders(ProtocolError, reason="too_many_headers"): ...


class HeaderTooLarge(ProtocolError, reason="header_too_large"): ...


class MalformedFrame(ProtocolError, reason="malformed_frame"): ...


class UnknownCommand(ProtocolError, reason="unknown_command"): ...


class MissingHeader(ProtocolError, reason="missing_header"): ...


class VersionMismatch(ProtocolError, reason="version"): ...


class LimitExceeded(ProtocolError, reason="limit"): ...


class LocalProtocolError(Exception):
    """Our side called the protocol API in a way it does not allow (a bug in the caller)."""
