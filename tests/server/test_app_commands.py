"""SPEC §4 ``/app`` booking commands over STOMP (stomp.py over TCP), on SQLite and MariaDB.

A command's answer arrives on the sender's ``/user/queue/replies`` (or ``/user/queue/errors``)
with the request's ``correlation-id``; errors carry the same status and kind as the REST
problem for the same failure. The seat map, read over REST, shows what a command changed, and
that a refused one changed nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.server.stomp_clients import Client, Clients, unique
from tests.server.test_rest_api import Api, admission_token, traceback_free


@pytest.fixture
def api(booking_server: ServerProcess) -> Iterator[Api]:
    yield from traceback_free(booking_server)


@pytest.fixture
def clients(booking_server: ServerProcess) -> Iterator[Clients]:
    opened = Clients(booking_server)
    yield opened
    opened.close_all()


@pytest.fixture
def event(api: Api) -> dict[str, Any]:
    return api.create_event()


class Shopper:
    """A user's STOMP session subscribed to its replies and errors."""

    def __init__(self, clients: Clients, user: str | None = None) -> None:
        self.user = user or unique("shopper")
        self.client: Client = clients("tcp", user=self.user)
        self.client.subscribe("/user/queue/replies")
        self.client.subscribe("/user/queue/errors")

    def send(self, destination: str, body: Any = None, **headers: str) -> str:
        """SEND a command; returns its correlation id."""
        correlation = unique("c")
        text = body if isinstance(body, str) else ("" if body is None else json.dumps(body))
        self.client.send(
            destination,
            text,
            content_type="application/json",
            headers={"correlation-id": correlation, **headers},
        )
        return correlation

    def answer(self, correlation: str, timeout: float = 10.0) -> tuple[str, dict[str, Any]]:
        """(queue, body) of the MESSAGE correlated with ``correlation``."""
        frame = self.client.listener.wait(
            "MESSAGE", timeout, lambda f: f.headers.get("correlation-id") == correlation
        )
        assert frame.headers["content-type"].startswith("application/json"), frame.headers
        queue = frame.headers["destination"].rsplit("/", 1)[-1]
        return queue, json.loads(frame.body)

    def reply(self, correlation: str) -> dict[str, Any]:
        queue, body = self.answer(correlation)
        assert queue == "replies", body
        return body

    def error(self, correlation: str, status: int, kind: str) -> dict[str, Any]:
        queue, body = self.answer(correlation)
        assert queue == "errors", body
        assert body["type"] == "error", body
        assert (body["status"], body["kind"]) == (status, kind), body
        assert isinstance(body["detail"], str) and "Traceback" not in body["detail"]
        return body

    def hold(self, event_id: int, seats: list[str], **headers: str) -> str:
        return self.send(f"/app/events/{event_id}/holds", {"seats": seats}, **headers)


def test_hold_and_release_over_stomp(api: Api, clients: Clients, event: dict[str, Any]) -> None:
    eid = event["id"]
    shopper = Shopper(clients)
    held = shopper.reply(shopper.hold(eid, ["A-B-1", "A-B-2"]))
    assert held["type"] == "hold" and held["event_id"] == eid
    assert sorted(held["seats"]) == ["A-B-1", "A-B-2"]
    assert held["amount_cents"] == 10000 and held["currency"] == "EUR"
    assert held["status"] == "active" and held["expires_at"].endswith("Z")
    assert held["hold_id"].startswith("h_")
    seats = api.seats(eid)
    assert seats["A-B-1"] == "held" and seats["A-B-2"] == "held"
    token = api.server.token(shopper.user)
    rest = api.get(f"/api/holds/{held['hold_id']}", token=token).json()
    assert {k: v for k, v in held.items() if k != "type"} == rest  # the REST body, typed

    released = shopper.reply(shopper.send(f"/app/holds/{held['hold_id']}/release"))
    assert released == {"type": "released", "hold_id": held["hold_id"]}
    assert api.seats(eid)["A-B-1"] == "available"
    again = shopper.send(f"/app/holds/{held['hold_id']}/release")
    shopper.error(again, 409, "conflict")
    assert not shopper.client.listener.disconnected  # an error reply, not a STOMP ERROR


def test_a_commands_receipt_comes_once_it_took_effect(
    api: Api, clients: Clients, event: dict[str, Any]
) -> None:
    """The RECEIPT of a SEND to /app (``Shopper.send`` waits for it) follows the command's
    reply: the seats are held by then."""
    shopper = Shopper(clients)
    for seat in ("A-C-1", "A-C-2", "A-C-3"):
        correlation = shopper.hold(event["id"], [seat])
        replies = [
            f
            for kind, f in shopper.client.listener.frames
            if kind == "MESSAGE" and f and f.headers.get("correlation-id") == correlation
        ]
        assert replies, "the RECEIPT came before the reply"  # fmt: skip
        assert api.seats(event["id"])[seat] == "held"


def test_conflicts_go_to_the_errors_queue(
    api: Api, clients: Clients, event: dict[str, Any]
) -> None:
    eid = event["id"]
    first, second = Shopper(clients), Shopper(clients)
    first.reply(first.hold(eid, ["B-A-1", "B-A-3"]))
    before = api.seats(eid)
    problem = second.error(second.hold(eid, ["B-A-1", "B-A-2", "B-A-3"]), 409, "conflict")
    assert problem["conflicts"] == ["B-A-1", "B-A-3"]
    assert api.seats(eid) == before
    assert second.reply(second.hold(eid, ["B-A-2"]))["type"] == "hold"


