"""Issue 14 items 7, 8 and 10 through a real node, on SQLite and MariaDB: input that would
overflow a column or the clock, non-finite JSON numbers and non-boolean booleans are refused
with a 400/422 problem (never a 500), the OpenAPI document is valid OpenAPI 3.1 and states the
bounds, and schemathesis finds no server error in a bounded run against a live node."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from booking.catalog import MAX_INT
from tests.booking.conftest import event_body
from tests.conftest import ServerProcess
from tests.conftest import rest as call

BIG = 2**63


@pytest.fixture(scope="module")
def node(booking_server: ServerProcess) -> ServerProcess:
    return booking_server


def _admin(node: ServerProcess) -> str:
    return node.token("root", "admin")


def _create(node: ServerProcess, body: dict[str, Any]) -> tuple[int, Any]:
    return call(node, "POST", "/api/admin/events", body, token=_admin(node))


def _tiers(price: int, *names: str) -> dict[str, Any]:
    body = event_body()
    body["layout"]["tiers"] = [{"name": n, "price_cents": price, "currency": "EUR"} for n in names]
    return body


def _faults(reply: Any) -> list[str]:
    return [".".join(map(str, e["loc"])) for e in reply.get("errors", [])]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (_tiers(2**31, "Main"), "layout.tiers.0.price_cents"),
        (_tiers(MAX_INT, "Main"), "layout.tiers.0.price_cents"),
        (event_body(max_active_shoppers=BIG), "max_active_shoppers"),
        (event_body(admission_rate=1e308), "admission_rate"),
        (event_body(starts_at="9999-12-31T23:59:59-14:00"), "starts_at"),
        (event_body(sale_opens_at="0001-01-01T00:00:00+14:00"), "sale_opens_at"),
        (event_body(waiting_room=0), "waiting_room"),
        (event_body(starts_at="2030-05-01T19:30:00"), "starts_at"),  # no offset: whose time?
        (event_body(sale_opens_at=1830000000), "sale_opens_at"),  # a number, not a date-time
        (_tiers(4000, "Main", "Main"), "layout.tiers"),
    ],
)
def test_admin_input_out_of_range_is_a_422_naming_it(
    node: ServerProcess, body: dict[str, Any], where: str
) -> None:
    status, reply = _create(node, body)
    assert status == 422, reply
    assert reply["kind"] == "validation" and where in _faults(reply), reply


def test_the_highest_price_still_makes_holds_of_the_most_seats(node: ServerProcess) -> None:
    body = _tiers(10_000_000, "Main")
    body["max_seats_per_user"] = 100
    body["layout"]["sections"][0].update(rows=1, seats_per_row=100)
    status, event = _create(node, body)
    assert status == 201, event
    seats = [f"S-A-{n}" for n in range(1, 101)]
    status, hold = call(node, "POST", f"/api/events/{event['id']}/holds", {"seats": seats},
                        token=node.token("whale"))  # fmt: skip
    assert status == 201, hold
    assert hold["amount_cents"] == 100 * 10_000_000


def test_non_finite_numbers_are_refused_everywhere_json_is_read(node: ServerProcess) -> None:
    status, event = _create(node, event_body(waiting_room=True))
    assert status == 201, event
    path = f"/api/admin/events/{event['id']}"
    for number in (float("inf"), float("-inf"), float("nan")):  # Infinity, -Infinity, NaN
        status, reply = call(node, "PATCH", path, {"admission_rate": number}, token=_admin(node))
        assert status == 400 and reply["kind"] == "bad_request", reply
    raw = b'{"admission_rate": 1e400}'
    request = urllib.request.Request(node.http_url + path, data=raw, method="PATCH")
    request.add_header("Authorization", f"Bearer {_admin(node)}")
    request.add_header("Content-Type", "application/json")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=15)
    assert refused.value.code == 400
    for patch in ({"admission_rate": 1e308}, {"waiting_room": 0}, {"max_active_shoppers": BIG}):
        status, reply = call(node, "PATCH", path, patch, token=_admin(node))
        assert status == 422, (patch, reply)
    # the event is still served as standard JSON
    with urllib.request.urlopen(f"{node.http_url}/api/events/{event['id']}", timeout=15) as got:
        json.loads(got.read(), parse_constant=lambda c: pytest.fail(f"{c} in the response"))


@pytest.mark.parametrize(
    ("path", "body", "role"),
    [
        ("/api/admin/broadcast", {"text": "hi"}, "admin"),
        ("/api/admin/scanners", {"device": "d", "gate": "g"}, "admin"),
        ("/api/checkin", {"code": "garbage"}, "scanner"),
    ],
)
def test_an_event_id_out_of_range_is_a_422(
    node: ServerProcess, path: str, body: dict[str, Any], role: str
) -> None:
    status, reply = call(node, "POST", path, {**body, "event_id": BIG},
                         token=node.token("root", role))  # fmt: skip
    assert status == 422 and "event_id" in _faults(reply), reply


def test_every_event_id_a_request_names_is_bounded(node: ServerProcess) -> None:
    """The document says how large an event id may be wherever a request body or a query
    names one."""
    document = _document(node)
    schemas = document["components"]["schemas"]
    fields: dict[str, Any] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                name = content["schema"]["$ref"].rpartition("/")[2]
                field = schemas[name].get("properties", {}).get("event_id")
                if field is not None:
                    fields[name] = field
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "event_id" and parameter["in"] == "query":
                    fields[f"{method} {path}"] = parameter["schema"]
    assert len(fields) >= 4, fields
    unbounded = [
        where
        for where, field in fields.items()
        for integer in field.get("anyOf", [field])
        if integer.get("type") == "integer" and integer.get("maximum", MAX_INT + 1) > MAX_INT
    ]
    assert unbounded == []


def _document(node: ServerProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{node.http_url}/api/openapi.json", timeout=15) as got:
        return dict(json.loads(got.read()))


def test_the_openapi_document_is_valid_openapi_3_1_and_states_the_bounds(
    node: ServerProcess,
) -> None:
    document = _document(node)
    errors = [e.message for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
    schemas = document["components"]["schemas"]
    tier = schemas["TierSpec"]["properties"]["price_cents"]
    assert tier["maximum"] * 100 <= MAX_INT
    patch = schemas["EventUpdate"]["properties"]
    rate = next(s for s in patch["admission_rate"]["anyOf"] if s.get("type") == "number")
    assert rate["exclusiveMinimum"] == 0 and "maximum" in rate
    assert {"type": "boolean"} in patch["waiting_room"]["anyOf"]
    checkout = document["paths"]["/api/holds/{hold_id}/checkout"]["post"]
    (key,) = [p for p in checkout["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["required"] and key["schema"]["maxLength"] == 200 and key["schema"]["pattern"]


def test_schemathesis_finds_no_server_error(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A bounded property-based run of every operation (as an admin, so the admin API is
    exercised too) against a live node: no 500 and no response outside the document."""
    node = make_server(rest_rate_per_ip=100000, rest_rate_per_user=100000,
                       guest_rate_per_ip=100000)  # fmt: skip
    for attempt in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{node.http_url}/api/openapi.json",
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance",
             "--max-examples", "12", "--phases", "examples,fuzzing", "--seed", "14",
             "--workers", "2", "--no-shrink", "--suppress-health-check", "all",
             "--header", f"Authorization: Bearer {_admin(node)}",
             "--report", "junit", "--report-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
        )  # fmt: skip
        # CPython 3.11.7's AST constructor can fail with this (gh-106905, fixed in later
        # releases) inside hypothesis as it describes a strategy: the checker crashed, it
        # found nothing about the node; it is run once more.
        if attempt or "AST constructor recursion depth mismatch" not in done.stdout + done.stderr:
            break
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_a_patch_cannot_cross_the_adaptive_rate_bounds(node: ServerProcess) -> None:
    """POST refuses a lowest rate above the highest; a PATCH of one bound is checked against
    the other's stored value, and a refused PATCH changes nothing."""
    status, event = _create(node, event_body(admission_rate_min=2, admission_rate_max=40))
    assert status == 201, event
    path = f"/api/admin/events/{event['id']}"
    for patch in ({"admission_rate_min": 50}, {"admission_rate_max": 1},
                  {"admission_rate_min": 50, "admission_rate_max": 5}):  # fmt: skip
        status, reply = call(node, "PATCH", path, patch, token=_admin(node))
        assert status == 422 and reply["kind"] == "invalid", (patch, reply)
    status, reply = call(node, "PATCH", path, {"admission_rate_min": 40}, token=_admin(node))
    assert status == 200, reply
    status, got = call(node, "GET", f"/api/events/{event['id']}", token=_admin(node))
    assert (got["admission_rate_min"], got["admission_rate_max"]) == (40, 40), got
