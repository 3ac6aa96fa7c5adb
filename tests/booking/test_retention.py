"""Retention on both backends: what a client can make the booking core write is forgotten once
it is of no more use. An ``Idempotency-Key`` older than its TTL is gone and its replay is a new
request while a fresh one still replays; sign-in requests long expired are gone with their
e-mails while a live one still signs in; sent messages that nothing lists go after their
retention, while an order's e-mails stay on the order desk. Time moves by writing old
timestamps, never by waiting."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from booking import integration
from booking.catalog import EventInfo
from booking.clock import utcnow
from booking.core import BookingCore
from booking.customers import SIGN_IN
from booking.errors import NotFound
from booking.holds import Hold
from booking.orders import ORDER_CONFIRMATION
from booking.outbox import Outbox, OutboxMessage, enqueue
from booking.retention import Retention, RetentionPolicy
from booking.schema import holds, idempotency_keys, outbox, payments, sign_ins
from tests.booking.conftest import VISA, buy, card, count, ledger, rendered, rows

DAY = timedelta(days=1)


async def age(
    engine: AsyncEngine, table: Any, ago: timedelta, columns: tuple[str, ...], *where: Any
) -> None:
    """Set the time ``columns`` of ``table``'s rows (``where``) to ``ago`` before now."""
    then = utcnow() - ago
    async with engine.begin() as conn:
        await conn.execute(update(table).where(*where).values({c: then for c in columns}))


@pytest.fixture
async def hold(service: BookingCore, event: EventInfo) -> Hold:
    return await service.holds.hold(event.id, "alice", ["A-A-1", "A-A-2"])


def key_is(name: str) -> Any:
    return idempotency_keys.c.key == name


async def test_a_key_past_its_ttl_is_forgotten_and_its_replay_is_a_new_request(
    service: BookingCore, event: EventInfo
) -> None:
    engine = service.engine
    hold = await service.holds.hold(event.id, "alice", ["A-A-1"])  # (not the fixture's)
    declined = await buy(service, "alice", hold.id, "old", card("tok_declined"))
    assert rendered(declined)["kind"] == "payment_declined"
    paid = await buy(service, "alice", hold.id, "fresh", VISA)
    assert paid.ok
    await age(engine, idempotency_keys, DAY + timedelta(minutes=1), ("created_at",), key_is("old"))
    await age(
        engine, idempotency_keys, DAY - timedelta(minutes=5), ("created_at",), key_is("fresh")
    )

    swept = await service.retention.sweep()

    assert swept.idempotency_keys == 1
    assert await count(engine, idempotency_keys, key_is("old")) == 0
    # The old key's replay is a new request: it finds the hold bought (and pays nothing).
    again = await buy(service, "alice", hold.id, "old", card("tok_declined"))
    assert not again.replayed
    assert rendered(again) == {"kind": "conflict", "detail": "the hold is purchased"}
    # The same key with another body is no mismatch any more either: a request of its own.
    other = await service.holds.hold(event.id, "alice", ["A-A-2"])
    await age(engine, idempotency_keys, DAY + timedelta(minutes=1), ("created_at",), key_is("old"))
    await service.retention.sweep()
    assert (await buy(service, "alice", other.id, "old", VISA)).ok
    # The fresh key still replays its order.
    replay = await buy(service, "alice", hold.id, "fresh", VISA)
    assert replay.replayed and rendered(replay) == rendered(paid)
    assert [c.status for c in await ledger(engine)] == ["charged", "charged"]


async def test_a_backlog_is_deleted_in_batches_and_nothing_fresh_goes(engine: AsyncEngine) -> None:
    old, fresh = utcnow() - 2 * DAY, utcnow() - timedelta(hours=1)
    async with engine.begin() as conn:
        await conn.execute(
            insert(idempotency_keys),
            [{"user_id": f"u{n % 3}", "key": f"k{n}", "request_hash": "h", "status": "done",
              "response_body": "{}", "created_at": old if n < 10 else fresh}
             for n in range(14)]
            # (ties: four keys share one instant, across the batches' edges)
            + [{"user_id": "tie", "key": f"t{n}", "request_hash": "h", "status": "in_progress",
                "response_body": None, "created_at": old - DAY} for n in range(4)],
        )  # fmt: skip
    retention = Retention(engine, RetentionPolicy(batch=3))
    assert (await retention.sweep()).idempotency_keys == 14
    left = await rows(engine, idempotency_keys)
    assert sorted(r.key for r in left) == ["k10", "k11", "k12", "k13"]
    assert (await retention.sweep()).total == 0  # nothing to do: nothing done


