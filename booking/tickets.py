"""Ticket codes that verify offline, and their QR rendering.

A code is ``<payload>.<mac>``, both base64url: the payload names the event, seat and order, and
the MAC is HMAC-SHA256 under the node's secret, truncated to 128 bits. A door scanner holding the
secret can check a code without the database; ``GET /api/tickets/{code}`` also says whether the
ticket is still valid (a cancelled order voids its tickets).
"""

from __future__ import annotations

import base64
import io
import secrets
from dataclasses import dataclass

import segno

from booking.keyring import Keyring, mac, signed_by_any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class TicketClaim:
    event_id: int
    seat_id: str
    order_id: str


class TicketSigner:
    def __init__(self, keyring: Keyring) -> None:
        self._keys = keyring.keys("ticket v1")

    def issue(self, event_id: int, seat_id: str, order_id: str) -> str:
        nonce = secrets.token_hex(4)
        payload = f"{event_id}|{seat_id}|{order_id}|{nonce}".encode()
        return f"{_b64(payload)}.{_b64(mac(self._keys[0], payload, 16))}"

    def verify(self, code: str) -> TicketClaim | None:
        """The claim of a genuine code, or ``None`` for a forged or malformed one."""
        try:
            payload_text, mac_text = code.split(".")
            payload = _unb64(payload_text)
            if not signed_by_any(self._keys, lambda k: mac(k, payload, 16), _unb64(mac_text)):
                return None
            event_id, seat_id, order_id, _nonce = payload.decode().split("|")
            return TicketClaim(int(event_id), seat_id, order_id)
        except (ValueError, UnicodeDecodeError):
            return None


def qr_svg(code: str) -> str:
    """The code as a standalone SVG document. (segno's ``svg_inline`` omits ``xmlns``, which
    is right inside HTML but makes browsers refuse the file as an ``<img>``.)"""
    out = io.BytesIO()
    segno.make(code, error="m").save(out, kind="svg", scale=4, border=2, xmldecl=False, nl=False)
    return out.getvalue().decode()
