"""A short sale scripted against a live node, and its ``/metrics`` read back (issue 9).

:func:`run_sale` drives a node through what a sale does, through its real edges (REST, STOMP
over TCP), and returns the scrapes taken on the way. Every step is a user-visible action whose
answer is checked, so the counts the tests then expect of the metrics are known exactly:

===========================  =====================================================================
waiting room                 alice and bob join and are admitted (2 active shoppers at most);
                             carol joins and waits, subscribed to her position (pushes every
                             0.5 s), until alice's purchase makes room and she is admitted
holds (event with a room)    granted: alice 2 seats, alice 1 seat, bob 1 seat, bob 1 seat;
                             conflict: bob on alice's seat; no_admission: bob without a token;
                             invalid: an unknown seat; over_limit: 5 seats; not_found: no event;
                             sale_closed: a closed event
checkouts                    paid: alice twice; replayed: alice's first again (same key);
                             declined: bob (``tok_declined``); gateway_error: bob (``tok_error``)
orders                       once carol is admitted, alice cancels her first order (refunded)
expiry                       bob's two holds lapse (moved into the past in the database, as the
                             booking tests do: a hold TTL is at least 10 s) and the reaper frees
                             them
seat map                     ``GET /api/events/{id}/seats`` serves a snapshot
===========================  =====================================================================
"""

from __future__ import annotations

import functools
import json
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import stomp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, update

from booking.schema import holds, seats
from tests.booking.conftest import create_event_via_api, sync_url
from tests.conftest import ServerProcess, rest
from tests.server.stomp_clients import http_get, unique

#: The position push interval of the node (``--position-interval-s``).
POSITION_INTERVAL_S = 0.5
DEADLINE_S = 30.0

Labels = frozenset[tuple[str, str]]


@dataclass
class Scrape:
    """One ``/metrics`` answer: every sample, and every series name the families declare."""

    samples: dict[tuple[str, Labels], float]
    series: set[str]

    @classmethod
    def of(cls, node: ServerProcess) -> Scrape:
        status, _, body = http_get(f"{node.http_url}/metrics")
        assert status == 200, body
        samples, series = {}, set()
        for family in text_string_to_metric_families(body):
            series |= series_names(family)
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = s.value
        return cls(samples, series)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples ``name`` whose labels include ``labels`` (0 if none)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def has(self, name: str, **labels: str) -> bool:
        wanted = set(labels.items())
        return any(n == name and wanted <= ls for n, ls in self.samples)


