"""Ticket codes signed with Ed25519, so that a door scanner verifies them offline with public keys.

A code is ``T2.<kid>.<payload>.<signature>`` (base64url parts): the payload is
``<event id>|<seat id>|<nonce>`` and the signature is Ed25519 over ``T2.<kid>.<payload>`` under
the key ``kid``. A scanner that holds the public keys (the event's check-in list) checks a code
without any secret that could mint one.

Keys live in ``ticket_keys``: every node signs with the newest key not retired; the private key is
stored encrypted (AES-GCM under a key derived from ``--secret``); a node whose secret unseals no
key (the secret was rotated) makes a new one, and the old keys keep verifying.
:meth:`TicketKeys.rotate` makes a new key and retires the others: a retired key keeps verifying
the codes of events that are not over yet (:data:`EVENT_OVER_AFTER` past their start) and no
others.

The codes issued before (``<payload>.<mac>``, HMAC under the secret,
:class:`~booking.tickets.TicketSigner`) keep verifying as a *legacy* format: the server checks
their MAC; a scanner offline cannot (it holds no secret), so it admits a legacy code only if the
check-in list names its ticket id as valid (see :mod:`booking.checkin`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.clock import utcnow
from booking.keyring import Keyring
from booking.schema import ticket_keys
from booking.tickets import TicketClaim, TicketSigner

V2 = "T2"
#: When an event counts as over (it has no end time): this long after its start. A retired
#: key stops verifying the codes of an event from then on.
EVENT_OVER_AFTER = timedelta(hours=12)
#: An unknown key id reloads the keys from the database at most this often (another node may
#: have rotated), so forged key ids cannot make every scan a query.
RELOAD_EVERY_S = 1.0


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def ticket_id(code: str) -> str:
    """A ticket's id in check-in lists: the first 96 bits of SHA-256 of its code, base64url
    (a scanner computes it from a scanned code; it reveals nothing that would make a code)."""
    return b64(hashlib.sha256(code.encode()).digest()[:12])


def event_over(starts_at: datetime, now: datetime) -> bool:
    return now >= starts_at + EVENT_OVER_AFTER


@dataclass(frozen=True, slots=True)
class PublicKey:
    kid: str
    #: The raw 32-byte Ed25519 public key, base64url.
    public_key: str
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True, slots=True)
class CodeClaim:
    """What a genuine code says; ``kid`` is ``None`` for a legacy (HMAC) code, and
    ``key_retired_at`` says when its key was rotated out (``None``: current or legacy)."""

    event_id: int
    seat_id: str
    kid: str | None
    key_retired_at: datetime | None
    #: The order, for legacy codes (Ed25519 codes do not carry it: the ticket row does).
    order_id: str | None = None


class TicketKeys:
    def __init__(self, engine: AsyncEngine, keyring: Keyring) -> None:
        self.engine = engine
        # Sealed under the current secret only (see booking.keyring).
        self._box = AESGCM(keyring.key("ticket keys v2"))
        self._public: dict[str, tuple[Ed25519PublicKey, PublicKey]] = {}
        self._signing: tuple[str, Ed25519PrivateKey] | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    # -- loading and rotating ------------------------------------------------------------------

    async def ready(self) -> None:
        """Load the keys (making the first one if there is none) unless loaded already."""
        if self._signing is None:
            async with self._lock:
                if self._signing is None:
                    await self._load(create=True)

    async def reload(self) -> None:
        async with self._lock:
            await self._load(create=False)

    async def rotate(self) -> PublicKey:
        """Make a new signing key and retire every other; returns the new key."""
        async with self._lock:
            now = utcnow()
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(ticket_keys)
                    .where(ticket_keys.c.retired_at.is_(None))
                    .values(retired_at=now)
                )
                kid = await self._insert_key(conn, now)
            await self._load(create=False)
            return self._public[kid][1]

    async def _insert_key(self, conn: object, now: datetime) -> str:
        private = Ed25519PrivateKey.generate()
        kid = secrets.token_hex(4)
        nonce = secrets.token_bytes(12)
        sealed = nonce + self._box.encrypt(nonce, private.private_bytes_raw(), kid.encode())
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        await conn.execute(  # type: ignore[attr-defined]
            insert(ticket_keys).values(
                kid=kid, public_key=b64(public), private_key=b64(sealed), created_at=now
            )
        )
        return kid

    async def _load(self, *, create: bool) -> None:
        async with self.engine.begin() as conn:
            rows = list((await conn.execute(select(ticket_keys))).all())
            signing = self._unseal_newest(rows)
            if create and signing is None:
                # none yet, or none this node's secret unseals (``--secret`` was rotated): a
                # new key; the others keep verifying with their public halves
                await self._insert_key(conn, utcnow())
                rows = list((await conn.execute(select(ticket_keys))).all())
                signing = self._unseal_newest(rows)
        self._public = {
            r.kid: (
                Ed25519PublicKey.from_public_bytes(unb64(r.public_key)),
                PublicKey(r.kid, r.public_key, r.created_at, r.retired_at),
            )
            for r in rows
        }
        if signing is not None:
            self._signing = signing
        self._loaded_at = time.monotonic()

    def _unseal_newest(self, rows: list[Any]) -> tuple[str, Ed25519PrivateKey] | None:
        """The newest key not retired whose private half this node's secret unseals."""
        live = sorted((r for r in rows if r.retired_at is None),
                      key=lambda r: (r.created_at, r.kid), reverse=True)  # fmt: skip
        for r in live:
            sealed = unb64(r.private_key)
            try:
                raw = self._box.decrypt(sealed[:12], sealed[12:], r.kid.encode())
            except InvalidTag:
                continue
            return r.kid, Ed25519PrivateKey.from_private_bytes(raw)
        return None

    # -- reading -------------------------------------------------------------------------------

    def public_keys(self) -> list[PublicKey]:
        return sorted((info for _, info in self._public.values()), key=lambda k: k.created_at)

    @property
    def current_kid(self) -> str:
        assert self._signing is not None, "TicketKeys.ready() was not awaited"
        return self._signing[0]

    def sign(self, event_id: int, seat_id: str) -> str:
        assert self._signing is not None, "TicketKeys.ready() was not awaited"
        kid, private = self._signing
        payload = f"{event_id}|{seat_id}|{secrets.token_hex(4)}".encode()
        signed = f"{V2}.{kid}.{b64(payload)}"
        return f"{signed}.{b64(private.sign(signed.encode()))}"

    async def verify(self, code: str, *, signature: bool = True) -> CodeClaim | None:
        """The claim of a genuine Ed25519 code, ``None`` for anything else.

        ``signature=False`` skips the Ed25519 check (the format and the key id are still
        checked): for a caller that then looks the exact code up among the issued tickets,
        which proves it genuine as well as the signature would."""
        parts = code.split(".")
        if len(parts) != 4 or parts[0] != V2:
            return None
        _, kid, payload_text, sig = parts
        found = self._public.get(kid)
        if found is None and time.monotonic() - self._loaded_at >= RELOAD_EVERY_S:
            await self.reload()
            found = self._public.get(kid)
        if found is None:
            return None
        key, info = found
        try:
            if signature:
                key.verify(unb64(sig), f"{V2}.{kid}.{payload_text}".encode())
            event_id, seat_id, _nonce = unb64(payload_text).decode().split("|")
            return CodeClaim(int(event_id), seat_id, kid, info.retired_at)
        except (InvalidSignature, ValueError, UnicodeDecodeError):
            return None


class TicketCodes:
    """Issues Ed25519 codes, and verifies those and the legacy HMAC ones."""

    def __init__(self, keys: TicketKeys, legacy: TicketSigner) -> None:
        self.keys = keys
        self.legacy = legacy

    async def ready(self) -> None:
        await self.keys.ready()

    def issue(self, event_id: int, seat_id: str, order_id: str) -> str:
        return self.keys.sign(event_id, seat_id)

    async def verify(self, code: str, *, signature: bool = True) -> CodeClaim | None:
        """What a genuine code says, ``None`` for anything else; ``signature=False``: see
        :meth:`TicketKeys.verify` (a legacy code's MAC is always checked: it is cheap)."""
        if code.startswith(V2 + "."):
            return await self.keys.verify(code, signature=signature)
        claim: TicketClaim | None = self.legacy.verify(code)
        if claim is None:
            return None
        return CodeClaim(claim.event_id, claim.seat_id, None, None, claim.order_id)
