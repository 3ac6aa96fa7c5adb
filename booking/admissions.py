"""Who may shop for a sale: the waiting room's policy, joining it, and admission tokens.

An event with its waiting room on sells only to admitted users (SPEC §5, §6). :class:`Admissions`
applies the event's settings to the waiting room store (:mod:`booking.waiting_room`, in-process or
shared by the cluster) and stamps an admitted user's standing with a fresh admission token.

An admission token is a JWT (HS256, key derived from the node secret, apart from session tokens)
naming the event and the user, with an expiry. Holds on an event whose waiting room is on require
one for that same event and user; a token for another event or user, a forged or an expired one
is refused with :class:`~booking.errors.AdmissionRequired`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime

import jwt

from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.errors import AdmissionRequired, InvalidRequest, SaleNotOpen
from booking.hooks import BookingHooks
from booking.inventory import Inventory
from booking.waiting_room import ADMITTED, NOT_JOINED, Policy, Position, WaitingRoom

_PURPOSE = "admission"


class AdmissionSigner:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"concert-hub admission|" + secret.encode()).digest()

    def issue(self, event_id: int, user: str, expires_at: float) -> str:
        """A token valid until ``expires_at`` (unix seconds): the admission's own expiry, so a
        token re-issued to a reconnecting user never outlives the admission."""
        claims = {"sub": user, "evt": event_id, "exp": int(expires_at), "pur": _PURPOSE}
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str | None, event_id: int, user: str) -> None:
        if not token:
            raise AdmissionRequired("this sale has a waiting room: an admission token is required")
        try:
            claims = jwt.decode(
                token, self._key, algorithms=["HS256"], options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError:
            raise AdmissionRequired("the admission token has expired") from None
        except jwt.PyJWTError:
            raise AdmissionRequired("the admission token is not valid") from None
        if claims.get("pur") != _PURPOSE or claims.get("evt") != event_id or claims["sub"] != user:
            raise AdmissionRequired("the admission token is for another event or user")


class Admissions:
    """The waiting room as the booking core uses it: policy from the event, tokens on admission."""

    def __init__(
        self,
        inventory: Inventory,
        room: WaitingRoom,
        signer: AdmissionSigner,
        admission_ttl_s: int = 600,
        hooks: BookingHooks | None = None,
    ) -> None:
        self.inventory = inventory
        self.room = room
        self.signer = signer
        self.admission_ttl_s = admission_ttl_s
        self.hooks = hooks or BookingHooks()

    def policy(self, info: EventInfo, now: datetime | None = None) -> Policy:
        now = now or utcnow()
        return Policy(
            open=info.on_sale(now),
            paused=info.status == "paused",
            rate_per_s=info.admission_rate,
            max_active=info.max_active_shoppers,
            admission_ttl_s=self.admission_ttl_s,
        )

    def events(self) -> list[EventInfo]:
        """Loaded events whose waiting room is on (the admission scheduler's work list)."""
        return [info for info in self.inventory.loaded() if info.waiting_room]

    async def join(self, event_id: int, user: str) -> Position:
        """Join the event's waiting room (idempotent: re-joining keeps the place)."""
        info = await self.inventory.event(event_id)
        if not info.waiting_room:
            raise InvalidRequest("this event has no waiting room: hold seats directly")
        now = utcnow()
        if not info.live(now):
            raise SaleNotOpen("this sale is not open")
        position = await self.room.join(event_id, user, self.policy(info, now))
        self.hooks.queue_joined(event_id)
        return self.stamp(position)

    async def standing(self, event_id: int, user: str) -> Position:
        info = await self.inventory.event(event_id)
        found = await self.room.position(event_id, user, self.policy(info))
        if found is None:
            # A state, not an error: a page asks before the user has joined, and a 404 there
            # would be noise in every browser console.
            waiting = (await self.room.stats(event_id)).waiting
            return Position(event_id, user, NOT_JOINED, None, None, None, waiting, None)
        return self.stamp(found)

    def stamp(self, position: Position) -> Position:
        """``position`` with a fresh admission token when admitted (bound to the admission's
        own expiry, so a token re-issued after a reconnect never outlives the admission)."""
        until = position.admitted_until
        if position.state != ADMITTED or until is None:
            return position
        token = self.signer.issue(position.event_id, position.user, until)
        return dataclasses.replace(position, admission_token=token)

    async def complete(self, event_id: int, user: str) -> None:
        """The user bought: their admission is used up and makes room for the next in line."""
        await self.room.complete(event_id, user)
