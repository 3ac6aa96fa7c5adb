"""Best available at both edges (SPEC §5): ``POST /api/events/{id}/holds`` and SEND
``/app/events/{id}/holds`` with ``{"best_available": …}``, on SQLite and MariaDB; wheelchair
spaces and companion seats in the layout an admin creates or changes, as ``GET
/api/events/{id}`` shows them to the web UI; and the OpenAPI document that says all this."""

from __future__ import annotations

import copy
from typing import Any

from tests.scripted_sale import Scrape
from tests.server import test_app_commands
from tests.server.stomp_clients import Clients
from tests.server.test_app_commands import Shopper
from tests.server.test_rest_api import Api, admission_token, assert_problem, event_spec

# The booking node's fixtures, as the /app command tests have them: `api` (no test may leave a
# traceback in the node's log), `clients` and a fresh `event`.
api = test_app_commands.api
clients = test_app_commands.clients
event = test_app_commands.event


def one_row(seats: int) -> dict[str, Any]:
    """A layout of one section ``S`` with one row of ``seats`` seats."""
    return {
        "tiers": [{"name": "Main", "price_cents": 1000}],
        "sections": [{"name": "S", "rows": 1, "seats_per_row": seats, "tier": "Main"}],
    }


def best(api: Api, event_id: int, token: str, **wanted: Any) -> Any:
    return api.post(f"/api/events/{event_id}/holds", {"best_available": wanted}, token=token)


def seats_of(layout: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        seat["id"]: seat
        for section in layout["sections"]
        for row in section["rows"]
        for seat in row["seats"]
    }


