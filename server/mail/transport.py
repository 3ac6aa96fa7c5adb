"""How a message leaves the node: an SMTP server (aiosmtplib), or, in the embedded default
without one, a folder of ``.eml`` files (like the file e-mail back-ends of well-known web
frameworks), which any mail program opens.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib
from sqlalchemy.engine import make_url

from server.settings import Settings


class MailTransport(Protocol):
    #: Says where mail goes, for the start-up log.
    description: str
    #: Messages stay on this machine (no SMTP): sign-in links are logged too, so that whoever
    #: runs the node can sign in.
    local: bool

    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` or raise (the outbox retries it)."""


class SmtpTransport:
    local = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.description = (
            f"SMTP {settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security})"
        )

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_user or None,
            password=s.smtp_password or None,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            timeout=s.smtp_timeout_s,
        )


class FolderTransport:
    """Each message as ``<time>-<message id>.eml`` in one folder, written whole or not at all
    (a temporary name, then a rename)."""

    local = True

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.description = f"the folder {folder} (.eml files; no --smtp-host set)"

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._write, message)

    def _write(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # <id@host> → id-at-host: the file name keeps where the @ was.
        ident = re.sub(r"[^\w.-]", "", str(message["Message-ID"] or "message").replace("@", "-at-"))
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}-{ident}.eml"
        partial = self.folder / f".{name}.tmp"
        partial.write_bytes(bytes(message))
        os.replace(partial, self.folder / name)


def outbox_folder(settings: Settings) -> Path:
    """``--outbox-dir``, or a folder beside the SQLite file (``concert-hub-outbox`` beside
    ``concert-hub.db``), or ``./concert-hub-outbox``."""
    if settings.outbox_dir:
        return Path(settings.outbox_dir)
    url = make_url(settings.database_url)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        db = Path(url.database)
        return db.with_name(f"{db.stem}-outbox")
    return Path("concert-hub-outbox")


def open_transport(settings: Settings) -> MailTransport:
    if settings.smtp_host:
        return SmtpTransport(settings)
    return FolderTransport(outbox_folder(settings))
