"""The sale against a model of it (hypothesis stateful): random sequences of REST calls (SPEC §5)
against a live node, on both backends, each answer checked against a small model of what the
node must say.

Each run puts a fresh event on sale (12 seats: section S, two rows of four, before section T, one
row of four; a per-user limit of 2 to 6; a refund policy that lets buyers cancel, or not) for two
or three buyers, an admin and a door scanner, then takes random steps:

- a hold of 1-3 named seats (often seats the model knows are taken; sometimes one unknown or
  named twice), or best available: 201 exactly when every seat is available and the per-user
  limit allows, with the seats best available must pick (README, "Best available"); else 409
  whose ``conflicts`` are exactly the unavailable seats, 409 ``no_block`` or ``sale_closed``,
  422 ``limit`` (with ``have``) or ``invalid``;
- releasing a hold, by its owner (204, or 409 once it is not active) or another buyer (404);
- checking a hold out (``tok_visa``, ``tok_declined``, ``tok_error``) under a fresh or a reused
  ``Idempotency-Key``, and replaying a key: the same key and body give the first answer again,
  with ``Idempotent-Replayed: true``; the same key with another body is a 422;
- cancelling an order, as its buyer (within the refund policy), another buyer (404) or an admin;
- scanning a ticket at the door, a forged code, or as a buyer (403);
- the admin changing the per-user limit, the refund policy, the sale's status, the hold TTL;
- races: 2-3 holds of one row at once, checkouts of one hold at once (one key or several, the
  owner releasing it meanwhile), cancels of one order at once, scans of one ticket at once.

After every step the node must agree with the model: the seat map (all of it, its ``seq`` never
going back), each buyer's ``GET /api/orders`` (every order whole: status, tickets and their
statuses, refund, refund deadline), no seat on two valid tickets, and ``GET /api/holds/{id}``,
``GET /api/orders/{id}`` and ``GET /api/tickets/{code}`` of what the step touched. At the end of
a run: every hold, order and ticket again, no seat in two live holds, each order's tickets PDF
(409 once cancelled) and its file at the order desk (payment charged or refunded, the refund,
the audit of an admin's cancel, the e-mails), and no traceback in the node's log.

Hold expiry is left out: EventSpec forbids a TTL short enough to wait for. Where the SPEC is
silent, the model follows the code, and says so. (It found the node answering every door scan
200, refusals too, where SPEC §5 asks 409 and 404: fixed, see ``scan``.)
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.booking.conftest import create_event_via_api
from tests.conftest import ServerProcess
from tests.server.stomp_clients import unique
from tests.server.test_checkin_api import SCAN_STATUS
from tests.server.test_rest_api import Api, Reply, assert_problem, instant

#: Runs per backend, and the most steps a run takes: about 20 s on SQLite and 25 s on MariaDB on
#: a 2-core machine. ``CONCERT_HUB_SALE_MODEL_RUNS=300`` explores further (with ``--timeout 0``).
RUNS = int(os.environ.get("CONCERT_HUB_SALE_MODEL_RUNS", "15"))
STEPS = 40

#: The event's layout: sections listed from the stage outwards, as best available ranks them.
LAYOUT: dict[str, Any] = {
    "tiers": [
        {"name": "Front", "price_cents": 4000, "currency": "EUR"},
        {"name": "Back", "price_cents": 2500, "currency": "EUR"},
    ],
    "sections": [
        {"name": "S", "rows": 2, "seats_per_row": 4, "tier": "Front"},
        {"name": "T", "rows": 1, "seats_per_row": 4, "tier": "Back"},
    ],
}
#: Its rows in best available's ranking (first section, front row first), seats in number order.
ROWS = [[f"{row}-{n}" for n in range(1, 5)] for row in ("S-A", "S-B", "T-A")]
#: Every seat, in layout order (the order of snapshots, holds, conflicts and tickets).
SEATS = [seat for row in ROWS for seat in row]
TIER = {seat: "Front" if seat.startswith("S-") else "Back" for seat in SEATS}
PRICE = {seat: 4000 if TIER[seat] == "Front" else 2500 for seat in SEATS}
#: A seat the layout lacks (the event has no row C).
UNKNOWN_SEAT = "S-C-1"

#: Per-user limits: the buyers' limits together often reach the 12 seats (so that holds
#: conflict), and 2 is below the 3 seats a hold may ask for.
LIMITS = [4, 6, 3, 2]
#: How long a hold lasts: the node's default (``--hold-ttl-s``; the event sets none at first),
#: and what an admin may set instead.
HOLD_TTL_S = 300
HOLD_TTLS = [HOLD_TTL_S, 600]
#: The refund policy of a refundable run: buyers may cancel until 24 hours before the start.
REFUND_CUTOFF_HOURS = 24

#: Card tokens of the test gateway, and a checkout's answer with each (SPEC §5).
CARDS = {"tok_visa": (201, None), "tok_declined": (402, "payment_declined"),
         "tok_error": (502, "payment_failed")}  # fmt: skip
#: Cards as drawn: mostly approved.
CARD_DRAWS = ["tok_visa", "tok_visa", "tok_declined", "tok_error"]
#: Where a checkout's confirmation goes when the request names an address (part of the request,
#: so a key reused with another address is another request).
EMAIL = "buyer@example.com"
#: The admin, among the model's actors.
ADMIN = "admin"


# -- the model ---------------------------------------------------------------------------------
#
# What a race step made is ``raced``: the step leaves it released or cancelled, and no later
# step draws it. What a race leaves may not depend on who won it, or hypothesis, which replays
# a run from its choices, would see the run take another course (FlakyStrategyDefinition).


@dataclass
class Hold:
    id: str
    user: str
    seats: list[str]
    #: The node's 201 answer when it was placed (``GET /api/holds/{id}`` says the same, with
    #: the hold's status and order as they are now).
    placed: dict[str, Any] = field(repr=False)
    status: str = "active"  # released | purchased
    order: str | None = None
    raced: bool = False

    def expected(self) -> dict[str, Any]:
        return {**self.placed, "status": self.status, "order_id": self.order}


@dataclass
class Ticket:
    code: str
    seat: str
    order: str
    void: bool = False
    admitted: bool = False
    raced: bool = False


@dataclass
class Order:
    id: str
    user: str
    #: The node's 201 answer of its checkout; the order as read later differs in its status
    #: and in ``cancellable_until``, which follows the event's refund policy as it is now.
    paid: dict[str, Any] = field(repr=False)
    tickets: list[Ticket] = field(repr=False)
    #: Who cancelled it (the buyer, or :data:`ADMIN`).
    cancelled_by: str | None = None
    raced: bool = False

    @property
    def cancelled(self) -> bool:
        return self.cancelled_by is not None

    def expected(self, cancellable_until: str | None) -> dict[str, Any]:
        now = {**self.paid, "cancellable_until": cancellable_until}
        if not self.cancelled:
            return now
        void = [{**t, "status": "void"} for t in self.paid["tickets"]]
        # The refund is tried at once, and the test gateway refunds.
        return {**now, "status": "cancelled", "tickets": void, "refund": "refunded"}

    def cancel(self, by: str) -> None:
        self.cancelled_by = by
        for ticket in self.tickets:
            ticket.void = True


@dataclass(frozen=True)
class Answer:
    """A checkout's answer, kept with its (user, Idempotency-Key)."""

    #: What the request asked: hold, card token, e-mail address.
    request: tuple[str, str, str | None]
    status: int
    body: Any