def series_names(family: Any) -> set[str]:
    """The series names a family's samples carry, with or without samples yet."""
    name, kind = family.name, family.type
    if kind == "counter":
        return {f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    if kind == "summary":
        return {name, f"{name}_sum", f"{name}_count"}
    if kind == "info":
        return {f"{name}_info"}
    return {name}


def wait_for(check: Callable[[], Any], what: str, timeout: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


def scrape_until(node: ServerProcess, check: Callable[[Scrape], bool], what: str) -> Scrape:
    def attempt() -> Scrape | None:
        scrape = Scrape.of(node)
        return scrape if check(scrape) else None

    found: Scrape = wait_for(attempt, what)
    return found


@dataclass
class Sale:
    """What the script did, and the node's scrapes: while carol waited, and at the end."""

    node: ServerProcess
    event_id: int = 0
    closed_id: int = 0
    while_waiting: Scrape | None = None
    final: Scrape | None = None
    holds: dict[str, str] = field(default_factory=dict)


def call(node: ServerProcess, method: str, path: str, user: str | None = None,
         body: Any = None, **headers: str) -> tuple[int, Any]:  # fmt: skip
    token = node.token(user, "user") if user else None
    return rest(node, method, path, body, token=token, headers=headers)


def admitted(node: ServerProcess, event_id: int, user: str) -> str | None:
    """The user's admission token once admitted."""
    status, body = call(node, "GET", f"/api/events/{event_id}/queue/me", user)
    assert status == 200, body
    return body.get("admission_token") if body["state"] == "admitted" else None


class Positions(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.bodies: queue.Queue[dict[str, Any]] = queue.Queue()

    def on_message(self, frame: Any) -> None:
        self.bodies.put(json.loads(frame.body))


def watch_positions(node: ServerProcess, user: str) -> tuple[stomp.Connection, Positions]:
    listener = Positions()
    conn = stomp.Connection([(node.host, node.stomp_port)])
    conn.set_listener("", listener)
    conn.connect(passcode=node.token(user), wait=True)
    conn.subscribe("/user/queue/position", id="pos", ack="auto")
    return conn, listener


def lapse(database_url: str, hold_ids: list[str]) -> None:
    """Move the holds' expiry (and their seats') into the past, in the database only."""
    past = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    engine = create_engine(sync_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(update(holds).where(holds.c.id.in_(hold_ids)).values(expires_at=past))
            conn.execute(
                update(seats).where(seats.c.hold_id.in_(hold_ids)).values(hold_expires_at=past)
            )
    finally:
        engine.dispose()


def run_sale(node: ServerProcess, database_url: str) -> Sale:
    sale = Sale(node)
    event = create_event_via_api(
        node, rows=2, seats_per_row=10, waiting_room=True, admission_rate=50,
        max_active_shoppers=2, max_seats_per_user=4,
    )  # fmt: skip
    sale.event_id = event_id = int(event["id"])
    sale.closed_id = int(create_event_via_api(node, status="closed")["id"])
    alice, bob, carol = unique("alice"), unique("bob"), unique("carol")

    # The waiting room: two admitted, the third waits and hears her position.
    for user in (alice, bob):
        assert call(node, "POST", f"/api/events/{event_id}/queue", user)[0] == 200
    tokens = {u: wait_for(functools.partial(admitted, node, event_id, u), f"{u} admitted")
              for u in (alice, bob)}  # fmt: skip
    status, position = call(node, "POST", f"/api/events/{event_id}/queue", carol)
    assert (status, position["state"]) == (200, "waiting"), position
    conn, positions = watch_positions(node, carol)
    try:
        for _ in range(3):  # the greeting, then pushes from the position loop
            assert positions.bodies.get(timeout=DEADLINE_S)["state"] == "waiting"
        label = str(event_id)
        sale.while_waiting = scrape_until(
            node,
            lambda s: (
                s.value("concert_hub_queue_waiting", event_id=label) == 1
                and s.value("concert_hub_queue_position_push_lateness_seconds_count") >= 1
            ),
            "carol counted as waiting, and a position push measured",
        )
    finally:
        conn.disconnect()

    # Holds: every way one can end.
    def hold(user: str, seat_ids: list[str], token: str | None, event: int = event_id
             ) -> tuple[int, Any]:  # fmt: skip
        headers = {"X-Admission-Token": token} if token else {}
        return call(node, "POST", f"/api/events/{event}/holds", user, {"seats": seat_ids},
                    **headers)  # fmt: skip

    def granted(user: str, seat_ids: list[str]) -> str:
        status, body = hold(user, seat_ids, tokens[user])
        assert status == 201, body
        return str(body["hold_id"])

    sale.holds["alice"] = granted(alice, ["S-A-1", "S-A-2"])
    refusals = {
        409: hold(bob, ["S-A-2"], tokens[bob]),  # conflict
        403: hold(bob, ["S-A-3"], None),  # no admission
        422: hold(bob, ["S-Z-99"], tokens[bob]),  # invalid
        404: hold(bob, ["S-A-3"], tokens[bob], event=10**8),  # no such event
    }
    for status, (got, body) in refusals.items():
        assert got == status, (status, body)
    over = hold(bob, [f"S-B-{n}" for n in range(1, 6)], tokens[bob])
    assert over[0] == 422 and over[1]["type"].endswith("problem-limit"), over
    closed = hold(bob, ["S-A-3"], None, event=sale.closed_id)
    assert closed[0] == 409 and closed[1]["type"].endswith("problem-sale_closed"), closed

    # Checkouts: paid, replayed, declined, a gateway error; then a cancellation.
    def checkout(user: str, hold_id: str, card: str, key: str) -> tuple[int, Any]:
        body = {"payment": {"method": "card", "token": card}}
        return call(node, "POST", f"/api/holds/{hold_id}/checkout", user, body,
                    **{"Idempotency-Key": key})  # fmt: skip

    # Alice's second hold comes before her first purchase, which uses her admission up (a hold
    # placed before it stays payable; one after it is refused).
    sale.holds["alice-kept"] = granted(alice, ["S-A-9"])
    first_key = unique("k")
    status, order = checkout(alice, sale.holds["alice"], "tok_visa", first_key)
    assert status == 201, order
    replay = checkout(alice, sale.holds["alice"], "tok_visa", first_key)
    assert replay == (201, order), replay
    used = hold(alice, ["S-A-8"], tokens[alice])
    assert used[0] == 403 and used[1]["kind"] == "admission_required", used
    assert checkout(alice, sale.holds["alice-kept"], "tok_visa", unique("k"))[0] == 201
    sale.holds["bob-declined"] = granted(bob, ["S-B-1"])
    declined = checkout(bob, sale.holds["bob-declined"], "tok_declined", unique("k"))
    assert declined[0] == 402, declined
    sale.holds["bob-error"] = granted(bob, ["S-B-2"])
    failed = checkout(bob, sale.holds["bob-error"], "tok_error", unique("k"))
    assert failed[0] == 502, failed
    # Alice's purchase made room: carol is admitted by the waiting room's tick. Only then the
    # cancel, so its seats go back on sale (with someone still in line they would be offered
    # to her first, on hold for her: tests/server/test_sellout_live.py).
    wait_for(lambda: admitted(node, event_id, carol), "carol admitted in alice's place")
    cancelled = call(node, "POST", f"/api/orders/{order['order_id']}/cancel", alice)
    assert cancelled[0] == 200 and cancelled[1]["status"] == "cancelled", cancelled

    # Bob's two holds lapse; the reaper frees them. Carol is admitted in alice's place.
    lapse(database_url, [sale.holds["bob-declined"], sale.holds["bob-error"]])
    status, _ = call(node, "GET", f"/api/events/{event_id}/seats")
    assert status == 200
    assert http_get(f"{node.http_url}/no/such/page")[0] == 404  # no route
    sale.final = scrape_until(
        node,
        lambda s: (
            s.value("concert_hub_holds_expired_total") == 2
            and s.value("concert_hub_seats", event_id=label, status="held") == 0
            and s.value("concert_hub_queue_admissions_total", event_id=label) == 3
            and s.value("concert_hub_queue_waiting", event_id=label) == 0
            and s.value("concert_hub_seatmap_delta_lag_seconds_count") >= SEAT_CHANGES
        ),
        "the holds reaped, carol admitted, every seat change in a delta",
    )
    return sale


#: Seat changes the script commits on its event, at least: four holds granted, two orders sold,
#: one cancelled, and the reaper's (one per sweep and event, so one or two).
SEAT_CHANGES = 4 + 2 + 1 + 1
