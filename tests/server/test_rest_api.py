"""SPEC §5 REST API against a real node, on SQLite and MariaDB (the ``booking_server`` fixture).

Every test creates its own event through the admin API and its own users, so tests sharing the
module's node never see each other's seats. After every refused request the test reads the seat
map again: a refusal must leave nothing changed.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pytest

from booking.admissions import AdmissionSigner
from booking.keyring import Keyring
from booking.ticket_keys import RELOAD_EVERY_S
from tests.conftest import SECRET, ServerProcess
from tests.server.stomp_clients import Clients, unique

PROBLEM_JSON = "application/problem+json"
_NO_BODY = object()


# -------------------------------------------------------------------------------------------
# a small HTTP client (stdlib, so what is tested is the server, not a client library)
# -------------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip()

    def json(self) -> Any:
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"{self.status} {self.content_type} {self.body[:300]!r}"


class Api:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    def call(
        self,
        method: str,
        path: str,
        body: Any = _NO_BODY,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        timeout: float = 15.0,
    ) -> Reply:
        sent = dict(headers or {})
        if body is not _NO_BODY:
            data = json.dumps(body).encode()
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection(self.server.host, self.server.http_port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=sent)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = _NO_BODY, **kw: Any) -> Reply:
        return self.call("POST", path, body, **kw)

    # -- conveniences for the tests --

    def admin(self) -> str:
        return self.server.token("admin", "admin")

    def user(self, prefix: str = "u") -> tuple[str, str]:
        """A fresh user and a token for them."""
        name = unique(prefix)
        return name, self.server.token(name)

    def create_event(self, **overrides: Any) -> dict[str, Any]:
        reply = self.post("/api/admin/events", event_spec(**overrides), token=self.admin())
        assert reply.status == 201, reply
        event: dict[str, Any] = reply.json()
        return event

    def seats(self, event_id: int) -> dict[str, str]:
        reply = self.get(f"/api/events/{event_id}/seats")
        assert reply.status == 200, reply
        assert reply.content_type == "application/json"
        snapshot = reply.json()
        assert snapshot["type"] == "snapshot" and snapshot["event_id"] == event_id
        return dict(snapshot["seats"])

    def hold(self, event_id: int, token: str, seats: list[str], **kw: Any) -> Reply:
        return self.post(f"/api/events/{event_id}/holds", {"seats": seats}, token=token, **kw)

    def checkout(
        self, hold_id: str, token: str, card: str = "tok_visa", key: str | None = None
    ) -> Reply:
        return self.post(
            f"/api/holds/{hold_id}/checkout",
            {"payment": {"method": "card", "token": card}},
            token=token,
            headers={"Idempotency-Key": key or unique("key")},
        )


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def instant(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def event_spec(**overrides: Any) -> dict[str, Any]:
    """2 sections x 5 rows x 10 seats, on sale now; section A costs 50.00, B 25.00 EUR."""
    now = datetime.now(UTC)
    spec: dict[str, Any] = {
        "name": unique("Event"),
        "venue": "Test Hall",
        "starts_at": iso(now + timedelta(days=7)),
        "sale_opens_at": iso(now - timedelta(hours=1)),
        "sale_closes_at": iso(now + timedelta(days=6)),
        "status": "on_sale",
        "layout": {
            "tiers": [
                {"name": "Front", "price_cents": 5000, "currency": "EUR"},
                {"name": "Back", "price_cents": 2500, "currency": "EUR"},
            ],
            "sections": [
                {"name": "A", "rows": 5, "seats_per_row": 10, "tier": "Front"},
                {"name": "B", "rows": 5, "seats_per_row": 10, "tier": "Back"},
            ],
        },
    }
    spec.update(overrides)
    return spec


def admission_token(event_id: int, user: str, ttl_s: float = 60, secret: str = SECRET) -> str:
    """What the waiting room hands an admitted user (minted here with the node's secret)."""
    return AdmissionSigner(Keyring(secret)).issue(event_id, user, time.time() + ttl_s)


def assert_problem(reply: Reply, status: int, kind: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with ``status`` (and ``kind``); returns its body."""
    assert reply.status == status, reply
    assert reply.content_type == PROBLEM_JSON, reply
    assert b"Traceback" not in reply.body, reply
    body: dict[str, Any] = reply.json()
    assert body["status"] == status, body
    for member in ("type", "title", "detail", "kind"):
        assert isinstance(body.get(member), str), (member, body)
    if kind is not None:
        assert body["kind"] == kind, body
    return body


def traceback_free(node: ServerProcess) -> Iterator[Api]:
    """An :class:`Api` on ``node`` for one test, which may leave no traceback in its log."""
    before = len(node.log())
    yield Api(node)
    fresh = node.log()[before:]
    assert "Traceback" not in fresh, fresh[-3000:]


@pytest.fixture
def api(booking_server: ServerProcess) -> Iterator[Api]:
    """The module's node."""
    yield from traceback_free(booking_server)


@pytest.fixture
def event(api: Api) -> dict[str, Any]:
    return api.create_event()


# -------------------------------------------------------------------------------------------
# identities and access
# -------------------------------------------------------------------------------------------


def test_guest_identity_can_hold_seats(api: Api, event: dict[str, Any]) -> None:
    reply = api.post("/api/auth/guest")
    assert reply.status == 201, reply
    guest = reply.json()
    assert guest["user"].startswith("guest-") and guest["token"]
    assert guest["expires_at"].endswith("Z")
    held = api.hold(event["id"], guest["token"], ["A-A-1"])
    assert held.status == 201, held
    again = api.post("/api/auth/guest").json()
    assert again["user"] != guest["user"]


def test_protected_operations_need_a_valid_token(api: Api, event: dict[str, Any]) -> None:
    path = f"/api/events/{event['id']}/holds"
    body = {"seats": ["A-A-1"]}
    missing = assert_problem(api.post(path, body), 401, "unauthorized")
    assert "Bearer" in missing["detail"]
    reply = api.post(path, body)
    assert (reply.headers.get("WWW-Authenticate") or "").startswith("Bearer")
    assert_problem(api.post(path, body, headers={"Authorization": "Basic eDp5"}), 401)
    assert_problem(api.post(path, body, token="not.a.token"), 401, "unauthorized")
    forged = ServerProcess(0, 0, api.server.workdir, secret="another-secret").token("mallory")
    assert_problem(api.post(path, body, token=forged), 401, "unauthorized")
    expired = api.server.token("late", ttl=-30)
    assert_problem(api.post(path, body, token=expired), 401, "unauthorized")
    assert api.seats(event["id"])["A-A-1"] == "available"


def test_admin_operations_refuse_other_roles(api: Api, event: dict[str, Any]) -> None:
    for role in ("user", "publisher"):
        token = api.server.token(unique(role), role)
        calls = [
            api.post("/api/admin/events", event_spec(), token=token),
            api.call(
                "PATCH", f"/api/admin/events/{event['id']}", {"status": "closed"}, token=token
            ),
            api.post("/api/admin/broadcast", {"text": "hi"}, token=token),
            api.get("/api/admin/stats", token=token),
        ]
        for reply in calls:
            assert_problem(reply, 403, "not_admin")
    assert api.get(f"/api/events/{event['id']}").json()["status"] == "on_sale"


def test_rate_limits_per_ip_per_user_and_for_guests(
    make_server: Callable[..., ServerProcess],
) -> None:
    node = make_server(rest_rate_per_ip=20, rest_rate_per_user=3, guest_rate_per_ip=1)
    api = Api(node)
    assert api.post("/api/auth/guest").status == 201
    assert_problem(api.post("/api/auth/guest"), 429, "rate_limited")
    assert int(api.post("/api/auth/guest").headers["Retry-After"]) >= 1

    _, alice = api.user("alice")
    answers = [api.get("/api/holds/h_none", token=alice).status for _ in range(4)]
    assert answers[:3] == [404, 404, 404] and answers[3] == 429, answers
    _, bob = api.user("bob")
    assert api.get("/api/holds/h_none", token=bob).status == 404  # another user is unaffected

    # Over 20/s from one address some are refused. (Which ones depends on how fast this
    # machine sends them: the bucket refills meanwhile, so the refused reply is looked for.)
    replies = [api.get("/api/events") for _ in range(40)]
    refused = [r for r in replies if r.status != 200]
    assert refused, [r.status for r in replies]
    reply = refused[-1]
    problem = assert_problem(reply, 429, "rate_limited")
    assert "client IP" in problem["detail"]
    wait = int(reply.headers["Retry-After"])
    assert 1 <= wait <= 2
    time.sleep(wait)
    assert api.get("/api/events").status == 200
    assert api.get("/healthz").status == 200  # outside /api: never limited


# -------------------------------------------------------------------------------------------
# events
# -------------------------------------------------------------------------------------------


def test_admin_creates_an_event_that_everyone_can_read(api: Api) -> None:
    spec = event_spec()
    reply = api.post("/api/admin/events", spec, token=api.admin())
    assert reply.status == 201, reply
    created = reply.json()
    assert reply.headers["Location"] == f"/api/events/{created['id']}"
    assert created["name"] == spec["name"] and created["venue"] == "Test Hall"
    assert created["status"] == "on_sale" and created["on_sale"] is True
    assert created["seat_count"] == 100 and created["waiting_room"] is False
    assert created["timezone"] == "UTC"  # none given
    for key in ("starts_at", "sale_opens_at", "sale_closes_at"):
        assert instant(created[key]) == instant(spec[key]), key
    tiers = {t["name"]: t for t in created["tiers"]}
    assert tiers["Front"]["price_cents"] == 5000 and tiers["Back"]["currency"] == "EUR"
    sections = created["layout"]["sections"]
    assert [s["name"] for s in sections] == ["A", "B"]
    for section in sections:
        assert [r["name"] for r in section["rows"]] == list("ABCDE")
        for row in section["rows"]:
            assert [s["number"] for s in row["seats"]] == list(range(1, 11))
            tier = tiers["Front" if section["name"] == "A" else "Back"]
            assert {s["tier_id"] for s in row["seats"]} == {tier["id"]}
    assert sections[0]["rows"][2]["seats"][4]["id"] == "A-C-5"

    assert api.get(f"/api/events/{created['id']}").json() == created
    listed = {e["id"]: e for e in api.get("/api/events").json()}
    summary = listed[created["id"]]
    assert summary["seat_count"] == 100 and "layout" not in summary
    assert summary["tiers"] == created["tiers"]
    for key in (
        "name",
        "venue",
        "starts_at",
        "sale_opens_at",
        "sale_closes_at",
        "status",
        "waiting_room",
    ):
        assert summary[key] == created[key]
    seats = api.seats(created["id"])
    assert len(seats) == 100 and set(seats.values()) == {"available"}


def test_instants_are_rfc3339_utc(api: Api, event: dict[str, Any]) -> None:
    for key in ("starts_at", "sale_opens_at", "sale_closes_at"):
        instant(event[key])
    _, token = api.user()
    hold = api.hold(event["id"], token, ["B-A-1"]).json()
    for key in ("created_at", "expires_at"):
        instant(hold[key])


def test_bad_event_specs_create_nothing(api: Api) -> None:
    admin = api.admin()
    before = len(api.get("/api/events").json())
    now = datetime.now(UTC)
    backwards = event_spec(
        sale_opens_at=iso(now + timedelta(days=2)), sale_closes_at=iso(now + timedelta(days=1))
    )
    problem = assert_problem(
        api.post("/api/admin/events", backwards, token=admin), 422, "validation"
    )
    assert problem["errors"] and all("msg" in e and "loc" in e for e in problem["errors"])
    # the field to change, not the whole body
    assert [e["loc"] for e in problem["errors"]] == [["sale_closes_at"]]
    assert "sale_opens_at" in problem["errors"][0]["msg"]
    upside_down = event_spec(admission_rate_min=50, admission_rate_max=5)
    problem = assert_problem(api.post("/api/admin/events", upside_down, token=admin), 422)
    assert [e["loc"] for e in problem["errors"]] == [["admission_rate_max"]]
    typo = assert_problem(api.post("/api/admin/events", event_spec(venu="x"), token=admin), 422)
    assert ["venu"] in [e["loc"] for e in typo["errors"]]
    # a line break in a name would reach every e-mail's Subject: refused, not stored
    injected = event_spec(name="Gala\r\nBcc: eve@example.com")
    problem = assert_problem(api.post("/api/admin/events", injected, token=admin), 422)
    assert [e["loc"] for e in problem["errors"]] == [["name"]]
    tier_break = event_spec()
    tier_break["layout"]["tiers"][0]["name"] = "Front\nrow"
    problem = assert_problem(api.post("/api/admin/events", tier_break, token=admin), 422)
    assert [e["loc"] for e in problem["errors"]] == [["layout", "tiers", 0, "name"]]
    two_currencies = event_spec()
    two_currencies["layout"]["tiers"][1]["currency"] = "USD"
    assert_problem(api.post("/api/admin/events", two_currencies, token=admin), 422, "invalid")
    for code in ("XX1", "eur", "EURO"):  # ISO 4217: three capital letters
        not_money = event_spec()
        for tier in not_money["layout"]["tiers"]:
            tier["currency"] = code
        assert_problem(api.post("/api/admin/events", not_money, token=admin), 422, "validation")
    unknown_tier = event_spec()
    unknown_tier["layout"]["sections"][0]["tier"] = "Balcony"
    assert_problem(api.post("/api/admin/events", unknown_tier, token=admin), 422, "invalid")
    missing = event_spec()
    del missing["layout"]
    assert_problem(api.post("/api/admin/events", missing, token=admin), 422, "validation")
    broken = api.post("/api/admin/events", data=b'{"name": "x",', token=admin)
    assert_problem(broken, 400, "bad_request")
    assert len(api.get("/api/events").json()) == before


def test_unknown_events(api: Api) -> None:
    assert_problem(api.get("/api/events/987654"), 404, "not_found")
    assert_problem(api.get("/api/events/987654/seats"), 404, "not_found")
    assert_problem(api.get("/api/events/not-a-number"), 404)
    _, token = api.user()
    assert_problem(api.hold(987654, token, ["A-A-1"]), 404, "not_found")


def test_admin_patches_an_event(api: Api, event: dict[str, Any]) -> None:
    admin = api.admin()
    path = f"/api/admin/events/{event['id']}"
    _, token = api.user()

    reply = api.call("PATCH", path, {"status": "paused", "max_seats_per_user": 2}, token=admin)
    assert reply.status == 200, reply
    patched = reply.json()
    assert patched["status"] == "paused" and patched["on_sale"] is False
    assert patched["max_seats_per_user"] == 2 and patched["layout"] == event["layout"]
    assert api.get(f"/api/events/{event['id']}").json()["status"] == "paused"
    assert_problem(api.hold(event["id"], token, ["A-A-1"]), 409, "sale_closed")
    assert api.seats(event["id"])["A-A-1"] == "available"

    reply = api.call("PATCH", path, {"status": "on_sale"}, token=admin)
    assert reply.status == 200 and reply.json()["status"] == "on_sale"
    same = api.call("PATCH", path, {"status": "on_sale"}, token=admin)  # no change: still 200
    assert same.status == 200, same
    assert api.call("PATCH", path, {}, token=admin).status == 200
    over = api.hold(event["id"], token, ["A-A-1", "A-A-2", "A-A-3"])
    assert_problem(over, 422, "limit")
    assert api.hold(event["id"], token, ["A-A-1", "A-A-2"]).status == 201

    assert_problem(
        api.call("PATCH", "/api/admin/events/987654", {"status": "closed"}, token=admin),
        404,
        "not_found",
    )
    assert_problem(
        api.call("PATCH", path, {"max_seats_per_user": 0}, token=admin), 422, "validation"
    )
    assert_problem(api.call("PATCH", path, {"colour": "red"}, token=admin), 422, "validation")
    assert_problem(api.call("PATCH", path, {"status": "sold-out"}, token=admin), 422)
    assert api.get(f"/api/events/{event['id']}").json()["max_seats_per_user"] == 2

    # the venue's time zone: an IANA name, nothing else
    reply = api.call("PATCH", path, {"timezone": "America/New_York"}, token=admin)
    assert reply.status == 200 and reply.json()["timezone"] == "America/New_York", reply
    assert api.get(f"/api/events/{event['id']}").json()["timezone"] == "America/New_York"
    for zone in ("Mars/Olympus_Mons", "../../etc/passwd", "", "EST5EDT " * 20, 5):
        refused = api.call("PATCH", path, {"timezone": zone}, token=admin)
        assert_problem(refused, 422, "validation")
        assert refused.json()["errors"][0]["loc"][-1] == "timezone", refused
    assert api.get(f"/api/events/{event['id']}").json()["timezone"] == "America/New_York"


def test_a_draft_event_is_not_there_for_buyers(api: Api) -> None:
    draft = api.create_event(status="draft", waiting_room=True)
    assert draft["on_sale"] is False
    _, token = api.user()
    # Drafts are for admins only: the public sees no such event (issue 11), on every path a
    # buyer takes, so that a "not on sale" never gives an unannounced event away.
    eid = draft["id"]
    assert_problem(api.get(f"/api/events/{eid}/seats"), 404, "not_found")
    assert_problem(api.hold(eid, token, ["A-A-1"]), 404, "not_found")
    block = api.post(f"/api/events/{eid}/holds", {"best_available": {"count": 2}}, token=token)
    assert_problem(block, 404, "not_found")
    for method, path in (("POST", "queue"), ("POST", "queue/challenge"), ("GET", "queue/me")):
        assert_problem(api.call(method, f"/api/events/{eid}/{path}", token=token), 404, "not_found")
    on_sale = api.call(
        "PATCH", f"/api/admin/events/{eid}", {"status": "on_sale"}, token=api.admin()
    )
    assert on_sale.status == 200, on_sale
    assert api.call("GET", f"/api/events/{eid}/queue/me", token=token).status == 200


# -------------------------------------------------------------------------------------------
# holds
# -------------------------------------------------------------------------------------------


def test_hold_read_and_release(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    _, token = api.user()
    reply = api.hold(eid, token, ["A-B-2", "B-A-1"])
    assert reply.status == 201, reply
    hold = reply.json()
    assert reply.headers["Location"] == f"/api/holds/{hold['hold_id']}"
    assert hold["event_id"] == eid and sorted(hold["seats"]) == ["A-B-2", "B-A-1"]
    assert hold["amount_cents"] == 7500 and hold["currency"] == "EUR"
    assert hold["status"] == "active"
    expires = instant(hold["expires_at"])
    assert timedelta(seconds=250) < expires - datetime.now(UTC) <= timedelta(seconds=301)
    seats = api.seats(eid)
    assert seats["A-B-2"] == "held" and seats["B-A-1"] == "held" and seats["A-B-3"] == "available"

    got = api.get(f"/api/holds/{hold['hold_id']}", token=token)
    assert got.status == 200 and got.json() == hold

    released = api.call("DELETE", f"/api/holds/{hold['hold_id']}", token=token)
    assert released.status == 204 and released.body == b""
    assert api.seats(eid)["A-B-2"] == "available"
    assert api.get(f"/api/holds/{hold['hold_id']}", token=token).json()["status"] == "released"
    again = api.call("DELETE", f"/api/holds/{hold['hold_id']}", token=token)
    assert_problem(again, 409, "conflict")
    assert_problem(api.get("/api/holds/h_doesnotexist", token=token), 404, "not_found")
    assert_problem(api.call("DELETE", "/api/holds/h_doesnotexist", token=token), 404)


def test_holds_are_all_or_nothing(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    _, first = api.user("first")
    _, second = api.user("second")
    assert api.hold(eid, first, ["A-A-1", "A-A-3"]).status == 201
    before = api.seats(eid)
    problem = assert_problem(api.hold(eid, second, ["A-A-1", "A-A-2", "A-A-3"]), 409, "conflict")
    assert problem["conflicts"] == ["A-A-1", "A-A-3"]
    assert api.seats(eid) == before and before["A-A-2"] == "available"
    assert api.hold(eid, second, ["A-A-2"]).status == 201


def test_refused_holds_change_nothing(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    _, token = api.user()
    before = api.seats(eid)
    path = f"/api/events/{eid}/holds"
    twice = assert_problem(api.hold(eid, token, ["A-A-1", "A-A-1"]), 422, "invalid")
    assert "twice" in twice["detail"]
    unknown = assert_problem(api.hold(eid, token, ["A-A-1", "Z-Z-99"]), 422, "invalid")
    assert unknown["unknown"] == ["Z-Z-99"]
    over = assert_problem(api.hold(eid, token, [f"B-C-{n}" for n in range(1, 6)]), 422, "limit")
    assert over["limit"] == 4
    assert_problem(api.hold(eid, token, []), 422, "validation")
    wrong_type = assert_problem(api.post(path, {"seats": "A-A-1"}, token=token), 422)
    assert wrong_type["errors"][0]["loc"] == ["seats"]
    assert_problem(api.post(path, {"seats": [1, 2]}, token=token), 422, "validation")
    assert_problem(api.post(path, ["A-A-1"], token=token), 422, "validation")
    assert_problem(api.post(path, data=b'{"seats": ["A-A-1"]', token=token), 400, "bad_request")
    assert_problem(api.post(path, data=b"", token=token), 400, "bad_request")
    assert_problem(api.post(path, data=b"\xff\xfe{", token=token), 400, "bad_request")
    assert api.seats(eid) == before


def test_the_per_user_limit_counts_existing_holds(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    _, token = api.user()
    assert api.hold(eid, token, ["B-E-1", "B-E-2", "B-E-3"]).status == 201
    before = api.seats(eid)
    problem = assert_problem(api.hold(eid, token, ["B-E-4", "B-E-5"]), 422, "limit")
    assert problem["have"] == 3 and problem["limit"] == 4
    assert api.seats(eid) == before
    assert api.hold(eid, token, ["B-E-4"]).status == 201


def test_another_users_hold_is_not_found(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    _, owner = api.user("owner")
    _, other = api.user("other")
    hold = api.hold(eid, owner, ["A-D-1"]).json()
    path = f"/api/holds/{hold['hold_id']}"
    assert_problem(api.get(path, token=other), 404, "not_found")
    assert_problem(api.call("DELETE", path, token=other), 404, "not_found")
    assert_problem(api.checkout(hold["hold_id"], other), 409, "conflict")
    assert api.seats(eid)["A-D-1"] == "held"
    assert api.get(path, token=owner).json()["status"] == "active"


def test_waiting_room_requires_a_valid_admission(api: Api) -> None:
    eid = api.create_event(waiting_room=True)["id"]
    other_eid = api.create_event(waiting_room=True)["id"]
    user, token = api.user()
    before = api.seats(eid)

    def hold(admission: str | None) -> Reply:
        headers = {"X-Admission-Token": admission} if admission is not None else None
        return api.hold(eid, token, ["A-A-1"], headers=headers)

    assert_problem(hold(None), 403, "admission_required")
    expired = admission_token(eid, user, -30)
    assert "expired" in assert_problem(hold(expired), 403, "admission_required")["detail"]
    assert_problem(hold(admission_token(eid, unique("someone"))), 403, "admission_required")
    assert_problem(hold(admission_token(other_eid, user)), 403, "admission_required")
    assert_problem(hold(admission_token(eid, user, secret="other")), 403, "admission_required")
    assert_problem(hold("garbage"), 403, "admission_required")
    assert api.seats(eid) == before
    assert hold(admission_token(eid, user)).status == 201


# -------------------------------------------------------------------------------------------
# checkout and orders
# -------------------------------------------------------------------------------------------


def test_checkout_pays_issues_tickets_and_replays(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    _, token = api.user()
    hold = api.hold(eid, token, ["A-E-9", "A-E-10"]).json()
    key = unique("purchase")
    reply = api.checkout(hold["hold_id"], token, key=key)
    assert reply.status == 201, reply
    order = reply.json()
    assert order["status"] == "paid" and order["event_id"] == eid
    assert order["amount_cents"] == 10000 and order["currency"] == "EUR"
    assert sorted(t["seat_id"] for t in order["tickets"]) == ["A-E-10", "A-E-9"]
    assert all(t["status"] == "valid" and t["code"] for t in order["tickets"])
    assert reply.headers["Location"] == f"/api/orders/{order['order_id']}"
    seats = api.seats(eid)
    assert seats["A-E-9"] == "sold" and seats["A-E-10"] == "sold"

    replay = api.checkout(hold["hold_id"], token, key=key)
    assert replay.status == 201 and replay.json() == order
    assert replay.headers["Idempotent-Replayed"] == "true"
    changed = api.checkout(hold["hold_id"], token, card="tok_declined", key=key)
    assert_problem(changed, 422, "idempotency_mismatch")
    assert_problem(api.checkout(hold["hold_id"], token), 409, "conflict")  # already bought

    mine = api.get(f"/api/orders/{order['order_id']}", token=token)
    assert mine.status == 200 and mine.json() == order
    _, other = api.user("other")
    assert_problem(api.get(f"/api/orders/{order['order_id']}", token=other), 404, "not_found")
    by_admin = api.get(f"/api/orders/{order['order_id']}", token=api.admin())
    assert by_admin.status == 200 and by_admin.json()["order_id"] == order["order_id"]
    assert_problem(api.get("/api/orders/ord_nothing", token=token), 404, "not_found")
    assert api.get(f"/api/holds/{hold['hold_id']}", token=token).json()["status"] == "purchased"


def test_checkout_requires_an_idempotency_key(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    _, token = api.user()
    hold = api.hold(eid, token, ["B-B-5"]).json()
    path = f"/api/holds/{hold['hold_id']}/checkout"
    payment = {"payment": {"method": "card", "token": "tok_visa"}}
    problem = assert_problem(api.post(path, payment, token=token), 400, "bad_request")
    assert "Idempotency-Key" in problem["detail"]
    too_long = api.post(path, payment, token=token, headers={"Idempotency-Key": "k" * 201})
    assert_problem(too_long, 400, "bad_request")
    bad = {"payment": {"method": "cash", "token": "tok_visa"}}
    assert_problem(
        api.post(path, bad, token=token, headers={"Idempotency-Key": unique()}), 422, "validation"
    )
    broken = api.post(path, data=b"{", token=token, headers={"Idempotency-Key": unique()})
    assert_problem(broken, 400, "bad_request")
    assert api.seats(eid)["B-B-5"] == "held"
    assert api.get(f"/api/holds/{hold['hold_id']}", token=token).json()["status"] == "active"


@pytest.mark.parametrize(
    ("card", "status", "kind"),
    [("tok_declined", 402, "payment_declined"), ("tok_error", 502, "payment_failed")],
)
def test_failed_payments_leave_no_order(
    api: Api, event: dict[str, Any], card: str, status: int, kind: str
) -> None:
    eid = event["id"]
    _, token = api.user()
    hold = api.hold(eid, token, ["B-D-7"]).json()
    key = unique("pay")
    assert_problem(api.checkout(hold["hold_id"], token, card=card, key=key), status, kind)
    replay = api.checkout(hold["hold_id"], token, card=card, key=key)
    assert_problem(replay, status, kind)  # the stored failure, same status
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert api.seats(eid)["B-D-7"] == "held"  # the hold survives: pay again with another card
    assert api.get(f"/api/holds/{hold['hold_id']}", token=token).json()["status"] == "active"
    paid = api.checkout(hold["hold_id"], token, card="tok_visa")
    assert paid.status == 201, paid
    assert api.seats(eid)["B-D-7"] == "sold"


def test_checkout_of_a_released_hold_conflicts(api: Api, event: dict[str, Any]) -> None:
    _, token = api.user()
    hold = api.hold(event["id"], token, ["A-C-3"]).json()
    assert api.call("DELETE", f"/api/holds/{hold['hold_id']}", token=token).status == 204
    problem = assert_problem(api.checkout(hold["hold_id"], token), 409, "conflict")
    assert "released" in problem["detail"]
    assert api.seats(event["id"])["A-C-3"] == "available"
    assert_problem(api.checkout("h_doesnotexist", token), 409, "conflict")


@pytest.fixture
def timeout_node(
    make_server: Callable[..., ServerProcess], migrated_database: str
) -> ServerProcess:
    """A node whose gateway times out after 1 s, on each backend."""
    return make_server(payment_timeout_s=1, database_url=migrated_database)


def test_a_gateway_timeout_is_a_502_that_says_the_charge_is_refunded(
    timeout_node: ServerProcess,
) -> None:
    api = Api(timeout_node)
    eid = api.create_event()["id"]
    _, token = api.user()
    hold = api.hold(eid, token, ["A-A-1"]).json()
    started = time.monotonic()
    problem = assert_problem(
        api.checkout(hold["hold_id"], token, card="tok_timeout"), 502, "payment_failed"
    )
    assert time.monotonic() - started < 5
    # the gateway may have charged before it went quiet: the buyer is told it is refunded
    assert "anything it charged is refunded" in problem["detail"]
    assert api.seats(eid)["A-A-1"] == "held"
    assert "Traceback" not in timeout_node.log()


def test_cancel_refunds_and_frees_the_seats(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    _, token = api.user()
    hold = api.hold(eid, token, ["B-A-9", "B-A-10"]).json()
    order = api.checkout(hold["hold_id"], token).json()
    code = order["tickets"][0]["code"]
    _, other = api.user("other")
    path = f"/api/orders/{order['order_id']}/cancel"
    assert_problem(api.post(path, token=other), 404, "not_found")
    assert api.seats(eid)["B-A-9"] == "sold"

    reply = api.post(path, token=token)
    assert reply.status == 200, reply
    cancelled = reply.json()
    assert cancelled["status"] == "cancelled"
    assert {t["status"] for t in cancelled["tickets"]} == {"void"}
    seats = api.seats(eid)
    assert seats["B-A-9"] == "available" and seats["B-A-10"] == "available"
    assert api.get(f"/api/tickets/{code}").json()["valid"] is False
    assert_problem(api.post(path, token=token), 409, "conflict")
    assert api.get(f"/api/orders/{order['order_id']}", token=token).json()["status"] == "cancelled"
    _, again = api.user("again")
    assert api.hold(eid, again, ["B-A-9"]).status == 201  # bookable again


def test_admin_may_cancel_any_order(api: Api, event: dict[str, Any]) -> None:
    _, token = api.user()
    hold = api.hold(event["id"], token, ["A-B-7"]).json()
    order = api.checkout(hold["hold_id"], token).json()
    reply = api.post(f"/api/orders/{order['order_id']}/cancel", token=api.admin())
    assert reply.status == 200 and reply.json()["status"] == "cancelled"


def test_tickets_verify_and_render_as_qr(api: Api, event: dict[str, Any]) -> None:
    _, token = api.user()
    hold = api.hold(event["id"], token, ["A-A-5"]).json()
    order = api.checkout(hold["hold_id"], token).json()
    code = order["tickets"][0]["code"]

    check = api.get(f"/api/tickets/{code}")
    assert check.status == 200, check
    assert check.json() == {
        "code": code,
        "valid": True,
        "status": "valid",
        "event_id": event["id"],
        "seat_id": "A-A-5",
        "order_id": order["order_id"],
    }
    qr = api.get(f"/api/tickets/{code}/qr.svg")
    assert qr.status == 200 and qr.content_type == "image/svg+xml"
    assert qr.body.lstrip().startswith(b"<svg") and b"</svg>" in qr.body
    # A standalone SVG needs its namespace, or browsers will not show it as an <img>.
    assert b'xmlns="http://www.w3.org/2000/svg"' in qr.body

    signed, _, signature = code.rpartition(".")
    forged = f"{signed}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    assert_problem(api.get(f"/api/tickets/{forged}"), 404, "not_found")
    assert_problem(api.get(f"/api/tickets/{forged}/qr.svg"), 404, "not_found")
    assert_problem(api.get("/api/tickets/nonsense"), 404, "not_found")
    # A key id the node does not know makes it reload its keys (at most once a second): that
    # must not wait for a database connection the request holds (embedded SQLite has one, so
    # this answered 503 after the pool timeout, the whole node's database frozen meanwhile).
    time.sleep(RELOAD_EVERY_S)
    assert_problem(api.get("/api/tickets/T2.deadbeef.a.b"), 404, "not_found")
    assert api.get("/readyz").status == 200


# -------------------------------------------------------------------------------------------
# admin: broadcast and stats
# -------------------------------------------------------------------------------------------


def test_broadcasts_reach_the_announcement_topics(api: Api, event: dict[str, Any]) -> None:
    opened = Clients(api.server)
    try:
        listener = opened("tcp")  # anonymous may read announcements
        listener.subscribe("/topic/announcements")
        listener.subscribe(f"/topic/events/{event['id']}/announcements")
        admin = api.admin()

        reply = api.post(
            "/api/admin/broadcast", {"text": "Doors open at 7", "level": "warning"}, token=admin
        )
        assert reply.status == 202, reply
        sent = reply.json()
        assert sent["destination"] == "/topic/announcements" and sent["level"] == "warning"
        message = listener.listener.message()
        assert message.headers["destination"] == "/topic/announcements"
        assert message.headers["content-type"].startswith("application/json")
        assert json.loads(message.body) == {k: sent[k] for k in ("id", "level", "text", "sent_at")}

        reply = api.post(
            "/api/admin/broadcast", {"text": "Row C moved", "event_id": event["id"]}, token=admin
        )
        assert reply.status == 202, reply
        message = listener.listener.message()
        assert message.headers["destination"] == f"/topic/events/{event['id']}/announcements"
        body = json.loads(message.body)
        assert body["text"] == "Row C moved" and body["level"] == "info"
        assert body["sent_at"].endswith("Z")

        assert_problem(
            api.post("/api/admin/broadcast", {"text": "x", "level": "shout"}, token=admin),
            422,
            "validation",
        )
        assert_problem(api.post("/api/admin/broadcast", {"text": ""}, token=admin), 422)
        # Blank is empty: a banner of spaces would go to every buyer.
        assert_problem(api.post("/api/admin/broadcast", {"text": " \n "}, token=admin), 422)
        assert_problem(
            api.post("/api/admin/broadcast", {"text": "x", "event_id": 987654}, token=admin),
            404,
            "not_found",
        )
        draft = api.create_event(status="draft")
        refused = api.post(
            "/api/admin/broadcast", {"text": "x", "event_id": draft["id"]}, token=admin
        )
        assert_problem(refused, 409, "conflict")
        assert "draft" in refused.json()["detail"]
        assert listener.listener.quiet(seconds=0.3) == []
        # The audit log keeps who said what, and where; the refused ones are not in it.
        said = api.get("/api/admin/audit?target=announcements", token=admin).json()
        assert [(e["action"], e["details"]) for e in said][:1] == [
            ("broadcast", {"id": sent["id"], "level": "warning", "text": "Doors open at 7"})
        ]
        assert said[0]["actor"] == "admin"
        said = api.get(f"/api/admin/audit?target=event:{event['id']}", token=admin).json()
        assert [e["details"]["text"] for e in said if e["action"] == "broadcast"] == ["Row C moved"]
    finally:
        opened.close_all()


def test_stats_show_nodes_holds_and_sales(api: Api, event: dict[str, Any]) -> None:
    _, token = api.user()
    api.hold(event["id"], token, ["B-C-1"])
    bought = api.hold(event["id"], token, ["B-C-2"]).json()
    assert api.checkout(bought["hold_id"], token).status == 201
    opened = Clients(api.server)
    try:
        watcher = opened("tcp", user=unique("watcher"))
        watcher.subscribe(f"/topic/events/{event['id']}/seats")
        # A seat-map subscription joins the delta stream once its snapshot is handed over,
        # which a busy machine may do a moment after the RECEIPT: read until it shows.
        deadline = time.monotonic() + 5
        while True:
            reply = api.get("/api/admin/stats", token=api.admin())
            assert reply.status == 200, reply
            stats = reply.json()
            if stats["subscriptions"] >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        opened.close_all()
    assert len(stats["nodes"]) == 1
    node = stats["nodes"][0]
    assert node["node_id"] and node["connections"] >= 1 and node["subscriptions"] >= 1
    assert stats["connections"] == node["connections"]
    assert stats["subscriptions"] == node["subscriptions"]
    assert stats["holds_active"] >= 1 and stats["sales_per_min"] >= 1
    mine = next(e for e in stats["events"] if e["event_id"] == event["id"])
    assert mine["seats"] == {"available": 98, "held": 1, "sold": 1, "blocked": 0}
    assert mine["holds_active"] == 1 and mine["name"] == event["name"]
    assert mine["queue"] is None  # no waiting room


def test_stats_show_waiting_room_queues(api: Api) -> None:
    eid = api.create_event(waiting_room=True)["id"]
    stats = api.get("/api/admin/stats", token=api.admin()).json()
    queue = next(e for e in stats["events"] if e["event_id"] == eid)["queue"]
    assert set(queue) == {"waiting", "serving", "active", "admitted_per_min", "admission_rate",
                          "rate_reason", "abandoned", "time_to_admission"}  # fmt: skip
    assert queue["waiting"] == 0


# -------------------------------------------------------------------------------------------
# the HTTP surface
# -------------------------------------------------------------------------------------------


def test_http_faults_are_problems(api: Api, event: dict[str, Any]) -> None:
    assert_problem(api.get("/api/nothing-here"), 404, "route_not_found")
    assert_problem(api.get("/api"), 404)
    wrong = api.call("PUT", f"/api/events/{event['id']}")
    assert_problem(wrong, 405, "method_not_allowed")
    assert "GET" in wrong.headers["Allow"]
    assert_problem(api.call("DELETE", "/api/events"), 405, "method_not_allowed")
    _, token = api.user()
    huge = b'{"seats": ["' + b"x" * (2 << 20) + b'"]}'
    assert_problem(
        api.post(f"/api/events/{event['id']}/holds", data=huge, token=token), 413, "too_large"
    )
    assert api.get("/healthz").status == 200  # outside /api: untouched
    assert set(api.seats(event["id"]).values()) == {"available"}


def test_a_chunked_body_over_the_limit_is_refused(api: Api, event: dict[str, Any]) -> None:
    _, token = api.user()
    conn = http.client.HTTPConnection(api.server.host, api.server.http_port, timeout=15)
    try:

        def chunks() -> Iterator[bytes]:
            yield b'{"seats": ["'
            for _ in range(24):
                yield b"x" * 65536
            yield b'"]}'

        conn.request(
            "POST",
            f"/api/events/{event['id']}/holds",
            body=chunks(),
            headers={"Authorization": f"Bearer {token}"},
            encode_chunked=True,
        )
        resp = conn.getresponse()
        reply = Reply(resp.status, resp.headers, resp.read())
    finally:
        conn.close()
    assert_problem(reply, 413, "too_large")


EXPECTED_OPERATIONS = {
    ("post", "/api/auth/guest"),
    ("get", "/api/events"),
    ("get", "/api/events/{event_id}"),
    ("get", "/api/events/{event_id}/seats"),
    ("post", "/api/events/{event_id}/holds"),
    ("get", "/api/holds/{hold_id}"),
    ("delete", "/api/holds/{hold_id}"),
    ("post", "/api/holds/{hold_id}/checkout"),
    ("get", "/api/orders/{order_id}"),
    ("post", "/api/orders/{order_id}/cancel"),
    ("get", "/api/tickets/{code}"),
    ("get", "/api/tickets/{code}/qr.svg"),
    ("post", "/api/admin/events"),
    ("patch", "/api/admin/events/{event_id}"),
    ("post", "/api/admin/broadcast"),
    ("get", "/api/admin/stats"),
    ("post", "/api/admin/webhooks"),
    ("get", "/api/admin/webhooks"),
    ("delete", "/api/admin/webhooks/{webhook_id}"),
    ("get", "/api/admin/webhooks/{webhook_id}/deliveries"),
    ("get", "/api/openapi.json"),
    ("get", "/api/docs"),
}


def test_openapi_document_lists_every_operation(api: Api, event: dict[str, Any]) -> None:
    reply = api.get("/api/openapi.json")
    assert reply.status == 200 and reply.content_type == "application/json"
    doc = reply.json()
    assert doc["openapi"].startswith("3.1")
    listed = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    # waiting-room operations may be added to the document by a later change
    assert listed >= EXPECTED_OPERATIONS, EXPECTED_OPERATIONS - listed
    schemas = doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["operationId"] and op["summary"] and op["responses"], (method, path)
            if "{" in path:  # an id the route refuses is a 404 (found by schemathesis)
                assert "404" in op["responses"], (method, path)
            for response in op["responses"].values():
                for content in response.get("content", {}).values():
                    ref = content["schema"].get("$ref") or content["schema"].get("items", {}).get(
                        "$ref"
                    )
                    if ref:
                        assert ref.rsplit("/", 1)[-1] in schemas, ref
    hold_op = doc["paths"]["/api/events/{event_id}/holds"]["post"]
    assert {"201", "403", "409", "422"} <= set(hold_op["responses"])
    assert hold_op["security"] == [{"bearer": []}]
    assert hold_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    checkout_op = doc["paths"]["/api/holds/{hold_id}/checkout"]["post"]
    assert {"name": "Idempotency-Key", "required": True}.items() <= next(
        p for p in checkout_op["parameters"] if p["name"] == "Idempotency-Key"
    ).items()

    # every documented operation is served (none is a 404 or 405 for want of a route)
    concrete = {
        "{event_id}": str(event["id"]),
        "{hold_id}": "h_x",
        "{order_id}": "o_x",
        "{code}": "c.x",
        "{webhook_id}": "1",
    }
    for method, template in listed:
        path = template
        for name, value in concrete.items():
            path = path.replace(name, value)
        reply = api.call(method.upper(), path)
        if reply.status >= 400:
            kind = reply.json()["kind"]
            assert kind not in ("route_not_found", "method_not_allowed"), (method, path, kind)


def test_docs_page_is_self_contained(api: Api) -> None:
    reply = api.get("/api/docs")
    assert reply.status == 200 and reply.content_type == "text/html"
    page = reply.body.decode()
    for _, path in EXPECTED_OPERATIONS:
        assert path in page, path
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "id=problem-conflict" in page