def layout_order(seats: list[str]) -> list[str]:
    return sorted(seats, key=SEATS.index)


def best_block(
    statuses: dict[str, str], count: int, section: str | None, tier: str | None
) -> list[str] | None:
    """The block best available must pick (``booking/best_available.py``, README "Best
    available"): no avoidable lone free seat beside it, then the first section, the front row,
    the middle of the row, the leftmost; ``None`` when no block of ``count`` is free (in that
    section, of that tier: each row here is of one tier)."""
    fallback = None
    for row in ROWS:
        if section is not None and not row[0].startswith(f"{section}-"):
            continue
        if tier is not None and TIER[row[0]] != tier:
            continue
        free = [statuses[s] == "available" for s in row]
        best: tuple[bool, int, int] | None = None
        for start in range(len(row) - count + 1):
            if all(free[start : start + count]):
                lonely = _lone(free, start - 1, -1) or _lone(free, start + count, 1)
                key = (lonely, abs(2 * start + count - len(row)), start)
                best = key if best is None else min(best, key)
        if best is None:
            continue
        block = row[best[2] : best[2] + count]
        if not best[0]:
            return block
        fallback = fallback or block
    return fallback


def _lone(free: list[bool], beside: int, step: int) -> bool:
    """Whether the seat at ``beside`` would be left a free seat alone."""
    if not 0 <= beside < len(free) or not free[beside]:
        return False
    return not (0 <= beside + step < len(free) and free[beside + step])


def at_once(calls: Sequence[Callable[[], Reply]]) -> list[Reply]:
    """Make ``calls`` together: each from a thread of its own, once all are ready."""
    barrier = threading.Barrier(len(calls))

    def call(make: Callable[[], Reply]) -> Reply:
        barrier.wait()
        return make()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(call, calls))


def replayed(reply: Reply) -> bool:
    return reply.headers.get("Idempotent-Replayed") == "true"


def kind_of(reply: Reply) -> str | None:
    return reply.json().get("kind") if reply.status >= 400 else None


# -- the machine -------------------------------------------------------------------------------