def test_the_server_picks_and_holds_the_best_block(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    _, token = api.user()
    reply = best(api, eid, token, count=2)
    assert reply.status == 201, reply
    held = reply.json()
    assert held["seats"] == ["A-A-5", "A-A-6"]  # the first section, front row, middle
    assert held["amount_cents"] == 10000 and held["status"] == "active"
    assert reply.headers["Location"] == f"/api/holds/{held['hold_id']}"
    seats = api.seats(eid)
    assert {s: seats[s] for s in held["seats"]} == dict.fromkeys(held["seats"], "held")
    # the tier by id (as the web UI sends it) and by name, and a section
    back = next(t for t in event["tiers"] if t["name"] == "Back")
    by_id = best(api, eid, api.user()[1], count=3, tier=back["id"])
    assert by_id.status == 201 and by_id.json()["seats"] == ["B-A-4", "B-A-5", "B-A-6"], by_id
    by_name = best(api, eid, api.user()[1], count=1, tier="Back", section="B")
    assert by_name.status == 201 and by_name.json()["seats"] == ["B-A-7"], by_name


def test_bad_best_available_requests_are_refused_and_change_nothing(
    api: Api, event: dict[str, Any]
) -> None:
    eid = event["id"]
    _, token = api.user()
    before = api.seats(eid)
    path = f"/api/events/{eid}/holds"
    body: dict[str, Any]
    for body in (
        {},  # neither
        {"seats": ["A-A-1"], "best_available": {"count": 1}},  # both
        {"best_available": {}},  # no count
        {"best_available": {"count": 0}},
        {"best_available": {"count": 2, "colour": "red"}},  # unknown member
        {"best_available": {"count": 2, "tier": 1.5}},
        {"best_available": {"count": 2, "accessible": "yes please"}},
    ):
        assert_problem(api.post(path, body, token=token), 422, "validation")
    for wanted, kind in (
        ({"count": 2, "tier": "Gold"}, "invalid"),
        ({"count": 2, "tier": 987654}, "invalid"),
        ({"count": 2, "section": "ROOF"}, "invalid"),
        ({"count": 5}, "limit"),  # 4 per user by default
    ):
        problem = assert_problem(best(api, eid, token, **wanted), 422, kind)
        assert "Traceback" not in problem["detail"]
    assert api.seats(eid) == before
    assert_problem(best(api, eid, None, count=1), 401, "unauthorized")  # type: ignore[arg-type]


def test_no_block_left_is_a_409_that_says_so(api: Api) -> None:
    """One row of four: after a pair and a single, no pair is left (a 409 ``no_block`` naming
    the count), though a single seat still is."""
    eid = api.create_event(layout=one_row(4))["id"]
    assert best(api, eid, api.user()[1], count=2).json()["seats"] == ["S-A-1", "S-A-2"]
    assert api.hold(eid, api.user()[1], ["S-A-4"]).status == 201
    before = api.seats(eid)
    counted = Scrape.of(api.server).value("concert_hub_holds_total", outcome="no_block")
    problem = assert_problem(best(api, eid, api.user()[1], count=2), 409, "no_block")
    assert problem["count"] == 2 and "2 adjacent seats" in problem["detail"]
    assert problem["type"] == "/api/docs#problem-no_block"
    assert api.seats(eid) == before
    metrics = Scrape.of(api.server)  # /metrics counts it as its own outcome
    assert metrics.value("concert_hub_holds_total", outcome="no_block") == counted + 1
    assert best(api, eid, api.user()[1], count=1).json()["seats"] == ["S-A-3"]


def test_sale_window_limit_and_waiting_room_apply(api: Api) -> None:
    paused = api.create_event(status="paused")["id"]
    assert_problem(best(api, paused, api.user()[1], count=1), 409, "sale_closed")
    queued = api.create_event(waiting_room=True)["id"]
    user, token = api.user()
    assert_problem(best(api, queued, token, count=1), 403, "admission_required")
    reply = api.post(f"/api/events/{queued}/holds", {"best_available": {"count": 2}}, token=token,
                     headers={"X-Admission-Token": admission_token(queued, user)})  # fmt: skip
    assert reply.status == 201, reply
    again = best(api, api.create_event()["id"], token, count=3)
    assert again.status == 201, again
    limited = assert_problem(best(api, again.json()["event_id"], token, count=2), 422, "limit")
    assert (limited["limit"], limited["have"]) == (4, 3)


def test_wheelchair_spaces_in_the_layout_and_for_those_who_ask(api: Api) -> None:
    admin = api.admin()
    layout = {
        "tiers": [{"name": "Main", "price_cents": 2000}],
        "sections": [{"name": "S", "rows": 2, "seats_per_row": 6, "tier": "Main"}],
        "accessible": ["S-B-1"],
        "companion": ["S-B-2"],
    }
    created = api.create_event(layout=layout)
    eid = created["id"]
    marked = seats_of(created["layout"])
    assert marked["S-B-1"] == {"id": "S-B-1", "number": 1, "tier_id": marked["S-B-1"]["tier_id"],
                               "accessible": True}  # fmt: skip
    assert marked["S-B-2"]["companion"] is True and "accessible" not in marked["S-B-2"]
    assert "accessible" not in marked["S-A-1"] and "companion" not in marked["S-A-1"]
    # an admin marks more seats on the live event; everyone's layout shows them
    path = f"/api/admin/events/{eid}/seats"
    changed = api.call("PATCH", path, {"accessible": ["S-B-6"], "companion": ["S-B-5"]},
                       token=admin)  # fmt: skip
    assert changed.status == 200, changed
    public = seats_of(api.get(f"/api/events/{eid}").json()["layout"])
    assert public["S-B-6"]["accessible"] is True and public["S-B-5"]["companion"] is True
    audit = api.get(f"/api/admin/audit?target=event:{eid}", token=admin).json()
    assert [e["details"] for e in audit if e["action"] == "event.seats"] == [
        {"accessible": ["S-B-6"], "companion": ["S-B-5"]}
    ]  # staff changes are audited, this one too
    for body, status, kind in (
        ({"accessible": ["S-Z-9"]}, 422, "invalid"),
        ({"accessible": ["S-A-1"], "standard": ["S-A-1"]}, 422, "invalid"),
        ({"accessible": ["S-A-1", "S-A-1"]}, 422, "invalid"),
        ({"standard": ["S-B-6", "S-B-6"]}, 422, "invalid"),
        ({"wheelchair": ["S-A-1"]}, 422, "validation"),
    ):
        assert_problem(api.call("PATCH", path, body, token=admin), status, kind)
    public = seats_of(api.get(f"/api/events/{eid}").json()["layout"])
    assert "accessible" not in public["S-A-1"] and public["S-B-6"]["accessible"] is True
    # a misspelt member anywhere in a layout is refused, not dropped
    misspellings: list[tuple[str, dict[str, Any]]] = [
        ("layout", {"acessible": ["S-A-1"]}), ("tiers", {"curency": "USD"}),
        ("sections", {"row_tier": {}}),
    ]  # fmt: skip
    for where, misspelt in misspellings:
        wrong: dict[str, Any] = copy.deepcopy(layout)
        part = wrong if where == "layout" else wrong[where][0]
        part.update(misspelt)
        refused = api.post("/api/admin/events", event_spec(layout=wrong), token=admin)
        assert_problem(refused, 422, "validation")
    assert_problem(api.call("PATCH", path, {"standard": []}, token=api.user()[1]), 403,
                   "not_admin")  # fmt: skip
    assert_problem(api.call("PATCH", "/api/admin/events/987654/seats", {}, token=admin), 404)

    wheelchair = best(api, eid, api.user()[1], count=2, accessible=True)
    assert wheelchair.status == 201 and wheelchair.json()["seats"] == ["S-B-1", "S-B-2"]
    ordinary = [best(api, eid, api.user()[1], count=2).json()["seats"] for _ in range(4)]
    assert ["S-B-3", "S-B-4"] in ordinary
    assert not {"S-B-5", "S-B-6"} & {s for pair in ordinary for s in pair}
    assert_problem(best(api, eid, api.user()[1], count=1), 409, "no_block")
    assert best(api, eid, api.user()[1], count=2, accessible=True).json()["seats"] == [
        "S-B-5", "S-B-6"
    ]  # fmt: skip


def test_best_available_over_stomp(api: Api, clients: Clients, event: dict[str, Any]) -> None:
    eid = event["id"]
    shopper = Shopper(clients)
    destination = f"/app/events/{eid}/holds"
    held = shopper.reply(shopper.send(destination, {"best_available": {"count": 2}}))
    assert held["type"] == "hold" and held["seats"] == ["A-A-5", "A-A-6"]
    token = api.server.token(shopper.user)
    rest = api.get(f"/api/holds/{held['hold_id']}", token=token).json()
    assert {k: v for k, v in held.items() if k != "type"} == rest
    refused = shopper.send(destination, {"best_available": {"count": 2, "section": "ROOF"}})
    shopper.error(refused, 422, "invalid")
    both = shopper.send(destination, {"seats": ["A-A-1"], "best_available": {"count": 1}})
    shopper.error(both, 422, "validation")
    small = f"/app/events/{api.create_event(layout=one_row(1))['id']}/holds"
    other = Shopper(clients)
    assert other.reply(other.send(small, {"best_available": {"count": 1}}))["seats"] == ["S-A-1"]
    gone = shopper.error(shopper.send(small, {"best_available": {"count": 1}}), 409, "no_block")
    assert gone["count"] == 1
    assert not shopper.client.listener.disconnected


def test_openapi_documents_best_available_and_seat_attributes(api: Api) -> None:
    doc = api.get("/api/openapi.json").json()
    schemas = doc["components"]["schemas"]
    hold = doc["paths"]["/api/events/{event_id}/holds"]["post"]
    name = hold["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    body = schemas[name]
    assert set(body["properties"]) == {"seats", "best_available"}
    assert body["oneOf"] == [{"required": ["seats"]}, {"required": ["best_available"]}]
    best_schema = schemas["BestAvailable"]
    assert best_schema["required"] == ["count"]
    assert set(best_schema["properties"]) == {"count", "tier", "section", "accessible"}
    assert (
        "no_block" in hold["description"] and "no_block" in hold["responses"]["409"]["description"]
    )
    seat = schemas["SeatOut"]["properties"]
    assert seat["accessible"]["type"] == "boolean" and seat["companion"]["type"] == "boolean"
    mark = doc["paths"]["/api/admin/events/{event_id}/seats"]["patch"]
    assert mark["x-role"] == "admin"
    docs = api.get("/api/docs").body.decode()
    assert "id=problem-no_block" in docs
