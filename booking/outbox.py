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
*claims* the due messages of a round by moving their ``next_attempt_at`` past a lease in one
conditional ``UPDATE``, so two nodes never hand out the same message at once (should another
node win one of them first, the round's claim is undone and each is claimed on its own). A node
that dies between the handler's success and the ``sent_at`` write leaves the message to be sent
again after the lease (at least once; e-mails carry a Message-ID derived from the dedupe key so
that a receiving system can drop the copy).

A round costs the same few round trips however many messages it carries (one read, one claim,
one write of the outcomes), so a sender works in rounds as large as it can get: a commit that
enqueued messages wakes this node's senders of their kinds once the commit is done (nobody has
to remember to), and a woken sender lets :data:`GATHER_S` pass before it claims, so that the
messages of a burst of commits go out together. Between wake-ups it sleeps until the next
message it knows of is due (a retry after its backoff, another node's lapsing lease), or for
``poll_s`` at most: the safety net for what other nodes enqueued and did not send.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, event, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry

from booking.clock import utcnow
from booking.schema import outbox

log = logging.getLogger(__name__)

#: How long a claimed message is left to its sender before another may take it.
LEASE = timedelta(seconds=60)
#: The longest ``last_error`` kept.
MAX_ERROR = 1000
#: How long a sender woken by a commit waits before it claims: the messages of the commits that
#: follow within it go out in the same round (a confirmation may leave this much later).
GATHER_S = 0.1
#: Where :func:`enqueue` notes, on the connection, the kinds its transaction added (read when the
#: connection goes back to the pool, after the commit).
_ENQUEUED = "booking.outbox.enqueued"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    kind: str
    ref: str | None
    payload: dict[str, Any]
    dedupe_key: str
    attempts: int
    created_at: datetime
    #: When its round claimed it: the same for every message of one round (a handler may keep
    #: what it read for the round's other messages).
    claimed_at: datetime | None = None


#: A handler that drops its message unsent returns the payload with this key saying why: the
#: message is done (never retried), and its record says ``skipped`` rather than ``sent``.
SKIPPED = "skipped"


#: What a message's record says of it (:func:`delivery_status`).
DeliveryStatus = Literal["sent", "pending", "retrying", "skipped"]


def delivery_status(sent_at: datetime | None, attempts: int, skipped: str | None) -> DeliveryStatus:
    """What a message's record says of it: ``skipped``, ``sent``, ``retrying`` (it failed at
    least once) or ``pending``."""
    if skipped is not None:
        return "skipped"
    if sent_at is not None:
        return "sent"
    return "retrying" if attempts else "pending"


def shown_times(
    status: DeliveryStatus, next_attempt_at: datetime, sent_at: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """(next attempt, sent) as a message's record shows them: the next attempt only while it is
    neither sent nor skipped, the time sent only once sent (a skipped message is recorded as
    done, with a ``sent_at``, though nothing went out)."""
    done = status in ("sent", "skipped")
    return (None if done else next_attempt_at), (sent_at if status == "sent" else None)


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
    #: Why it was not sent (:data:`SKIPPED`); ``None`` otherwise.
    skipped: str | None = None

    @property
    def status(self) -> DeliveryStatus:
        return delivery_status(self.sent_at, self.attempts, self.skipped)


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
    """Add a message in the caller's transaction; a message with this key already there wins.
    This node's senders of ``kind`` are woken once the connection is back in the pool (after
    the commit)."""
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
    conn.info.setdefault(_ENQUEUED, set()).add(kind)


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


@dataclass(slots=True)
class _Round:
    """What one round did, and when the sender should look again."""

    sent: int = 0
    #: It claimed as many as a round takes: more may be due now.
    full: bool = False
    #: The earliest moment a message it saw and did not send becomes due.
    next_due: datetime | None = None

    def due_at(self, when: datetime) -> None:
        self.next_due = when if self.next_due is None else min(self.next_due, when)


@dataclass(eq=False, slots=True)
class _Sender:
    """One :meth:`Outbox.deliver_forever` loop: its kinds, and its wake-up."""

    kinds: frozenset[str]
    woken: asyncio.Event = field(default_factory=asyncio.Event)


#: The outboxes of each engine, woken by its connections' check-ins (one listener per engine).
_OUTBOXES: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[Outbox]] = weakref.WeakKeyDictionary()


def _listen_for_commits(outbox_: Outbox) -> None:
    engine = outbox_.engine.sync_engine
    outboxes = _OUTBOXES.get(engine)
    if outboxes is None:
        outboxes = _OUTBOXES[engine] = weakref.WeakSet()
        watched = outboxes

        def checked_in(_: Any, entry: ConnectionPoolEntry) -> None:
            # Back in the pool: the transaction that enqueued is committed (or rolled back, and
            # the wake-up finds nothing).
            kinds = entry.info.pop(_ENQUEUED, None)
            if kinds:
                for box in tuple(watched):
                    box.wake(kinds)

        event.listen(engine, "checkin", checked_in)
    outboxes.add(outbox_)


class Outbox:
    """Delivering the outbox's due messages through the host's handlers, by kind."""

    def __init__(
        self,
        engine: AsyncEngine,
        retry_max_s: float = 300.0,
        batch: int = 20,
        lease: timedelta = LEASE,
        gather_s: float = GATHER_S,
    ) -> None:
        self.engine = engine
        self.retry_max_s = retry_max_s
        #: How long a claimed message is its sender's (after a crash: how long until it is
        #: sent again).
        self.lease = lease
        #: The most messages one round claims.
        self.batch = batch
        self.gather_s = gather_s
        self._senders: list[_Sender] = []
        _listen_for_commits(self)

    def wake(self, kinds: Collection[str] | None = None) -> None:
        """Messages of ``kinds`` (``None``: any) were just committed on this node: the senders
        that deliver them look now rather than at their next poll."""
        for sender in self._senders:
            if kinds is None or not sender.kinds.isdisjoint(kinds):
                sender.woken.set()

    async def deliver_forever(
        self, handlers: Mapping[str, Handler], poll_s: float, *, what: str, together: bool = False
    ) -> None:
        """Deliver what is due until cancelled: when a commit of this node adds messages of these
        kinds (after :attr:`gather_s`), when a message it knows of falls due, and every
        ``poll_s`` at most. A failure of one round is logged and the next round tries again
        (each sender of the node, e-mail or integration events, runs one of these for its own
        kinds). ``together``: see :meth:`deliver_due`."""
        sender = _Sender(frozenset(handlers))
        self._senders.append(sender)
        try:
            while True:
                sender.woken.clear()  # (a commit from now on wakes it again)
                wait_s = poll_s
                try:
                    done = await self._deliver(handlers, together)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("the %s sender failed; trying again", what)
                else:
                    if done.full:
                        continue
                    if done.next_due is not None:
                        due_in = (done.next_due - utcnow()).total_seconds()
                        wait_s = min(poll_s, max(0.0, due_in))
                if await _woken(sender.woken, wait_s):
                    await asyncio.sleep(self.gather_s)
        finally:
            self._senders.remove(sender)

    async def deliver_due(self, handlers: Mapping[str, Handler], together: bool = False) -> int:
        """Hand the due messages (a round's worth) to their kind's handler; how many were sent.
        ``together``: the handlers of a round run concurrently, started in the messages' order
        (what each does before its first ``await`` happens in that order), rather than one
        after the other."""
        return (await self._deliver(handlers, together)).sent

    async def deliveries(self, ref: str) -> list[Delivery]:
        """Every message about ``ref`` (an order), oldest first."""
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(outbox).where(outbox.c.ref == ref).order_by(outbox.c.id)
            )
            return [_delivery(row) for row in found]

    async def _deliver(self, handlers: Mapping[str, Handler], together: bool) -> _Round:
        done = _Round()
        claimed = await self._claim_due(tuple(handlers), done)
        sent: list[tuple[OutboxMessage, dict[str, Any] | None]] = []
        failed: list[tuple[OutboxMessage, Retry]] = []

        async def attempt(message: OutboxMessage) -> None:
            try:
                kept = await handlers[message.kind](message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                retry = Retry.after(message.attempts, exc, self.retry_max_s)
                log.warning("outbox message %d (%s) failed: %s", message.id, message.kind, retry)
                failed.append((message, retry))
                done.due_at(retry.next_attempt_at)
            else:
                sent.append((message, kept))

        try:
            if together:
                await asyncio.gather(*(attempt(message) for message in claimed))
            else:
                for message in claimed:
                    await attempt(message)
        finally:
            # Also when the sender is cancelled mid-round (the node stops): what went out must
            # not go out again after the lease, and what it did not get to is released now
            # rather than when the lease lapses (a restart sends it at once).
            handled = {m.id for m, _ in sent} | {m.id for m, _ in failed}
            released = [m for m in claimed if m.id not in handled]
            if sent or failed or released:
                await asyncio.shield(self._record(sent, failed, released))
        done.sent = len(sent)
        return done

    async def _claim_due(self, kinds: tuple[str, ...], done: _Round) -> list[OutboxMessage]:
        """Claim up to :attr:`batch` due messages; note in ``done`` when the next one falls due.

        One read (the due messages first, and the first one not due yet) and one conditional
        ``UPDATE`` for all of them, in one transaction. Should the update take fewer rows than
        were read (another node claimed or sent one meanwhile), it is undone and each message
        is claimed on its own."""
        now = utcnow()
        until = now + self.lease
        due = (outbox.c.sent_at.is_(None), outbox.c.next_attempt_at <= now)
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(outbox)
                    .where(outbox.c.sent_at.is_(None), outbox.c.kind.in_(kinds))
                    .order_by(outbox.c.next_attempt_at, outbox.c.id)
                    .limit(self.batch + 1)
                )
            ).all()
            ready = [row for row in rows if row.next_attempt_at <= now][: self.batch]
            later = [row.next_attempt_at for row in rows if row.next_attempt_at > now]
            if later:
                done.due_at(later[0])
            done.full = len(ready) == self.batch
            if not ready:
                return []
            won = await conn.execute(
                update(outbox)
                .where(outbox.c.id.in_([row.id for row in ready]), *due)
                .values(next_attempt_at=until)
            )
            if won.rowcount == len(ready):
                await conn.commit()
                return [_message(row, now) for row in ready]
            await conn.rollback()
            claimed = []
            for row in ready:
                won = await conn.execute(
                    update(outbox).where(outbox.c.id == row.id, *due).values(next_attempt_at=until)
                )
                await conn.commit()
                if won.rowcount == 1:  # else another node took it, or it was sent meanwhile
                    claimed.append(_message(row, now))
            return claimed

    async def _record(
        self,
        sent: Sequence[tuple[OutboxMessage, dict[str, Any] | None]],
        failed: Sequence[tuple[OutboxMessage, Retry]],
        released: Sequence[OutboxMessage] = (),
    ) -> None:
        """Write a round's outcomes in one transaction: one ``UPDATE`` for all that were sent
        (with the payloads their handlers kept), one per failure (each its own backoff), one
        for the claims given back unattempted (due again at once)."""
        async with self.engine.begin() as conn:
            if released:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_([m.id for m in released]), outbox.c.sent_at.is_(None))
                    .values(next_attempt_at=utcnow())
                )
            if sent:
                values: dict[str, Any] = {"sent_at": utcnow(), "attempts": outbox.c.attempts + 1}
                kept = {m.id: json.dumps(k) for m, k in sent if k is not None}
                if kept:
                    values["payload"] = case(kept, value=outbox.c.id, else_=outbox.c.payload)
                await conn.execute(
                    update(outbox).where(outbox.c.id.in_([m.id for m, _ in sent])).values(**values)
                )
            for message, retry in failed:
                await conn.execute(
                    update(outbox).where(outbox.c.id == message.id).values(**retry.values())
                )


async def _woken(woken: asyncio.Event, timeout_s: float) -> bool:
    """Wait for ``woken`` up to ``timeout_s``; whether it was set."""
    try:
        async with asyncio.timeout(timeout_s):
            await woken.wait()
    except TimeoutError:
        return False
    return True


def _message(row: Any, claimed_at: datetime) -> OutboxMessage:
    return OutboxMessage(
        id=row.id, kind=row.kind, ref=row.ref, payload=json.loads(row.payload),
        dedupe_key=row.dedupe_key, attempts=row.attempts, created_at=row.created_at,
        claimed_at=claimed_at,
    )  # fmt: skip


def _delivery(row: Any) -> Delivery:
    payload = json.loads(row.payload)
    if not isinstance(payload, dict):
        payload = {}
    # An e-mail's address, or a webhook delivery's URL.
    recipient = payload.get("email") or payload.get("url")
    return Delivery(
        id=row.id, kind=row.kind, ref=row.ref,
        recipient=str(recipient) if recipient is not None else None, attempts=row.attempts,
        next_attempt_at=row.next_attempt_at, last_error=row.last_error, sent_at=row.sent_at,
        created_at=row.created_at, skipped=payload.get(SKIPPED),
    )  # fmt: skip
