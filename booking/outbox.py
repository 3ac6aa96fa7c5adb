"""The transactional outbox: messages to the outside world, written with the change they
announce and delivered afterwards, each once.

A service that commits something the outside must hear about (an order paid, a sign-in asked
for) calls :func:`enqueue` *on the same connection, in the same transaction*: the message
exists exactly when the change does. A background sender (:meth:`Outbox.deliver_due`) hands
due messages to the host's handler for their ``kind`` (the server sends e-mail; issue 17's
integration events are another kind) and records the outcome:

* success → ``sent_at`` is set and the message is never handed out again;
* failure → ``attempts`` + 1, ``last_error``, and ``next_attempt_at`` moves out by an
  exponential backoff capped at ``retry_max_s``; it is retried until it succeeds.

The ``dedupe_key`` is unique: enqueueing the same key twice keeps the first message, so a
retried request cannot send twice. Several nodes may run senders over one database: a sender
first *claims* a due message by moving its ``next_attempt_at`` past a lease in one conditional
``UPDATE``, so two nodes never hand out the same message at once. A node that dies between the
handler's success and the ``sent_at`` write leaves the message to be sent again after the lease
(at least once; that window is milliseconds, and e-mails carry a Message-ID derived from the
dedupe key so that a receiving system can drop the copy).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from booking.clock import utcnow
from booking.schema import outbox

log = logging.getLogger(__name__)

#: How long a claimed message is left to its sender before another may take it.
LEASE = timedelta(seconds=60)
#: The longest ``last_error`` kept.
MAX_ERROR = 1000


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    kind: str
    ref: str | None
    payload: dict[str, Any]
    dedupe_key: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the record says about one message (the order desk lists them)."""

    id: int
    kind: str
    ref: str | None
    recipient: str | None
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None
    created_at: datetime


#: Sends one message; raises to have it retried. It may return a payload to keep on record in
#: place of the sent one (a sign-in message drops its secrets once sent).
Handler = Callable[[OutboxMessage], Awaitable[dict[str, Any] | None]]


async def enqueue(
    conn: AsyncConnection,
    kind: str,
    payload: dict[str, Any],
    dedupe_key: str,
    *,
    ref: str | None = None,
) -> None:
    """Add a message in the caller's transaction; a message with this key already there wins."""
    now = utcnow()
    statement = (
        insert(outbox)
        .values(
            kind=kind, ref=ref, payload=json.dumps(payload), dedupe_key=dedupe_key[:191],
            attempts=0, next_attempt_at=now, created_at=now,
        )
        .prefix_with("IGNORE", dialect="mysql")
        .prefix_with("OR IGNORE", dialect="sqlite")
    )  # fmt: skip
    await conn.execute(statement)


def backoff(attempts: int, retry_max_s: float) -> timedelta:
    """1 s, 2 s, 4 s … after each failed attempt, never more than ``retry_max_s``."""
    return timedelta(seconds=min(retry_max_s, 2.0 ** max(0, attempts - 1)))


@dataclass(frozen=True, slots=True)
class Retry:
    """What to record after a failed attempt (of a message, of a refund)."""

    attempts: int
    last_error: str
    next_attempt_at: datetime

    @classmethod
    def after(cls, attempts_before: int, exc: Exception, retry_max_s: float) -> Retry:
        attempts = attempts_before + 1
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return cls(attempts, error[:MAX_ERROR], utcnow() + backoff(attempts, retry_max_s))

    def values(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "last_error": self.last_error,
                "next_attempt_at": self.next_attempt_at}  # fmt: skip


class Outbox:
    """Delivering the outbox's due messages through the host's handlers, by kind."""

    def __init__(
        self,
        engine: AsyncEngine,
        retry_max_s: float = 300.0,
        batch: int = 20,
        lease: timedelta = LEASE,
    ) -> None:
        self.engine = engine
        self.retry_max_s = retry_max_s
        #: How long a claimed message is its sender's (after a crash: how long until it is
        #: sent again).
        self.lease = lease
        self.batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was just enqueued on this node: look now rather than at the next poll."""
        self._wake.set()

    async def wait(self, timeout_s: float) -> None:
        """Until :meth:`wake` or ``timeout_s``, whichever comes first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    async def deliver_forever(
        self, handlers: Mapping[str, Handler], poll_s: float, *, what: str
    ) -> None:
        """Deliver what is due until cancelled: at every :meth:`wake` and every ``poll_s``. A
        failure of one round is logged and the next round tries again (each sender of the node,
        e-mail or integration events, runs one of these for its own kinds)."""
        while True:
            try:
                await self.deliver_due(handlers)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the %s sender failed; trying again", what)
            await self.wait(poll_s)

    async def deliver_due(self, handlers: Mapping[str, Handler]) -> int:
        """Hand every due message to its kind's handler; how many were sent."""
        sent = 0
        for message in await self._claim_due(tuple(handlers)):
            try:
                kept = await handlers[message.kind](message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._failed(message, exc)
            else:
                await self._sent(message, kept)
                sent += 1
        return sent

    async def deliveries(self, ref: str) -> list[Delivery]:
        """Every message about ``ref`` (an order), oldest first."""
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(outbox).where(outbox.c.ref == ref).order_by(outbox.c.id)
            )
            return [_delivery(row) for row in found]

    async def _claim_due(self, kinds: tuple[str, ...]) -> list[OutboxMessage]:
        now = utcnow()
        due = (outbox.c.sent_at.is_(None), outbox.c.next_attempt_at <= now)
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(outbox)
                    .where(*due, outbox.c.kind.in_(kinds))
                    .order_by(outbox.c.next_attempt_at, outbox.c.id)
                    .limit(self.batch)
                )
            ).all()
        claimed = []
        for row in rows:
            async with self.engine.begin() as conn:
                won = await conn.execute(
                    update(outbox)
                    .where(outbox.c.id == row.id, *due)
                    .values(next_attempt_at=now + self.lease)
                )
            if won.rowcount == 1:  # else another node took it, or it was sent meanwhile
                claimed.append(
                    OutboxMessage(
                        id=row.id, kind=row.kind, ref=row.ref, payload=json.loads(row.payload),
                        dedupe_key=row.dedupe_key, attempts=row.attempts,
                        created_at=row.created_at,
                    )
                )  # fmt: skip
        return claimed

    async def _sent(self, message: OutboxMessage, kept: dict[str, Any] | None) -> None:
        values: dict[str, Any] = {"sent_at": utcnow(), "attempts": message.attempts + 1}
        if kept is not None:
            values["payload"] = json.dumps(kept)
        async with self.engine.begin() as conn:
            await conn.execute(update(outbox).where(outbox.c.id == message.id).values(**values))

    async def _failed(self, message: OutboxMessage, exc: Exception) -> None:
        retry = Retry.after(message.attempts, exc, self.retry_max_s)
        log.warning("outbox message %d (%s) failed: %s", message.id, message.kind, retry)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(outbox).where(outbox.c.id == message.id).values(**retry.values())
            )


def _delivery(row: Any) -> Delivery:
    payload = json.loads(row.payload)
    # An e-mail's address, or a webhook delivery's URL.
    recipient = payload.get("email") or payload.get("url") if isinstance(payload, dict) else None
    return Delivery(
        id=row.id, kind=row.kind, ref=row.ref,
        recipient=str(recipient) if recipient is not None else None, attempts=row.attempts,
        next_attempt_at=row.next_attempt_at, last_error=row.last_error, sent_at=row.sent_at,
        created_at=row.created_at,
    )  # fmt: skip
