"""A real SMTP server for the tests: aiosmtpd on a spare port, keeping what it receives.

``MailCatcher`` runs aiosmtpd's ``Controller`` (its own thread and event loop) and parses each
message with the standard library, so tests read recipients, subjects, parts and attachments as
a mail program would. It can be stopped and started again on the same port (an SMTP outage).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import free_port

#: How long a test waits for an e-mail the server should send.
MAIL_WAIT_S = 30.0


@dataclass(frozen=True)
class Received:
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None, "no text/plain part"
        return str(part.get_content())

    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None, "no text/html part"
        return str(part.get_content())

    def parts(self, content_type: str) -> list[EmailMessage]:
        return [p for p in self.message.walk() if p.get_content_type() == content_type]

    def links(self) -> list[str]:
        return re.findall(r"https?://\S+", self.text())


class _Keep:
    def __init__(self, catcher: MailCatcher) -> None:
        self.catcher = catcher

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.catcher.lock:
            if self.catcher.refusing.intersection(envelope.rcpt_tos):
                return "451 4.3.0 mailbox busy, try again later"
            self.catcher.received.append(Received(list(envelope.rcpt_tos), message))
        return "250 OK"


class MailCatcher:
    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        #: Addresses whose mail is refused for now (a temporary failure: the sender retries).
        self.refusing: set[str] = set()
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def flags(self) -> dict[str, Any]:
        """The server flags that send mail here (plain SMTP: no TLS on the test port)."""
        return {
            "smtp_host": "127.0.0.1",
            "smtp_port": self.port,
            "smtp_security": "none",
            "smtp_timeout_s": 5,
            "outbox_poll_s": 0.2,
            "retry_max_s": 1,
        }

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if address in r.recipients]

    def wait_for(
        self, address: str, count: int = 1, timeout: float = MAIL_WAIT_S
    ) -> list[Received]:
        """The messages to ``address`` once there are at least ``count``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"{count} e-mail(s) to {address} expected, got {len(self.to(address))}"
        )


@pytest.fixture(scope="module")
def mail() -> Iterator[MailCatcher]:
    catcher = MailCatcher()
    catcher.start()
    yield catcher
    catcher.stop()