def test_refused_commands_change_nothing(api: Api, clients: Clients, event: dict[str, Any]) -> None:
    eid = event["id"]
    shopper = Shopper(clients)
    before = api.seats(eid)
    holds = f"/app/events/{eid}/holds"
    shopper.error(shopper.send(holds, '{"seats": ["A-A-1"'), 400, "bad_request")
    shopper.error(shopper.send(holds), 400, "bad_request")
    invalid = shopper.error(shopper.send(holds, {"seats": "A-A-1"}), 422, "validation")
    assert invalid["errors"][0]["loc"] == ["seats"]
    shopper.error(shopper.send(holds, {"seats": ["A-A-1"], "extra": 1}), 422, "validation")
    shopper.error(shopper.hold(eid, ["A-A-1", "A-A-1"]), 422, "invalid")
    unknown = shopper.error(shopper.hold(eid, ["A-A-1", "Q-Q-1"]), 422, "invalid")
    assert unknown["unknown"] == ["Q-Q-1"]
    over = shopper.error(shopper.hold(eid, [f"A-E-{n}" for n in range(1, 6)]), 422, "limit")
    assert over["limit"] == 4
    shopper.error(shopper.hold(987654, ["A-A-1"]), 404, "not_found")
    shopper.error(shopper.send("/app/holds/h_nothing/release"), 404, "not_found")
    assert api.seats(eid) == before
    assert not shopper.client.listener.pending("ERROR")


def test_another_users_hold_cannot_be_released(
    api: Api, clients: Clients, event: dict[str, Any]
) -> None:
    owner, other = Shopper(clients), Shopper(clients)
    held = owner.reply(owner.hold(event["id"], ["A-C-4"]))
    other.error(other.send(f"/app/holds/{held['hold_id']}/release"), 404, "not_found")
    assert api.seats(event["id"])["A-C-4"] == "held"


def test_waiting_room_needs_the_admission_token_header(api: Api, clients: Clients) -> None:
    eid = api.create_event(waiting_room=True)["id"]
    shopper = Shopper(clients)
    before = api.seats(eid)
    shopper.error(shopper.hold(eid, ["A-A-1"]), 403, "admission_required")
    expired = admission_token(eid, shopper.user, -30)
    shopper.error(
        shopper.hold(eid, ["A-A-1"], **{"admission-token": expired}), 403, "admission_required"
    )
    someone_elses = admission_token(eid, unique("someone"))
    shopper.error(
        shopper.hold(eid, ["A-A-1"], **{"admission-token": someone_elses}),
        403,
        "admission_required",
    )
    assert api.seats(eid) == before
    valid = admission_token(eid, shopper.user)
    held = shopper.reply(shopper.hold(eid, ["A-A-1"], **{"admission-token": valid}))
    assert held["seats"] == ["A-A-1"]


def test_a_closed_sale_is_refused(api: Api, clients: Clients) -> None:
    eid = api.create_event(status="paused")["id"]
    shopper = Shopper(clients)
    shopper.error(shopper.hold(eid, ["B-B-2"]), 409, "sale_closed")
    assert api.seats(eid)["B-B-2"] == "available"


def test_replies_reach_only_the_sender_but_all_its_sessions(
    api: Api, clients: Clients, event: dict[str, Any]
) -> None:
    shopper = Shopper(clients)
    twin = Shopper(clients, user=shopper.user)  # a second session of the same user
    bystander = Shopper(clients)
    correlation = shopper.hold(event["id"], ["B-E-10"])
    held = shopper.reply(correlation)
    assert twin.reply(correlation) == held
    assert bystander.client.listener.quiet(seconds=0.5) == []


def test_ping_still_answers_and_unknown_commands_are_forbidden(
    clients: Clients, event: dict[str, Any]
) -> None:
    shopper = Shopper(clients)
    assert shopper.reply(shopper.send("/app/ping")) == {"type": "pong"}
    for destination in (
        "/app/events/not-a-number/holds",
        f"/app/events/{event['id']}/holds/extra",
        "/app/holds",
        "/app/nothing",
    ):
        client = clients("tcp", user=unique("lost"))
        client.send(destination, "{}", receipt=False)
        error = client.listener.error()
        assert error.headers["message"] == "forbidden destination", (destination, error.headers)
        client.listener.wait_disconnected()


def test_anonymous_sessions_may_not_send_commands(
    api: Api, clients: Clients, event: dict[str, Any]
) -> None:
    anonymous = clients("tcp")
    anonymous.send(f"/app/events/{event['id']}/holds", '{"seats": ["A-A-9"]}', receipt=False)
    assert anonymous.listener.error().headers["message"] == "forbidden destination"
    anonymous.listener.wait_disconnected()
    assert api.seats(event["id"])["A-A-9"] == "available"


def test_a_hold_made_over_stomp_checks_out_over_rest(
    api: Api, clients: Clients, event: dict[str, Any]
) -> None:
    shopper = Shopper(clients)
    held = shopper.reply(shopper.hold(event["id"], ["A-D-5"]))
    paid = api.checkout(held["hold_id"], api.server.token(shopper.user))
    assert paid.status == 201, paid
    assert api.seats(event["id"])["A-D-5"] == "sold"
    shopper.error(shopper.send(f"/app/holds/{held['hold_id']}/release"), 409, "conflict")
    assert api.seats(event["id"])["A-D-5"] == "sold"