class SaleModel(RuleBasedStateMachine):
    def __init__(self, server: ServerProcess) -> None:
        super().__init__()
        self.server = server
        self.api = Api(server)
        self.log_from = server.log_path.stat().st_size
        self.event_id = 0
        self.tier_ids: dict[str, int] = {}
        #: The seat map's ``seq`` last seen.
        self.seq = 0
        #: The event's settings as the admin last set them.
        self.limit = 0
        self.refundable = True
        self.on_sale = True
        self.hold_ttl_s = HOLD_TTL_S
        #: Until when buyers may cancel when they may (24 hours before the start).
        self.refund_deadline = ""
        self.users: list[str] = []
        self.admin = unique("admin")
        self.tokens = {ADMIN: server.token(self.admin, "admin")}
        self.scanner = server.token(unique("door"), "scanner")
        self.holds: dict[str, Hold] = {}
        self.orders: dict[str, Order] = {}
        self.tickets: dict[str, Ticket] = {}
        #: Checkout answers by (user, key); keys are numbered per user, so that buyers use the
        #: same keys (a key is its user's).
        self.keys: dict[tuple[str, str], Answer] = {}
        self.key_count: Counter[str] = Counter()
        #: What a step changed or looked at, checked after it.
        self.touched_holds: set[str] = set()
        self.touched_orders: set[str] = set()
        self.touched_tickets: set[str] = set()

    @initialize(
        limit=st.sampled_from(LIMITS), refundable=st.sampled_from([True, True, False]),
        buyers=st.integers(2, 3),
    )  # fmt: skip
    def open_sale(self, limit: int, refundable: bool, buyers: int) -> None:
        event = create_event_via_api(
            self.server, layout=LAYOUT, max_seats_per_user=limit,
            refund_cutoff_hours=REFUND_CUTOFF_HOURS if refundable else None,
        )  # fmt: skip
        self.event_id = int(event["id"])
        self.tier_ids = {t["name"]: int(t["id"]) for t in event["tiers"]}
        self.limit, self.refundable = limit, refundable
        deadline = instant(event["starts_at"]) - timedelta(hours=REFUND_CUTOFF_HOURS)
        self.refund_deadline = deadline.isoformat().replace("+00:00", "Z")
        self.users = [unique(f"buyer{i}") for i in range(buyers)]
        self.tokens.update((user, self.server.token(user)) for user in self.users)

    # -- what the model says -------------------------------------------------------------------

    def statuses(self) -> dict[str, str]:
        found = dict.fromkeys(SEATS, "available")
        for hold in self.holds.values():
            if hold.status == "active":
                for seat in hold.seats:
                    assert found[seat] == "available", f"the model holds {seat} twice"
                    found[seat] = "held"
        for order in self.orders.values():
            if not order.cancelled:
                for t in order.tickets:
                    assert found[t.seat] == "available", f"the model sells {t.seat} twice"
                    found[t.seat] = "sold"
        return found

    def counted(self, user: str) -> int:
        """What the per-user limit counts: seats held and valid tickets."""
        held = [h.seats for h in self.holds.values() if h.user == user and h.status == "active"]
        owned = [o.tickets for o in self.orders.values() if o.user == user and not o.cancelled]
        return sum(map(len, held)) + sum(map(len, owned))

    @property
    def cancellable_until(self) -> str | None:
        """What every order says: the event's refund policy as it is now."""
        return self.refund_deadline if self.refundable else None

    # What steps draw from (never what a race made).

    def drawn_holds(self) -> list[Hold]:
        return [h for h in self.holds.values() if not h.raced]

    def active_holds(self) -> list[Hold]:
        return [h for h in self.drawn_holds() if h.status == "active"]

    def drawn_orders(self) -> list[Order]:
        return [o for o in self.orders.values() if not o.raced]

    def paid_orders(self) -> list[Order]:
        return [o for o in self.drawn_orders() if not o.cancelled]

    def drawn_tickets(self) -> list[Ticket]:
        return [t for t in self.tickets.values() if not t.raced]

    # -- drawing -------------------------------------------------------------------------------

    @staticmethod
    def _sometimes(data: st.DataObject, label: str) -> bool:
        """True one time in four: the unusual choice (shrinking goes to the usual one)."""
        return data.draw(st.integers(0, 3), label=label) == 3

    def _actor(self, data: st.DataObject, owner: str, *, admin: bool = False) -> str:
        """Mostly the owner, sometimes anyone (the owner again among them)."""
        if not self._sometimes(data, "not the owner"):
            return owner
        return data.draw(st.sampled_from(self.users + ([ADMIN] if admin else [])), label="actor")

    def _hold(self, data: st.DataObject) -> Hold:
        """Mostly an active hold; sometimes any (released, bought)."""
        pool = self.active_holds() if not self._sometimes(data, "any hold") else None
        return data.draw(st.sampled_from(pool or self.drawn_holds()), label="hold")

    def _fresh_key(self, user: str) -> str:
        self.key_count[user] += 1
        return f"key-{self.key_count[user]}"

    # -- holds ---------------------------------------------------------------------------------

    @property
    def _holds_path(self) -> str:
        return f"/api/events/{self.event_id}/holds"

    @rule(data=st.data())
    def hold(self, data: st.DataObject) -> None:
        """Named seats, or (one in three) best available: one rule, so that holds are not most
        of a run's steps."""
        user = data.draw(st.sampled_from(self.users), label="user")
        if data.draw(st.integers(0, 2), label="best available") == 2:
            self._hold_best(data, user)
        else:
            self._hold_seats(data, user)

    def _hold_seats(self, data: st.DataObject, user: str) -> None:
        statuses = self.statuses()
        free = [s for s in SEATS if statuses[s] == "available"]
        pool = free if free and not self._sometimes(data, "any seats") else SEATS
        seats = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
        taken = [s for s in layout_order(seats) if statuses[s] != "available"]
        have = self.counted(user)
        flaw = data.draw(st.sampled_from([None] * 6 + ["repeated", "unknown"]), label="flaw")
        extra = {None: [], "repeated": seats[:1], "unknown": [UNKNOWN_SEAT]}[flaw]
        reply = self.api.post(self._holds_path, {"seats": seats + extra}, token=self.tokens[user])
        # In the node's order (the SPEC gives none): the request alone (known seats, none
        # twice, how many), the sale, the seats, then the seats counted.
        if flaw is not None:
            problem = assert_problem(reply, 422, "invalid")
            assert problem.get("unknown") == (extra if flaw == "unknown" else None), problem
        elif len(seats) > self.limit:
            problem = assert_problem(reply, 422, "limit")
            assert problem["limit"] == self.limit, problem
        elif not self.on_sale:
            assert_problem(reply, 409, "sale_closed")
        elif taken:
            problem = assert_problem(reply, 409, "conflict")
            assert problem["conflicts"] == taken, (seats, problem)
        elif have + len(seats) > self.limit:
            problem = assert_problem(reply, 422, "limit")
            assert (problem["limit"], problem["have"]) == (self.limit, have), problem
        else:
            self._placed(reply, user, layout_order(seats))

    def _hold_best(self, data: st.DataObject, user: str) -> None:
        count = data.draw(st.integers(1, 3), label="count")
        section = data.draw(st.sampled_from([None, None, "S", "T"]), label="section")
        tier = data.draw(st.sampled_from([None, None, "Front", "Back"]), label="tier")
        accessible = self._sometimes(data, "accessible")
        wanted: dict[str, Any] = {"count": count}
        if section is not None:
            wanted["section"] = section
        if tier is not None:  # by name, or by id as the web UI sends it
            wanted["tier"] = self.tier_ids[tier] if data.draw(st.booleans()) else tier
        if accessible:
            wanted["accessible"] = True
        # No seat is a wheelchair space: an accessible request finds no block.
        block = None if accessible else best_block(self.statuses(), count, section, tier)
        have = self.counted(user)
        reply = self.api.post(self._holds_path, {"best_available": wanted}, token=self.tokens[user])
        # In the node's order (the SPEC gives none): the count alone, the sale, whether a
        # block is left, then the seats counted.
        if count > self.limit:
            problem = assert_problem(reply, 422, "limit")
            assert problem["limit"] == self.limit, problem
        elif not self.on_sale:
            assert_problem(reply, 409, "sale_closed")
        elif block is None:
            problem = assert_problem(reply, 409, "no_block")
            assert problem["count"] == count, problem
        elif have + count > self.limit:
            problem = assert_problem(reply, 422, "limit")
            assert (problem["limit"], problem["have"]) == (self.limit, have), problem
        else:
            self._placed(reply, user, block)

    def _placed(self, reply: Reply, user: str, seats: list[str]) -> Hold:
        assert reply.status == 201, reply
        placed: dict[str, Any] = reply.json()
        assert placed["hold_id"] not in self.holds, placed
        assert reply.headers["Location"] == f"/api/holds/{placed['hold_id']}", reply.headers
        expected = {"event_id": self.event_id, "seats": seats, "status": "active",
                    "amount_cents": sum(PRICE[s] for s in seats), "currency": "EUR",
                    "order_id": None}  # fmt: skip
        assert {k: placed[k] for k in expected} == expected, (expected, placed)
        lasts = instant(placed["expires_at"]) - instant(placed["created_at"])
        assert lasts == timedelta(seconds=self.hold_ttl_s), placed
        hold = self.holds[placed["hold_id"]] = Hold(placed["hold_id"], user, seats, placed)
        self.touched_holds.add(hold.id)
        return hold

    @precondition(lambda self: self.active_holds())
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        hold = self._hold(data)
        actor = self._actor(data, hold.user)
        reply = self._release(hold, actor)
        if actor != hold.user:
            # SPEC: a user releases their own hold; another's is not confirmed to exist.
            assert_problem(reply, 404, "not_found")
            peek = self.api.get(f"/api/holds/{hold.id}", token=self.tokens[actor])
            assert_problem(peek, 404, "not_found")
        elif hold.status != "active":
            assert_problem(reply, 409, "conflict")
        else:
            assert reply.status == 204, reply
            hold.status = "released"

    def _release(self, hold: Hold, actor: str) -> Reply:
        self.touched_holds.add(hold.id)
        return self.api.call("DELETE", f"/api/holds/{hold.id}", token=self.tokens[actor])

    # -- checkout ------------------------------------------------------------------------------

    @precondition(lambda self: self.active_holds())
    @rule(data=st.data())
    def checkout(self, data: st.DataObject) -> None:
        hold = self._hold(data)
        actor = self._actor(data, hold.user)
        card = data.draw(st.sampled_from(CARD_DRAWS), label="card")
        email = data.draw(st.sampled_from([None, None, EMAIL]), label="email")
        used = sorted(k for u, k in self.keys if u == actor)
        reuse = used and self._sometimes(data, "reuse a key")
        key = data.draw(st.sampled_from(used), label="key") if reuse else self._fresh_key(actor)
        request = (hold.id, card, email)
        reply = self._checkout(actor, key, request)
        first = self.keys.get((actor, key))
        if first is not None:
            if first.request == request:
                self._replayed(reply, first)
            else:
                assert_problem(reply, 422, "idempotency_mismatch")
                assert not replayed(reply), reply.headers
            return
        assert not replayed(reply), reply.headers
        status, kind = CARDS[card]
        # A hold is bought whatever the sale's status since (the SPEC is silent; the code
        # looks at the hold only): the admin's pause or close stops new holds.
        if actor != hold.user or hold.status != "active":
            assert_problem(reply, 409, "conflict")  # SPEC: "409 hold expired or not yours"
        elif kind is not None:
            assert_problem(reply, status, kind)  # the hold stays active: nothing was charged
        else:
            self._paid(reply, hold, email)
        self.keys[actor, key] = Answer(request, reply.status, reply.json())

    @precondition(lambda self: bool(self.keys))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """A retry of an earlier checkout under its key: its first answer again, whatever
        happened since. ``terse`` leaves out the payment's ``method`` (``card``, its default):
        the same request, as the key is bound to the request as parsed."""
        actor, key = data.draw(st.sampled_from(sorted(self.keys)), label="key")
        first = self.keys[actor, key]
        terse = data.draw(st.booleans(), label="terse")
        self._replayed(self._checkout(actor, key, first.request, terse=terse), first)

    def _checkout(
        self, actor: str, key: str, request: tuple[str, str, str | None], *, terse: bool = False
    ) -> Reply:
        hold_id, card, email = request
        self.touched_holds.add(hold_id)
        payment = {"token": card} if terse else {"method": "card", "token": card}
        body: dict[str, Any] = {"payment": payment}
        if email is not None:
            body["email"] = email
        return self.api.post(
            f"/api/holds/{hold_id}/checkout", body, token=self.tokens[actor],
            headers={"Idempotency-Key": key},
        )  # fmt: skip

    def _replayed(self, reply: Reply, first: Answer) -> None:
        assert (reply.status, reply.json()) == (first.status, first.body), (first, str(reply))
        assert replayed(reply), reply.headers
        if first.status == 201:
            assert reply.headers["Location"] == f"/api/orders/{first.body['order_id']}", reply

    def _paid(self, reply: Reply, hold: Hold, email: str | None) -> Order:
        assert reply.status == 201, reply
        paid: dict[str, Any] = reply.json()
        order_id = paid["order_id"]
        assert order_id not in self.orders, paid
        assert reply.headers["Location"] == f"/api/orders/{order_id}", reply.headers
        expected = {"status": "paid", "event_id": self.event_id, "currency": "EUR",
                    "amount_cents": sum(PRICE[s] for s in hold.seats), "email": email,
                    "cancellable_until": self.cancellable_until, "refund": None}  # fmt: skip
        assert {k: paid[k] for k in expected} == expected, (expected, paid)
        assert [t["seat_id"] for t in paid["tickets"]] == hold.seats, (hold.seats, paid)
        assert all(t["status"] == "valid" for t in paid["tickets"]), paid
        tickets = [Ticket(t["code"], t["seat_id"], order_id) for t in paid["tickets"]]
        for ticket in tickets:
            assert ticket.code not in self.tickets, ticket
            self.tickets[ticket.code] = ticket
            self.touched_tickets.add(ticket.code)
        order = self.orders[order_id] = Order(order_id, hold.user, paid, tickets)
        self.touched_orders.add(order_id)
        hold.status, hold.order = "purchased", order_id
        return order

    # -- orders --------------------------------------------------------------------------------

    @precondition(lambda self: self.paid_orders())
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        pool = self.paid_orders() if not self._sometimes(data, "any order") else None
        order = data.draw(st.sampled_from(pool or self.drawn_orders()), label="order")
        actor = self._actor(data, order.user, admin=True)
        reply = self._cancel(order, actor)
        if actor not in (order.user, ADMIN):
            assert_problem(reply, 404, "not_found")
        elif order.cancelled:  # (looked at before the refund policy)
            assert_problem(reply, 409, "conflict")
        elif actor != ADMIN and not self.refundable:
            assert_problem(reply, 409, "refund_closed")  # staff are not bound by the policy
        else:
            self._cancelled(reply, order, actor)

    def _cancel(self, order: Order, actor: str) -> Reply:
        """The buyer's cancel has no body (it is optional); an admin's gives a reason."""
        self.touched_orders.add(order.id)
        self.touched_tickets.update(t.code for t in order.tickets)
        path, token = f"/api/orders/{order.id}/cancel", self.tokens[actor]
        if actor == ADMIN:
            return self.api.post(path, {"reason": "model test"}, token=token)
        return self.api.post(path, token=token)

    def _cancelled(self, reply: Reply, order: Order, actor: str) -> None:
        order.cancel(actor)
        assert reply.status == 200, reply
        assert reply.json() == order.expected(self.cancellable_until), (order, str(reply))

    # -- the door ------------------------------------------------------------------------------

    @precondition(lambda self: self.drawn_tickets())
    @rule(data=st.data())
    def scan(self, data: st.DataObject) -> None:
        ticket = data.draw(st.sampled_from(self.drawn_tickets()), label="ticket")
        how = data.draw(st.sampled_from(["scanner", "scanner", "forged", "buyer"]), label="how")
        self.touched_tickets.add(ticket.code)
        body = {"code": ticket.code, "event_id": self.event_id}
        if how == "buyer":
            buyer = self.orders[ticket.order].user
            reply = self.api.post("/api/checkin", body, token=self.tokens[buyer])
            assert_problem(reply, 403, "not_scanner")
            return
        if how == "forged":
            # A character of the signature changed: a code that does not verify.
            code = ticket.code[:-3] + ("A" if ticket.code[-3] != "A" else "B") + ticket.code[-2:]
            assert_problem(self.api.get(f"/api/tickets/{code}"), 404, "not_found")
            body["code"] = code
        reply = self.api.post("/api/checkin", body, token=self.scanner)
        # SPEC §5: 200 when admitted, a 409 problem when used or void, 404 for a code that does
        # not verify; a refusal's problem carries the scan's fields (``result``, ``used_at`` …).
        scanned: dict[str, Any] = reply.json()
        if scanned.get("result") != "admitted":
            assert_problem(reply, SCAN_STATUS.get(scanned.get("result", ""), 409))
        else:
            assert reply.status == 200, reply
        if how == "forged":
            result = "forged"
        elif ticket.void:
            result = "void"  # before already_used: a void ticket lets nobody in
        elif ticket.admitted:
            result = "already_used"
            assert (scanned["used_gate"], scanned["used_at"] is not None) == ("?", True), scanned
        else:
            result = "admitted"
            ticket.admitted = True
            holder = self.orders[ticket.order].paid["email"]
            assert (scanned["tier"], scanned["holder"]) == (TIER[ticket.seat], holder), scanned
        assert (scanned["result"], scanned["admitted"]) == (result, result == "admitted"), scanned
        assert scanned["event_id"] == self.event_id, scanned
        if how != "forged":
            assert scanned["seat_id"] == ticket.seat, scanned

    # -- the admin -----------------------------------------------------------------------------

    @precondition(lambda self: self.drawn_orders())  # (else the first steps are mostly this)
    @rule(data=st.data())
    def change_event(self, data: st.DataObject) -> None:
        """``PATCH /api/admin/events/{id}``: the per-user limit (perhaps below what buyers have
        already), the refund policy, the sale's status, the hold TTL; the next requests must
        follow at once."""
        patch: dict[str, Any] = {}
        if data.draw(st.booleans(), label="change the limit"):
            patch["max_seats_per_user"] = data.draw(st.sampled_from(LIMITS), label="limit")
        if data.draw(st.booleans(), label="change the refund policy"):
            cutoff = data.draw(st.sampled_from([REFUND_CUTOFF_HOURS, None]), label="cutoff")
            patch["refund_cutoff_hours"] = cutoff
        if self._sometimes(data, "change the status"):
            patch["status"] = data.draw(st.sampled_from(["on_sale", "paused", "closed"]))
        if self._sometimes(data, "change the hold TTL"):
            patch["hold_ttl_s"] = data.draw(st.sampled_from(HOLD_TTLS), label="TTL")
        path = f"/api/admin/events/{self.event_id}"
        reply = self.api.call("PATCH", path, patch, token=self.tokens[ADMIN])
        assert reply.status == 200, reply
        self.limit = patch.get("max_seats_per_user", self.limit)
        if "refund_cutoff_hours" in patch:
            self.refundable = patch["refund_cutoff_hours"] is not None
        self.on_sale = patch.get("status", "on_sale" if self.on_sale else "paused") == "on_sale"
        self.hold_ttl_s = patch.get("hold_ttl_s", self.hold_ttl_s)
        event = reply.json()
        now = (event["max_seats_per_user"], event["refund_cutoff_hours"] is not None,
               event["on_sale"], event["hold_ttl_s"])  # fmt: skip
        assert now == (self.limit, self.refundable, self.on_sale, self.hold_ttl_s), event

    # -- races ---------------------------------------------------------------------------------

    def _races(self) -> dict[str, Callable[[st.DataObject], None]]:
        """The races this state allows."""
        allowed = {
            "holds": self.on_sale, "checkouts": bool(self._spare()),
            "cancels": bool(self.paid_orders()), "scans": bool(self.drawn_tickets()),
        }  # fmt: skip
        return {name: getattr(self, f"_race_{name}") for name, ok in allowed.items() if ok}

    @precondition(lambda self: self._races())
    @rule(data=st.data())
    def race(self, data: st.DataObject) -> None:
        """Requests at the same moment: one rule, so that races are not most of a run."""
        races = self._races()
        races[data.draw(st.sampled_from(sorted(races)), label="race")](data)

    def _race_holds(self, data: st.DataObject) -> None:
        """2-3 holds at once of seats in one row (or best available), by any buyers (one of
        them perhaps twice): the node decides them one after the other (README, "Selling each
        seat once"), so each grant is of seats available before and granted to no other
        racer, within its buyer's limit counting the buyer's other grants, and each refusal is
        justified by seats taken before or granted to another racer. The grants are released
        after."""
        row = data.draw(st.sampled_from(ROWS), label="row")
        racers: list[tuple[str, dict[str, Any]]] = []
        for _ in range(data.draw(st.integers(2, 3), label="racers")):
            user = data.draw(st.sampled_from(self.users), label="user")
            if self._sometimes(data, "best available"):
                body: dict[str, Any] = {"best_available": {"count": data.draw(st.integers(1, 2))}}
            else:
                seats = st.lists(st.sampled_from(row), min_size=1, max_size=2, unique=True)
                body = {"seats": data.draw(seats, label="seats")}
            racers.append((user, body))
        before = self.statuses()
        taken = {s for s in SEATS if before[s] != "available"}
        counted = {user: self.counted(user) for user in self.users}
        replies = at_once([
            partial(self.api.post, self._holds_path, body, token=self.tokens[user])
            for user, body in racers
        ])  # fmt: skip
        grants = {i: list(r.json()["seats"]) for i, r in enumerate(replies) if r.status == 201}
        granted = [s for seats in grants.values() for s in seats]
        assert len(granted) == len(set(granted)), f"a seat granted twice: {racers} {replies}"
        assert not taken & set(granted), f"a taken seat granted: {taken} {racers} {replies}"
        for user in self.users:
            mine = sum(len(seats) for i, seats in grants.items() if racers[i][0] == user)
            if mine:  # (the admin may have set the limit below what a buyer has)
                assert counted[user] + mine <= self.limit, (user, counted, racers, replies)
        won: list[Hold] = []
        blockless: list[int] = []  # the counts best available found no block for
        for i, ((user, body), reply) in enumerate(zip(racers, replies, strict=True)):
            named: list[str] | None = body.get("seats")
            wanted = len(named) if named else body["best_available"]["count"]
            others = {s for j, seats in grants.items() if j != i for s in seats}
            theirs = [seats for j, seats in grants.items() if j != i and racers[j][0] == user]
            if reply.status == 201 and named:
                won.append(self._placed(reply, user, layout_order(named)))
            elif reply.status == 201:  # best available: side by side in one row
                (line,) = [r for r in ROWS if grants[i][0] in r]
                start = line.index(grants[i][0])
                won.append(self._placed(reply, user, line[start : start + wanted]))
            elif reply.status == 409 and named:
                conflicts = set(assert_problem(reply, 409, "conflict")["conflicts"])
                asked = set(named)
                assert conflicts and asked & taken <= conflicts <= asked & (taken | others), (
                    racers, replies, taken)  # fmt: skip
            elif reply.status == 409:
                assert_problem(reply, 409, "no_block")
                blockless.append(wanted)
            else:
                problem = assert_problem(reply, 422, "limit")
                if wanted <= self.limit:
                    have = problem["have"]
                    most = counted[user] + sum(map(len, theirs))
                    assert counted[user] <= have <= most, (problem, racers, replies)
                    assert have + wanted > self.limit, (problem, racers, replies)
        # No block when it was decided: then none now, with every grant of the race taken.
        after = self.statuses()
        for count in blockless:
            assert best_block(after, count, None, None) is None, (racers, replies, after)
        for hold in won:
            assert self._release(hold, hold.user).status == 204, hold
            hold.status, hold.raced = "released", True

    def _spare(self) -> list[tuple[str, str]]:
        """(buyer, seat) pairs a hold of one seat would be granted to (for a race to buy)."""
        if not self.on_sale:
            return []
        free = [s for s, status in self.statuses().items() if status == "available"]
        return [(u, s) for u in self.users if self.counted(u) < self.limit for s in free]

    def _race_checkouts(self, data: st.DataObject) -> None:
        """A fresh hold of one seat checked out 2-3 times at once by its owner, under keys of
        their own or all under one key and body, perhaps while the owner releases it: at most
        one order and only for an approved card, never both an order and a release. A
        checkout another one is paying for is a 409 ``in_progress`` and its key keeps nothing,
        so a retry is answered as the hold is by then; a duplicate of one key is a 409
        ``in_progress`` or the first answer replayed (README, "Checkout"). An order is then
        cancelled (by the admin), a hold still active released."""
        user, seat = data.draw(st.sampled_from(self._spare()), label="hold")
        reply = self.api.post(self._holds_path, {"seats": [seat]}, token=self.tokens[user])
        hold = self._placed(reply, user, [seat])
        hold.raced = True
        racers = data.draw(st.integers(2, 3), label="racers")
        cards = [data.draw(st.sampled_from(CARD_DRAWS), label="card") for _ in range(racers)]
        if self._sometimes(data, "one key"):
            cards, keys = cards[:1] * racers, [self._fresh_key(user)] * racers
        else:
            keys = [self._fresh_key(user) for _ in range(racers)]
        calls = [partial(self._checkout, user, key, (hold.id, card, None))
                 for key, card in zip(keys, cards, strict=True)]  # fmt: skip
        release = self._sometimes(data, "release meanwhile")
        if release:
            calls.append(partial(self._release, hold, user))
        replies = at_once(calls)
        released = release and replies[-1].status == 204
        if release and not released:
            assert_problem(replies[-1], 409, "conflict")
        replies = replies[:racers]  # the checkouts'
        paid = [r for r in replies if r.status == 201 and not replayed(r)]
        assert len(paid) <= 1, f"one hold, two orders: {replies}"
        assert not (paid and released), f"a hold both released and bought: {replies}"
        answered: dict[str, Reply] = {}
        for key, card, reply in zip(keys, cards, replies, strict=True):
            if replayed(reply) or kind_of(reply) == "in_progress":
                continue
            if reply.status == 409:
                assert_problem(reply, 409, "conflict")
                assert paid or released, f"409 for a hold nobody bought or released: {replies}"
            else:
                self._answered(reply, card, released=released)
            assert key not in answered, f"one key answered twice: {replies}"
            answered[key] = reply
        assert answered, f"every checkout was told another one is paying: {replies}"
        for key, card, reply in zip(keys, cards, replies, strict=True):
            if kind_of(reply) != "in_progress" or key in answered:
                continue  # (a duplicate of one key: replayed below)
            again = self._checkout(user, key, (hold.id, card, None))
            if paid or released:
                assert_problem(again, 409, "conflict")
            else:
                self._answered(again, card, released=False)
                paid += [again] if again.status == 201 else []
            answered[key] = again
        # Every key has its answer now: a duplicate replayed it, a retry gets it.
        for key, card, reply in zip(keys, cards, replies, strict=True):
            first = answered[key]
            answer = Answer((hold.id, card, None), first.status, first.json())
            if replayed(reply):
                self._replayed(reply, answer)
            elif kind_of(reply) == "in_progress":
                self._replayed(self._checkout(user, key, (hold.id, card, None)), answer)
        if paid:
            order = self._paid(paid[0], hold, None)
            order.raced = True
            for ticket in order.tickets:
                ticket.raced = True
            self._cancelled(self._cancel(order, ADMIN), order, ADMIN)
        elif released:
            hold.status = "released"
        else:
            assert self._release(hold, user).status == 204, hold
            hold.status = "released"

    @staticmethod
    def _answered(reply: Reply, card: str, *, released: bool) -> None:
        """A checkout of an active hold of the user's, by ``card``."""
        status, kind = CARDS[card]
        if kind is None:
            assert reply.status == 201 and not released, reply
        else:
            assert_problem(reply, status, kind)

    def _race_cancels(self, data: st.DataObject) -> None:
        """One order cancelled 2-3 times at once, by its buyer or an admin: cancelled once."""
        order = data.draw(st.sampled_from(self.paid_orders()), label="order")
        racers = data.draw(st.integers(2, 3), label="racers")
        actors = [data.draw(st.sampled_from([order.user, ADMIN])) for _ in range(racers)]
        replies = at_once([partial(self._cancel, order, actor) for actor in actors])
        done = [r for r in replies if r.status == 200]
        may = [a for a in actors if a == ADMIN or self.refundable]
        assert len(done) == (1 if may else 0), f"cancelled {len(done)} times: {replies}"
        for actor, reply in zip(actors, replies, strict=True):
            if reply.status == 200:
                continue
            # The order's state is looked at before the policy: a buyer who may not cancel
            # is told it is cancelled already once an admin's cancel came first.
            kinds = {"conflict"} if actor == ADMIN or self.refundable else {"refund_closed"}
            if done and actor != ADMIN:
                kinds.add("conflict")
            assert assert_problem(reply, 409)["kind"] in kinds, (actors, replies)
        if done:
            (winner,) = [a for a, r in zip(actors, replies, strict=True) if r.status == 200]
            self._cancelled(done[0], order, winner)

    def _race_scans(self, data: st.DataObject) -> None:
        """One ticket scanned at 2-3 doors at once: let in once (README, "Door check-in")."""
        ticket = data.draw(st.sampled_from(self.drawn_tickets()), label="ticket")
        racers = data.draw(st.integers(2, 3), label="racers")
        body = {"code": ticket.code, "event_id": self.event_id}
        scan = partial(self.api.post, "/api/checkin", body, token=self.scanner)
        replies = at_once([scan] * racers)
        self.touched_tickets.add(ticket.code)
        results = sorted(r.json()["result"] for r in replies)
        for reply in replies:  # SPEC §5: only an admission is a 200
            assert reply.status == (200 if reply.json()["result"] == "admitted" else 409), reply
        if ticket.void:
            assert results == ["void"] * racers, replies
        elif ticket.admitted:
            assert results == ["already_used"] * racers, replies
        else:
            assert results == ["admitted"] + ["already_used"] * (racers - 1), replies
            ticket.admitted = True

    # -- the node agrees -----------------------------------------------------------------------

    @invariant()
    def seat_map_agrees(self) -> None:
        if not self.event_id:
            return
        reply = self.api.get(f"/api/events/{self.event_id}/seats")
        assert reply.status == 200, reply
        snapshot = reply.json()
        assert [s for s, _ in snapshot["seats"]] == SEATS, snapshot  # in layout order
        assert dict(snapshot["seats"]) == self.statuses(), snapshot
        assert snapshot["seq"] >= self.seq, (self.seq, snapshot)  # seq never goes back
        self.seq = snapshot["seq"]

    @invariant()
    def orders_agree(self) -> None:
        sold: list[str] = []
        for user in self.users:
            reply = self.api.get("/api/orders", token=self.tokens[user])
            assert reply.status == 200, reply
            listed: list[dict[str, Any]] = reply.json()
            stamps = [o["created_at"] for o in listed]
            assert stamps == sorted(stamps, reverse=True), stamps  # newest first
            got = {o["order_id"]: o for o in listed}
            until = self.cancellable_until
            mine = {o.id: o.expected(until) for o in self.orders.values() if o.user == user}
            assert got == mine, (user, mine, got)
            sold += [t["seat_id"] for o in listed for t in o["tickets"] if t["status"] == "valid"]
        assert len(sold) == len(set(sold)), f"a seat on two valid tickets: {sorted(sold)}"

    @invariant()
    def touched_agree(self) -> None:
        self._holds_agree(self.touched_holds)
        self._orders_agree(self.touched_orders)
        self._tickets_agree(self.touched_tickets)
        self.touched_holds.clear()
        self.touched_orders.clear()
        self.touched_tickets.clear()

    def teardown(self) -> None:
        if not self.event_id:
            return
        live = self._holds_agree(set(self.holds))
        held = [s for hold in live for s in hold["seats"]]
        assert len(held) == len(set(held)), f"a seat in two live holds: {sorted(held)}"
        self._orders_agree(set(self.orders), pdf=True)
        self._order_files_agree()
        self._tickets_agree(set(self.tickets))
        with self.server.log_path.open("rb") as log:
            log.seek(self.log_from)
            fresh = log.read().decode(errors="replace")
        assert "Traceback" not in fresh, fresh[-3000:]

    def _holds_agree(self, hold_ids: set[str]) -> list[dict[str, Any]]:
        """Each hold as its owner reads it; returns the active ones."""
        live = []
        for hold_id in sorted(hold_ids):
            hold = self.holds[hold_id]
            reply = self.api.get(f"/api/holds/{hold_id}", token=self.tokens[hold.user])
            assert reply.status == 200, reply
            assert reply.json() == hold.expected(), (hold.expected(), str(reply))
            if hold.status == "active":
                live.append(reply.json())
        return live

    def _orders_agree(self, order_ids: set[str], *, pdf: bool = False) -> None:
        """Each order as its buyer and an admin read it; another buyer may not. With ``pdf``,
        its tickets as a PDF too: a cancelled order's are void (409)."""
        for order_id in sorted(order_ids):
            order = self.orders[order_id]
            expected = order.expected(self.cancellable_until)
            path = f"/api/orders/{order_id}"
            for reader in (order.user, ADMIN):
                reply = self.api.get(path, token=self.tokens[reader])
                assert reply.status == 200, reply
                assert reply.json() == expected, (expected, str(reply))
            other = next(user for user in self.users if user != order.user)
            assert_problem(self.api.get(path, token=self.tokens[other]), 404, "not_found")
            if not pdf:
                continue
            reply = self.api.get(f"{path}/tickets.pdf", token=self.tokens[order.user])
            if order.cancelled:
                assert_problem(reply, 409, "conflict")
            else:
                assert reply.status == 200 and reply.body.startswith(b"%PDF"), reply

    def _order_files_agree(self) -> None:
        """The order desk's file of each order: one payment, charged, or refunded once the
        order is cancelled (at once: the test gateway refunds); the refund asked for by whoever
        cancelled; an admin's cancel in the audit log with its reason; the e-mails to the
        order's address, if it has one."""
        for order_id in sorted(self.orders):
            order = self.orders[order_id]
            reply = self.api.get(f"/api/admin/orders/{order_id}", token=self.tokens[ADMIN])
            assert reply.status == 200, reply
            found = reply.json()
            amount = order.paid["amount_cents"]
            assert found["order"] == order.expected(self.cancellable_until), found
            assert found["user_id"] == order.user, found
            (payment,) = found["payments"]
            status = "refunded" if order.cancelled else "charged"
            assert (payment["status"], payment["amount_cents"]) == (status, amount), found
            refund, audit = found["refund"], found["audit"]
            if order.cancelled_by is None:
                assert (refund, audit) == (None, []), found
            else:
                by = self.admin if order.cancelled_by == ADMIN else order.user
                assert (refund["status"], refund["amount_cents"]) == ("refunded", amount), found
                assert refund["requested_by"] == by, found
                staff = [(self.admin, "order.cancel", order_id)] if by == self.admin else []
                assert [(a["actor"], a["action"], a["target"]) for a in audit] == staff, found
            mails = [(d["kind"], d["recipient"]) for d in found["deliveries"]]
            if order.paid["email"] is None:
                assert mails == [], found
            else:
                sent = ["order_confirmation"] + (["order_cancelled"] if order.cancelled else [])
                assert mails == [(kind, order.paid["email"]) for kind in sent], found

    def _tickets_agree(self, codes: set[str]) -> None:
        for code in sorted(codes):
            ticket = self.tickets[code]
            reply = self.api.get(f"/api/tickets/{code}")
            assert reply.status == 200, reply
            expected = {"code": code, "valid": not ticket.void,
                        "status": "void" if ticket.void else "valid", "event_id": self.event_id,
                        "seat_id": ticket.seat, "order_id": ticket.order}  # fmt: skip
            assert reply.json() == expected, (expected, str(reply))


def test_the_sale_agrees_with_its_model(booking_server: ServerProcess) -> None:
    class Sale(SaleModel):  # the factory hypothesis calls with no arguments
        def __init__(self) -> None:
            super().__init__(booking_server)

    run_state_machine_as_test(
        Sale,
        settings=settings(
            max_examples=RUNS,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