async def test_long_expired_sign_ins_are_gone_and_a_live_one_still_works(
    service: BookingCore,
) -> None:
    engine, customers = service.engine, service.customers
    got: list[OutboxMessage] = []

    async def keep(message: OutboxMessage) -> None:
        got.append(message)

    await customers.request_sign_in("old@example.com", "127.0.0.1")
    await service.outbox.deliver_due({SIGN_IN: keep})  # sent
    await customers.request_sign_in("unsent@example.com", "127.0.0.1")  # never sent
    await customers.request_sign_in("recent@example.com", "127.0.0.1")
    await customers.request_sign_in("live@example.com", "127.0.0.1")
    for email in ("old@example.com", "unsent@example.com"):
        await age(
            engine,
            sign_ins,
            DAY + timedelta(hours=1),
            ("created_at", "expires_at"),
            sign_ins.c.email == email,
        )
    # Expired an hour ago: kept for a day.
    await age(
        engine,
        sign_ins,
        timedelta(hours=1),
        ("created_at", "expires_at"),
        sign_ins.c.email == "recent@example.com",
    )
    assert await count(engine, outbox) == 4

    swept = await service.retention.sweep()

    assert swept.sign_ins == 2
    left = await rows(engine, sign_ins)
    assert sorted(r.email for r in left) == ["live@example.com", "recent@example.com"]
    # Their e-mails went with them, sent or not; the others' stay.
    mails = await rows(engine, outbox)
    assert sorted(m.dedupe_key for m in mails) == sorted(f"sign-in:{r.id}" for r in left)
    # The live request still signs in.
    await service.outbox.deliver_due({SIGN_IN: keep})
    (live,) = [m for m in got if m.payload["email"] == "live@example.com"]
    customer = await customers.redeem_link(live.payload["link"])
    assert customer.email == "live@example.com"


async def test_sent_messages_nothing_lists_go_and_an_orders_emails_stay(
    service: BookingCore, event: EventInfo, hold: Hold
) -> None:
    engine = service.engine
    paid = await service.checkout.run(
        user="alice", hold_id=hold.id, key="k", payment=VISA, email="ada@example.com"
    )
    assert paid.order is not None
    event_id = integration.event_id(integration.ORDER_PAID, paid.order.id)

    async def ok(_: OutboxMessage) -> None:
        return None

    async with engine.begin() as conn:
        for name in ("old", "recent", "unsent"):
            await enqueue(conn, "note", {"n": name}, f"note:{name}")
    box = Outbox(engine)
    assert await box.deliver_due({"note": ok, ORDER_CONFIRMATION: ok}) == 4
    confirmation = f"order:{paid.order.id}:confirmation"
    aged = ["note:old", "note:unsent", confirmation]
    await age(
        engine,
        outbox,
        timedelta(days=8),
        ("sent_at", "created_at"),
        outbox.c.dedupe_key.in_(aged),
    )
    await age(
        engine,
        outbox,
        timedelta(days=6),
        ("sent_at", "created_at"),
        outbox.c.dedupe_key == "note:recent",
    )
    async with engine.begin() as conn:  # never sent, and old: still to be sent
        await conn.execute(
            update(outbox).where(outbox.c.dedupe_key == "note:unsent").values(sent_at=None)
        )

    swept = await service.retention.sweep()

    assert swept.outbox == 1
    left = {m.dedupe_key: m.sent_at for m in await rows(engine, outbox)}
    assert left.keys() == {confirmation, "note:recent", "note:unsent", f"event:{event_id}"}
    assert left[f"event:{event_id}"] is None  # (the order's integration event, not sent yet)
    # The order desk still lists the order's e-mail, sent.
    (mail,) = await service.outbox.deliveries(paid.order.id)
    assert mail.kind == ORDER_CONFIRMATION and mail.sent_at is not None


async def test_holds_that_ended_without_an_order_go_with_their_declined_payments(
    service: BookingCore, event: EventInfo
) -> None:
    """A guest may place, be declined on and release holds all day: those that ended without an
    order go after their retention with their declined attempts, while an order's hold stays
    with every attempt made on it."""
    engine = service.engine
    released = await service.holds.hold(event.id, "alice", ["A-A-1"])
    await service.holds.release(released.id, "alice")
    lapsed = await service.holds.hold(event.id, "erin", ["A-A-5"])
    declined = await service.holds.hold(event.id, "bob", ["A-A-2"])
    attempt = await buy(service, "bob", declined.id, "k-declined", card("tok_declined"))
    assert rendered(attempt)["kind"] == "payment_declined"
    await service.holds.release(declined.id, "bob")
    bought = await service.holds.hold(event.id, "carol", ["A-A-3"])
    first = await buy(service, "carol", bought.id, "k-first", card("tok_declined"))
    assert rendered(first)["kind"] == "payment_declined"
    assert (await buy(service, "carol", bought.id, "k-paid", VISA)).ok
    fresh = await service.holds.hold(event.id, "dave", ["A-A-4"])
    await service.holds.release(fresh.id, "dave")
    old = (released.id, lapsed.id, declined.id, bought.id)
    await age(engine, holds, 8 * DAY, ("created_at", "expires_at"), holds.c.id.in_(old))
    await age(engine, payments, 8 * DAY, ("created_at", "updated_at"))
    await service.holds.reap()  # the lapsed one is marked expired, its seat offered back
    swept = await Retention(engine).sweep()
    assert (swept.holds, swept.payments) == (3, 1)
    for gone, user in ((released, "alice"), (lapsed, "erin"), (declined, "bob")):
        with pytest.raises(NotFound):
            await service.holds.get(gone.id, user)
    assert await count(engine, payments, payments.c.hold_id == declined.id) == 0
    assert (await service.holds.get(bought.id, "carol")).order_id is not None
    statuses = await rows(engine, payments.c.status, payments.c.hold_id == bought.id)
    assert sorted(status for (status,) in statuses) == ["charged", "declined"]
    assert (await service.holds.get(fresh.id, "dave")).status == "released"
    assert (await Retention(engine).sweep()).total == 0
