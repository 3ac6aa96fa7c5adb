"""A node that dies between charging a card and committing the order (SPEC §5: a charge whose
order cannot be committed is refunded), through real server processes on both backends.

``--fault-crash-after-charge`` makes the node exit (code 70) right after the gateway approved.
The next node on the same database finds the payment still ``pending`` once it is older than
2 x payment timeout + 1 s, refunds it at start, and no order or ticket ever appears.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import ColumnElement, Engine, Row, Table, create_engine, select

from booking.clock import utcnow
from booking.schema import holds, orders, payments, seats, test_gateway_charges, tickets
from tests.booking.conftest import call, create_event_via_api, sync_url
from tests.conftest import ServerProcess

PAYMENT_TIMEOUT_S = 1
GRACE_S = 2 * PAYMENT_TIMEOUT_S + 1


@pytest.fixture
def db(migrated_database: str) -> Iterator[Engine]:
    engine = create_engine(sync_url(migrated_database))
    try:
        yield engine
    finally:
        engine.dispose()


def table(db: Engine, t: Table, *where: ColumnElement[bool]) -> list[Row[Any]]:
    with db.connect() as conn:
        return list(conn.execute(select(t).where(*where)).all())


def test_charge_without_order_is_refunded_after_a_crash(
    migrated_database: str, db: Engine, make_server: Callable[..., ServerProcess]
) -> None:
    node = make_server(
        database_url=migrated_database,
        fault_crash_after_charge=True,
        payment_timeout_s=PAYMENT_TIMEOUT_S,
    )
    event = create_event_via_api(node)
    token = node.token("alice")
    wanted = ["S-A-1", "S-A-2"]
    status, hold = call(node, "POST", f"/api/events/{event['id']}/holds", {"seats": wanted},
                        token=token)  # fmt: skip
    assert status == 201, hold

    with pytest.raises((OSError, http.client.HTTPException)):
        # the node dies mid-request: the connection drops, there is no answer
        call(node, "POST", f"/api/holds/{hold['hold_id']}/checkout",
             {"payment": {"method": "card", "token": "tok_visa"}}, token=token,
             headers={"Idempotency-Key": "crash-1"})  # fmt: skip
    assert node.proc is not None
    assert node.proc.wait(15) == 70, node.log()
    assert "crash injected after charge" in node.log()

    # what the crash left: a pending payment, a charge on the gateway, no order
    (pay,) = table(db, payments, payments.c.hold_id == hold["hold_id"])
    assert pay.status == "pending" and pay.order_id is None
    (charge,) = table(db, test_gateway_charges)
    assert (charge.payment_id, charge.status) == (pay.id, "charged")
    assert table(db, orders) == []

    # recovery takes only payments pending for longer than any gateway call could take
    ready_at: datetime = pay.updated_at + timedelta(seconds=GRACE_S + 0.5)
    time.sleep(max((ready_at - utcnow()).total_seconds(), 0))
    again = make_server(database_url=migrated_database, payment_timeout_s=PAYMENT_TIMEOUT_S)
    assert "recovered payment" in again.log()

    (charge,) = table(db, test_gateway_charges)
    assert charge.status == "refunded"
    (pay,) = table(db, payments, payments.c.hold_id == hold["hold_id"])
    assert pay.status == "refunded" and pay.order_id is None
    assert table(db, orders) == []
    assert table(db, tickets) == []
    (hold_row,) = table(db, holds, holds.c.id == hold["hold_id"])
    assert hold_row.status in ("active", "expired")
    for row in table(db, seats, seats.c.event_id == event["id"], seats.c.seat_id.in_(wanted)):
        assert row.order_id is None, row
        assert row.hold_id in (None, hold["hold_id"])

    # the restarted node agrees: the seats are held (or free), never sold
    status, seatmap = call(again, "GET", f"/api/events/{event['id']}/seats")
    assert status == 200
    statuses = dict(map(tuple, seatmap["seats"]))
    assert {statuses[s] for s in wanted} <= {"held", "available"}
    # and the checkout can be retried with a new key, paying exactly once
    status, order = call(again, "POST", f"/api/holds/{hold['hold_id']}/checkout",
                         {"payment": {"method": "card", "token": "tok_visa"}}, token=token,
                         headers={"Idempotency-Key": "after-crash"})  # fmt: skip
    assert status == 201, order
    charges = table(db, test_gateway_charges)
    assert sorted(c.status for c in charges) == ["charged", "refunded"]
    (paid,) = table(db, orders)
    assert paid.status == "paid" and paid.id == order["order_id"]


def test_retry_after_a_crash_between_commit_and_answer_returns_the_order(
    migrated_database: str, db: Engine, make_server: Callable[..., ServerProcess]
) -> None:
    """Issue 14 item 3: the node commits the order and dies before it answers. The buyer (a
    guest) retries with the same Idempotency-Key on the next node and gets the paid order, the
    hold names it, and the buyer's order list shows it: nothing is charged twice."""
    node = make_server(
        database_url=migrated_database,
        fault_crash_after_commit=True,
        payment_timeout_s=PAYMENT_TIMEOUT_S,
    )
    event = create_event_via_api(node)
    status, guest = call(node, "POST", "/api/auth/guest")
    assert status == 201, guest
    token = guest["token"]
    status, hold = call(node, "POST", f"/api/events/{event['id']}/holds",
                        {"seats": ["S-A-1", "S-A-2"]}, token=token)  # fmt: skip
    assert status == 201, hold
    checkout = {"payment": {"method": "card", "token": "tok_visa"}, "email": "g@example.com"}
    path = f"/api/holds/{hold['hold_id']}/checkout"
    with pytest.raises((OSError, http.client.HTTPException)):
        call(node, "POST", path, checkout, token=token, headers={"Idempotency-Key": "k-1"})
    assert node.proc is not None
    assert node.proc.wait(15) == 70, node.log()
    assert "crash injected after the commit" in node.log()
    (paid,) = table(db, orders)

    again = make_server(database_url=migrated_database, payment_timeout_s=PAYMENT_TIMEOUT_S)
    status, order = call(again, "POST", path, checkout, token=token,
                         headers={"Idempotency-Key": "k-1"})  # fmt: skip
    assert status == 201, order
    assert order["order_id"] == paid.id and order["status"] == "paid"
    assert sorted(t["seat_id"] for t in order["tickets"]) == ["S-A-1", "S-A-2"]

    status, seen = call(again, "GET", f"/api/holds/{hold['hold_id']}", token=token)
    assert status == 200, seen
    assert seen["status"] == "purchased" and seen["order_id"] == paid.id
    status, mine = call(again, "GET", "/api/orders", token=token)
    assert status == 200, mine
    assert [o["order_id"] for o in mine] == [paid.id]
    (charge,) = table(db, test_gateway_charges)
    assert charge.status == "charged"
