"""Customers known by e-mail: one-time sign-in by link or code, and token revocation.

Signing in (SPEC §5 ``/api/auth/...``):

1. :meth:`Customers.request_sign_in` writes a sign-in request — a random link secret and a
   6-digit code, both stored only as keyed hashes, valid ``ttl`` — and, in the same transaction,
   the outbox message that e-mails them. It does the same work for every address: it never
   looks at whether the address has a customer or orders, so neither its answer nor its timing
   tells anybody that. Requests per address are limited (``per_address_per_hour``, counted in
   the database, so across nodes); the edge limits them per client IP too.
2. :meth:`Customers.redeem_link` or :meth:`Customers.redeem_code` exchanges one for the
   customer (created on first sign-in). A request is used once: a conditional ``UPDATE`` marks
   it used, so of two racing redemptions one wins. A code is taken from any live request of
   the address (a user may type the code of the first of two e-mails). A wrong one counts
   against every live request of the address, so asking for more e-mails gives a guesser no
   more tries; after ``max_attempts`` a request's code is dead and a new one must be asked for.
   Its link is not: the link's secret cannot be guessed, and whoever has it reads the
   address's mail, so a stranger typing wrong codes for someone's address cannot lock its
   owner out. The address's live requests are read ``FOR UPDATE``, so guesses sent at once
   are counted one after the other, not all against the same count.

A customer's tokens carry the ``token_version`` they were issued under. :meth:`revoke_tokens`
raises it (signing out everywhere); :meth:`revocations` lists the versions raised within the
longest token lifetime, which is all a node needs to refuse older tokens without a query per
request.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.clock import utcnow
from booking.errors import InvalidRequest, NotFound, SignInFailed, SignInLimited
from booking.holds import new_id
from booking.keyring import Keyring, mac
from booking.outbox import Outbox, enqueue
from booking.rows import row_by_id
from booking.schema import customers, sign_ins

SIGN_IN = "sign_in"
MAX_EMAIL = 254


def sign_in_dedupe_key(request_id: str) -> str:
    """The outbox dedupe key of a sign-in request's e-mail (it goes with the request:
    :mod:`booking.retention`)."""
    return f"sign-in:{request_id}"


def normalize_email(address: str) -> str:
    """The stored form of an address: trimmed, lower-cased. The edges validate the syntax
    fully; this refuses what must never reach a table or a mail header whatever the edge did."""
    address = address.strip().lower()
    if (
        not 3 <= len(address) <= MAX_EMAIL
        or address.count("@") != 1
        or any(c in address for c in "\r\n\0 ")
    ):
        raise InvalidRequest("not an e-mail address")
    return address


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    email: str
    token_version: int


@dataclass(frozen=True, slots=True)
class SignInPolicy:
    ttl: timedelta = timedelta(minutes=15)
    max_attempts: int = 5
    per_address_per_hour: int = 5


class Customers:
    def __init__(
        self, engine: AsyncEngine, keys: Keyring, outbox: Outbox, policy: SignInPolicy | None = None
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.policy = policy or SignInPolicy()
        self._keys = keys.keys("sign-in v1")

    def _hash(self, text: str) -> str:
        return mac(self._keys[0], text.encode()).hex()

    def _hashes(self, text: str) -> list[str]:
        """What ``text`` hashes to under the secret and each previous one (a request made
        before a rotation still signs in after it)."""
        return [mac(key, text.encode()).hex() for key in self._keys]

    # -- signing in --------------------------------------------------------------------------

    async def request_sign_in(self, email: str, client_ip: str) -> None:
        """Record a sign-in request and queue its e-mail (``sign_in``: email, link secret,
        code, expiry)."""
        email = normalize_email(email)
        now = utcnow()
        request_id = new_id("sgn")
        link = secrets.token_urlsafe(24)
        code = f"{secrets.randbelow(1_000_000):06d}"
        async with self.engine.begin() as conn:
            recent = await conn.scalar(
                select(func.count()).select_from(sign_ins).where(
                    sign_ins.c.email == email, sign_ins.c.created_at > now - timedelta(hours=1)
                )
            )  # fmt: skip
            if int(recent or 0) >= self.policy.per_address_per_hour:
                raise SignInLimited(
                    "too many sign-in requests for this address; try again later",
                    retry_after_s=3600,
                )
            expires = now + self.policy.ttl
            await conn.execute(
                insert(sign_ins).values(
                    id=request_id, email=email, link_hash=self._hash(link),
                    code_hash=self._hash(f"{request_id}|{code}"), attempts=0,
                    client_ip=client_ip[:64], created_at=now, expires_at=expires,
                )
            )  # fmt: skip
            payload = {
                "email": email,
                "link": link,
                "code": code,
                "expires_at": expires.isoformat(),
            }
            await enqueue(conn, SIGN_IN, payload, sign_in_dedupe_key(request_id))

    async def redeem_link(self, link: str) -> Customer:
        now = utcnow()
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(sign_ins).where(
                        sign_ins.c.link_hash.in_(self._hashes(link)), self._live(now, codes=False)
                    )
                )
            ).first()
            if row is None:
                raise SignInFailed(_FAILED)
            return await self._use(conn, row.id, row.email, now)

    async def redeem_code(self, email: str, code: str) -> Customer:
        email = normalize_email(email)
        now = utcnow()
        async with self.engine.begin() as conn:
            # The live ones: a few (the address's requests are limited per hour).
            live = list(
                await conn.execute(
                    select(sign_ins)
                    .where(sign_ins.c.email == email, self._live(now))
                    .order_by(sign_ins.c.created_at.desc())
                    .with_for_update()
                )
            )
            for row in live:
                hashes = self._hashes(f"{row.id}|{code}")
                if any(hmac.compare_digest(row.code_hash, h) for h in hashes):
                    return await self._use(conn, row.id, email, now)
            if not live:
                failure = SignInFailed(_FAILED)
            else:
                # Counted in this transaction, which commits: the refusal is raised after it.
                await conn.execute(
                    update(sign_ins)
                    .where(sign_ins.c.id.in_([row.id for row in live]))
                    .values(attempts=sign_ins.c.attempts + 1)
                )
                dead = all(row.attempts + 1 >= self.policy.max_attempts for row in live)
                failure = SignInFailed(
                    "too many wrong codes; ask for a new sign-in e-mail" if dead else _FAILED
                )
        raise failure

    def _live(self, now: datetime, *, codes: bool = True) -> ColumnElement[bool]:
        """A sign-in request that may still be redeemed: unused, unexpired and (``codes``: by
        its code) not killed by wrong codes."""
        live = and_(sign_ins.c.used_at.is_(None), sign_ins.c.expires_at > now)
        if codes:
            live = and_(live, sign_ins.c.attempts < self.policy.max_attempts)
        return live

    async def _use(
        self, conn: AsyncConnection, request_id: str, email: str, now: datetime
    ) -> Customer:
        used = await conn.execute(
            update(sign_ins)
            .where(sign_ins.c.id == request_id, sign_ins.c.used_at.is_(None))
            .values(used_at=now)
        )
        if used.rowcount != 1:
            raise SignInFailed(_FAILED)  # a racing redemption won
        customer = await self._find(conn, email)
        if customer is None:
            try:
                async with conn.begin_nested():
                    await conn.execute(
                        insert(customers).values(
                            id=new_id("cus"), email=email, token_version=1, created_at=now
                        )
                    )
            except IntegrityError:
                pass  # created meanwhile by another sign-in of the same address
            customer = await self._find(conn, email)
            assert customer is not None
        await conn.execute(
            update(customers).where(customers.c.id == customer.id).values(signed_in_at=now)
        )
        return customer

    async def _find(self, conn: AsyncConnection, email: str) -> Customer | None:
        row = (await conn.execute(select(customers).where(customers.c.email == email))).first()
        return None if row is None else Customer(row.id, row.email, row.token_version)

    # -- customers and their tokens ----------------------------------------------------------

    async def get(self, customer_id: str) -> Customer:
        async with self.engine.connect() as conn:
            row = await row_by_id(conn, customers, customer_id, "no such customer")
        return Customer(row.id, row.email, row.token_version)

    async def revoke_tokens(self, customer_id: str) -> Customer:
        """Sign out everywhere: every token issued before now stops working."""
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(customers)
                .where(customers.c.id == customer_id)
                .values(token_version=customers.c.token_version + 1, tokens_revoked_at=utcnow())
            )
            if done.rowcount != 1:
                raise NotFound("no such customer")
        return await self.get(customer_id)

    async def revocations(self, within: timedelta) -> dict[str, int]:
        """Current token versions of the customers who revoked tokens within ``within``
        (older revocations cannot concern a token still alive)."""
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(customers.c.id, customers.c.token_version).where(
                    customers.c.tokens_revoked_at > utcnow() - within
                )
            )
            return {row.id: row.token_version for row in found}


_FAILED = "this sign-in link or code is not valid: wrong, expired or already used"
