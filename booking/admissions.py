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
import logging
import time
from datetime import datetime

import jwt

from booking import fairness
from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.errors import AdmissionRequired, InvalidRequest, SaleNotOpen, Unavailable
from booking.hooks import BookingHooks
from booking.inventory import Inventory
from booking.keyring import Keyring, decode_with_any
from booking.outflow import Outflow
from booking.proof import ProofOfWork
from booking.waiting_room import (
    ADMITTED,
    NOT_JOINED,
    SELLING,
    Offer,
    Policy,
    Position,
    WaitingRoom,
    sale_state,
)

log = logging.getLogger(__name__)

_PURPOSE = "admission"
#: How long a sale's state (seats available, paused, sold out) is reused before it is counted
#: again from the seat map (joins and ticks read it often; the count is a pass over the seats).
SALE_EVERY_S = 0.1
#: Offers kept for reading back before the lapsed ones are dropped.
_OFFERS_KEPT = 10_000


class AdmissionSigner:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._keys = keyring.keys("admission")

    def issue(self, event_id: int, user: str, expires_at: float) -> str:
        """A token valid until ``expires_at`` (unix seconds): the admission's own expiry, so a
        token re-issued to a reconnecting user never outlives the admission."""
        claims = {"sub": user, "evt": event_id, "exp": int(expires_at), "pur": _PURPOSE}
        return jwt.encode(claims, self._keys[0], algorithm="HS256")

    def verify(self, token: str | None, event_id: int, user: str) -> None:
        if not token:
            raise AdmissionRequired("this sale has a waiting room: an admission token is required")
        try:
            claims = decode_with_any(
                token, self._keys, algorithms=["HS256"], options={"require": ["exp", "sub"]}
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
        self.proof = ProofOfWork(signer.keyring)
        #: Each event's admission rate (fixed, or adaptive: :mod:`booking.outflow`).
        self.outflow = Outflow()
        #: event → (when counted, sale state, seats available or None).
        self._sales: dict[int, tuple[float, str, int | None]] = {}
        #: (event, user) → the seats offered to them, on hold (this node's offers).
        self._offers: dict[tuple[int, str], Offer] = {}
        #: event → users admitted for returned seats, not yet told (the stream tells them).
        self._offered: dict[int, list[str]] = {}

    def policy(self, info: EventInfo, now: datetime | None = None) -> Policy:
        now = now or utcnow()
        sale, seats = self.sale(info)
        return Policy(
            open=info.on_sale(now),
            paused=info.status == "paused",
            rate_per_s=self.outflow.rate(info),
            max_active=info.max_active_shoppers,
            admission_ttl_s=self.admission_ttl_s,
            sale=sale,
            seats=seats,
        )

    def sale(self, info: EventInfo) -> tuple[str, int | None]:
        """The sale's state (``selling``, ``paused``, ``sold_out``) and the seats available
        outside holds, from this node's seat map (``None`` seats: not loaded, not bounded)."""
        clock = time.monotonic()
        cached = self._sales.get(info.id)
        if cached is not None and clock - cached[0] < SALE_EVERY_S:
            return cached[1], cached[2]
        supply = self.inventory.supply(info.id)
        state, seats = (SELLING, None) if supply is None else (sale_state(*supply), supply[0])
        self._sales[info.id] = (clock, state, seats)
        return state, seats

    async def admit_for_seats(self, info: EventInfo, count: int) -> list[str]:
        """Seats came back: admit the next ``count`` users in line at once (one per seat)."""
        self._sales.pop(info.id, None)
        return await self.room.offer(info.id, count, self.policy(info), time.time())

    def offered(self, event_id: int, users: list[str], offers: list[Offer]) -> None:
        """Users admitted by :meth:`admit_for_seats`, with the seats put on hold for them: to be
        told (:meth:`take_offered`), and shown their offer when they ask where they stand."""
        if len(self._offers) > _OFFERS_KEPT:
            now = time.time()
            self._offers = {k: o for k, o in self._offers.items() if o.expires_at > now}
        for offer in offers:
            self._offers[(offer.event_id, offer.user)] = offer
        if users:
            self._offered.setdefault(event_id, []).extend(users)

    def take_offered(self, event_id: int) -> list[str]:
        """Users admitted for returned seats since the last call (to push their admission)."""
        return self._offered.pop(event_id, [])

    def events(self) -> list[EventInfo]:
        """Loaded events whose waiting room is on (the admission scheduler's work list)."""
        return [info for info in self.inventory.loaded() if info.waiting_room]

    async def challenge(self, event_id: int, user: str) -> tuple[str, int, float]:
        """A proof-of-work challenge for joining (:mod:`booking.proof`): the challenge, its
        difficulty (the event's now; 0: no proof needed) and when it expires."""
        info = await self.inventory.public_event(event_id)
        if not info.waiting_room:
            raise InvalidRequest("this event has no waiting room: hold seats directly")
        challenge, expires = self.proof.challenge(event_id, user, info.pow_difficulty)
        return challenge, info.pow_difficulty, expires

    async def join(self, event_id: int, user: str, proof: str | None = None) -> Position:
        """Join the event's waiting room (idempotent: re-joining keeps the place); with a
        proof of work when the event asks for one."""
        info = await self.inventory.public_event(event_id)
        if not info.waiting_room:
            raise InvalidRequest("this event has no waiting room: hold seats directly")
        now = utcnow()
        if not info.live(now):
            raise SaleNotOpen("this sale is not open")
        if info.pow_difficulty > 0:
            self.proof.verify(proof, event_id, user)
        position = await self.room.join(event_id, user, self.policy(info, now))
        self.hooks.queue_joined(event_id)
        return self.stamp(position)

    async def audit(self, event_id: int) -> dict[str, object]:
        """The public fairness audit of the event's waiting room (:mod:`booking.fairness`):
        the seed's commitment before opening; then the seed, the pre-queue (opaque ids) and the
        hash-chained log of its placement and of every admission. Checked before it is served:
        a log that does not verify is an error (:class:`~booking.fairness.AuditBroken`), loud."""
        info = await self.inventory.public_event(event_id)
        if not info.waiting_room:
            raise InvalidRequest("this event has no waiting room")
        doc = fairness.audit(event_id, await self.room.placement(event_id))
        if doc["seed"] is not None:
            problems = fairness.verify(doc)
            if problems:
                log.error("the fairness audit of event %d does not verify: %s", event_id,
                          "; ".join(problems))  # fmt: skip
                raise fairness.AuditBroken(
                    "the admission log does not verify: " + "; ".join(problems[:5]),
                    problems=problems,
                )
        return doc

    async def standing(self, event_id: int, user: str) -> Position:
        info = await self.inventory.public_event(event_id)
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
        offer = self._offers.get((position.event_id, position.user))
        if offer is not None and offer.expires_at <= time.time():
            offer = None
        return dataclasses.replace(position, admission_token=token, offer=offer)

    async def complete(self, event_id: int, user: str) -> None:
        """The user bought: their admission is used up and makes room for the next in line."""
        await self.room.complete(event_id, user)

    async def used_up(self, event_id: int, user: str) -> bool:
        """Whether a purchase used the user's admission up. While the waiting room cannot be
        reached the token's word stands: marking an admission used is best effort too, and a
        sale goes on through an outage of the cluster's Redis."""
        try:
            return await self.room.used(event_id, user)
        except Unavailable:
            return False
