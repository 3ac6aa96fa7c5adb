"""Door check-in through a real node's REST API, on SQLite and MariaDB: scanner tokens (minted,
refused elsewhere, revoked), scanning, the check-in list, offline sync in either order, the
admin's conflicts and progress."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from booking.keyring import Keyring
from server.auth import AuthenticationFailed, Role, TokenAuthority
from tests.conftest import SECRET, ServerProcess
from tests.server.stomp_clients import Clients, raw_peer, unique
from tests.server.test_rest_api import Api, assert_problem, iso, traceback_free


@pytest.fixture
def api(booking_server: ServerProcess) -> Iterator[Api]:
    yield from traceback_free(booking_server)


@pytest.fixture
def event(api: Api) -> dict[str, Any]:
    return api.create_event()


def buy(api: Api, event_id: int, seats: list[str]) -> list[str]:
    _, token = api.user()
    hold = api.hold(event_id, token, seats).json()
    order = api.checkout(hold["hold_id"], token)
    assert order.status == 201, order
    by_seat = {t["seat_id"]: t["code"] for t in order.json()["tickets"]}
    return [by_seat[s] for s in seats]


def mint(api: Api, gate: str, event_id: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"device": unique("ipad"), "gate": gate}
    if event_id is not None:
        body["event_id"] = event_id
    reply = api.post("/api/admin/scanners", body, token=api.admin())
    assert reply.status == 201, reply
    scanner: dict[str, Any] = reply.json()
    return scanner


#: SPEC §5: 200 when admitted (or let out), 404 for a code that does not verify, 409 for any
#: other refusal; a refusal is a problem whose ``kind`` is the ``result``.
SCAN_STATUS = {"admitted": 200, "exited": 200, "forged": 404, "retired_key": 404}


def scan(api: Api, token: str, code: str, **more: Any) -> dict[str, Any]:
    """The scan's answer (its ``result`` and fields), whatever the status its result calls for."""
    reply = api.post("/api/checkin", {"code": code, **more}, token=token)
    result: dict[str, Any] = reply.json()
    status = SCAN_STATUS.get(result.get("result", ""), 409)
    if status == 200:
        assert reply.status == 200, reply
    else:
        assert_problem(reply, status, result["result"])
        assert result["admitted"] is False
    return result


def ticket_id(code: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(code.encode()).digest()[:12]).decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_scanner_admits_a_ticket_once(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    (code,) = buy(api, eid, ["A-A-1"])
    north = mint(api, "North", eid)
    south = mint(api, "South")  # not bound: names the event in each scan
    assert north["token"] and north["gate"] == "North" and north["revoked_at"] is None

    first = scan(api, north["token"], code)
    assert first["result"] == "admitted" and first["admitted"] is True
    assert (first["seat_id"], first["tier"], first["gate"]) == ("A-A-1", "Front", "North")
    assert "holder" in first  # the order's e-mail address (this buyer gave none)
    second = scan(api, south["token"], code, event_id=eid)
    assert second["result"] == "already_used" and second["admitted"] is False
    assert second["used_gate"] == "North" and second["used_at"].endswith("Z")

    other = api.create_event()
    (elsewhere,) = buy(api, other["id"], ["A-A-1"])
    assert scan(api, north["token"], elsewhere)["result"] == "wrong_event"
    signed, _, signature = code.rpartition(".")
    forged = f"{signed}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    assert scan(api, north["token"], forged)["result"] == "forged"
    # a scanner bound to one event may not scan for another
    assert_problem(
        api.post("/api/checkin", {"code": elsewhere, "event_id": other["id"]},
                 token=north["token"]), 403, "forbidden",
    )  # fmt: skip
    assert_problem(api.post("/api/checkin", {"code": code}, token=south["token"]), 422)


def test_a_scanner_s_token_does_not_shop(api: Api, event: dict[str, Any]) -> None:
    """A device at the door, not a buyer: a stolen door token must not hold, buy or read orders
    under the device's name (it could, as any authenticated principal)."""
    token = mint(api, "West", event["id"])["token"]
    held = api.post(f"/api/events/{event['id']}/holds", {"seats": ["B-E-9"]}, token=token)
    assert_problem(held, 403, "forbidden")
    assert_problem(api.get("/api/orders", token=token), 403, "forbidden")
    with raw_peer(api.server, "tcp") as peer:
        peer.connect(token=token)
        peer.send("SEND", [("destination", f"/app/events/{event['id']}/holds")], '{"seats":[]}')
        assert peer.expect_error().message == "forbidden destination"


def test_only_scanners_scan_and_revoked_ones_no_longer(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    (code,) = buy(api, eid, ["A-A-2"])
    _, user = api.user()
    for token in (user, api.admin()):
        assert_problem(
            api.post("/api/checkin", {"code": code, "event_id": eid}, token=token),
            403, "not_scanner",
        )  # fmt: skip
    assert_problem(api.post("/api/checkin", {"code": code, "event_id": eid}), 401)
    scanner = mint(api, "East", eid)
    listed = api.get("/api/admin/scanners", token=api.admin()).json()
    assert scanner["id"] in [s["id"] for s in listed]
    assert all("token" not in s or s["token"] is None for s in listed)
    # the list says until when each device's token works, as minting did
    (shown,) = [s for s in listed if s["id"] == scanner["id"]]
    assert shown["expires_at"] == scanner["expires_at"] is not None
    # the node has verified (and remembers) the token before it is revoked
    assert scan(api, scanner["token"], "not-a-code")["result"] == "forged"
    revoked = api.post(f"/api/admin/scanners/{scanner['id']}/revoke", token=api.admin())
    assert revoked.status == 200 and revoked.json()["revoked_at"] is not None
    assert_problem(api.post("/api/checkin", {"code": code}, token=scanner["token"]), 401)
    # nothing was let in
    assert scan(api, mint(api, "East", eid)["token"], code)["result"] == "admitted"


def test_the_checkin_list_verifies_codes_offline(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    kept, used, cancelled = buy(api, eid, ["B-A-1", "B-A-2", "B-A-3"])
    scanner = mint(api, "West", eid)
    scan(api, scanner["token"], used)
    _, token = api.user()
    hold = api.hold(eid, token, ["B-B-1"]).json()
    order = api.checkout(hold["hold_id"], token).json()
    void = order["tickets"][0]["code"]
    assert api.post(f"/api/orders/{order['order_id']}/cancel", token=token).status == 200

    reply = api.get(f"/api/checkin/events/{eid}/list", token=scanner["token"])
    assert reply.status == 200, reply
    found = reply.json()
    assert {ticket_id(kept), ticket_id(used), ticket_id(cancelled)} <= set(found["valid"])
    assert found["void"] == [ticket_id(void)]
    assert found["used"] == [ticket_id(used)]
    # the public keys verify a code with no secret at all
    keys = {k["kid"]: Ed25519PublicKey.from_public_bytes(unb64(k["public_key"]))
            for k in found["keys"]}  # fmt: skip
    version, kid, payload, signature = kept.split(".")
    keys[kid].verify(unb64(signature), f"{version}.{kid}.{payload}".encode())
    assert unb64(payload).decode().split("|")[:2] == [str(eid), "B-A-1"]
    assert_problem(api.get(f"/api/checkin/events/{eid}/list", token=api.admin()), 403)


def test_offline_sync_in_either_order_ends_the_same(api: Api) -> None:
    start = datetime.now(UTC) - timedelta(minutes=20)
    finals = []
    for order in ("AB", "BA"):
        event = api.create_event()
        eid = event["id"]
        codes = buy(api, eid, [f"A-A-{n}" for n in range(1, 5)])
        scanners = {"A": mint(api, "Gate A", eid), "B": mint(api, "Gate B", eid)}
        at = [iso(start + timedelta(seconds=s)) for s in range(10)]
        uploads = {
            # A: tickets 0, 1, 2; B: tickets 2, 3 — ticket 2 twice, A first
            "A": [{"code": codes[0], "at": at[0]}, {"code": codes[1], "at": at[1]},
                  {"code": codes[2], "at": at[2]}],
            "B": [{"code": codes[2], "at": at[3]}, {"code": codes[3], "at": at[4]}],
        }  # fmt: skip
        for name in order:
            reply = api.post(f"/api/checkin/events/{eid}/sync", {"redemptions": uploads[name]},
                             token=scanners[name]["token"])  # fmt: skip
            assert reply.status == 200, reply
        again = api.post(f"/api/checkin/events/{eid}/sync", {"redemptions": uploads["B"]},
                         token=scanners["B"]["token"]).json()  # fmt: skip
        assert [r["outcome"] for r in again["results"]] == ["duplicate", "duplicate"]
        # online, every ticket is used now, at the gate whose redemption came first
        late = mint(api, "Late", eid)["token"]
        used_at = [(scan(api, late, c)["result"], scan(api, late, c)["used_gate"]) for c in codes]
        assert used_at == [("already_used", g) for g in ["Gate A"] * 3 + ["Gate B"]]
        conflicts = api.get(f"/api/admin/events/{eid}/checkin/conflicts", token=api.admin())
        assert conflicts.status == 200, conflicts
        (conflict,) = conflicts.json()
        assert conflict["ticket_id"] == ticket_id(codes[2])
        assert (conflict["first_gate"], conflict["first_at"]) == ("Gate A", at[2])
        assert (conflict["second_gate"], conflict["second_at"]) == ("Gate B", at[3])
        assert conflict["second_offline"] is True
        finals.append((used_at, {k: v for k, v in conflict.items()
                                 if k not in ("ticket_id", "second_device")}))  # fmt: skip
        progress = api.get(f"/api/admin/events/{eid}/checkin", token=api.admin()).json()
        assert (progress["sold"], progress["scanned"]) == (4, 4)
        assert progress["by_gate"] == {"Gate A": 3, "Gate B": 2}
    assert finals[0] == finals[1]


def test_a_ticket_voided_while_the_scanner_was_offline_is_not_counted(
    api: Api, event: dict[str, Any]
) -> None:
    eid = event["id"]
    (kept,) = buy(api, eid, ["A-C-1"])
    _, token = api.user()
    hold = api.hold(eid, token, ["A-C-2"]).json()
    order = api.checkout(hold["hold_id"], token).json()
    voided = order["tickets"][0]["code"]
    scanner = mint(api, "Dock", eid)["token"]
    # the scanner, offline, lets both in; meanwhile the second order is cancelled
    assert api.post(f"/api/orders/{order['order_id']}/cancel", token=token).status == 200
    now = datetime.now(UTC)
    upload = [{"code": kept, "at": iso(now - timedelta(seconds=30))},
              {"code": voided, "at": iso(now - timedelta(seconds=20))}]  # fmt: skip
    reply = api.post(f"/api/checkin/events/{eid}/sync", {"redemptions": upload}, token=scanner)
    assert reply.status == 200, reply
    synced = reply.json()
    assert [r["outcome"] for r in synced["results"]] == ["admitted", "void"]
    assert (synced["admitted"], synced["void"], synced["conflicts"]) == (1, 1, 0)
    progress = api.get(f"/api/admin/events/{eid}/checkin", token=api.admin()).json()
    assert (progress["sold"], progress["scanned"]) == (1, 1)
    assert progress["by_gate"] == {"Dock": 1}
    assert sum(m["admitted"] for m in progress["per_minute"]) == 1
    assert scan(api, scanner, voided)["result"] == "void"


def test_offline_exits_sync_like_entries(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    (code,) = buy(api, eid, ["A-D-1"])
    scanner = mint(api, "Side", eid)["token"]
    start = datetime.now(UTC) - timedelta(minutes=5)
    queue = [{"code": code, "at": iso(start)},
             {"code": code, "at": iso(start + timedelta(seconds=10)), "direction": "out"},
             {"code": code, "at": iso(start + timedelta(seconds=20))}]  # fmt: skip
    path = f"/api/checkin/events/{eid}/sync"
    assert_problem(api.post(path, {"redemptions": queue}, token=scanner), 422)  # no re-entry
    admin = api.admin()
    assert api.call("PUT", f"/api/admin/events/{eid}/checkin", {"reentry": True},
                    token=admin).status == 200  # fmt: skip
    reply = api.post(path, {"redemptions": queue}, token=scanner)
    assert reply.status == 200, reply
    assert [r["outcome"] for r in reply.json()["results"]] == ["admitted", "exited", "admitted"]
    assert api.get(f"/api/admin/events/{eid}/checkin/conflicts", token=admin).json() == []
    answer = scan(api, scanner, code)
    assert (answer["result"], answer["used_at"]) == ("already_used", queue[2]["at"])
    # times whose UTC is out of the clock's range, and a re-entry that is not a boolean: 422
    for at in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-01:00"):
        far = api.post(path, {"redemptions": [{"code": code, "at": at}]}, token=scanner)
        assert_problem(far, 422, "validation")
    for loose in ("yes", 1, "0"):
        put = api.call("PUT", f"/api/admin/events/{eid}/checkin", {"reentry": loose}, token=admin)
        assert_problem(put, 422, "validation")


def test_reentry_and_key_rotation(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    admin = api.admin()
    (code,) = buy(api, eid, ["A-B-1"])
    scanner = mint(api, "Main", eid)["token"]
    assert scan(api, scanner, code)["result"] == "admitted"
    assert_problem(api.post("/api/checkin", {"code": code, "direction": "out"}, token=scanner), 422)
    put = api.call("PUT", f"/api/admin/events/{eid}/checkin", {"reentry": True}, token=admin)
    assert put.status == 200 and put.json() == {"event_id": eid, "reentry": True}
    out = scan(api, scanner, code, direction="out")
    # An exit names no gate the ticket was "used" at: that is an already_used answer's.
    assert (out["result"], out["used_gate"], out["used_at"]) == ("exited", None, None)
    again = scan(api, scanner, code, direction="out")
    assert (again["result"], again.get("used_gate")) == ("not_inside", None)
    assert scan(api, scanner, code)["result"] == "admitted"

    before = api.get("/api/admin/ticket-keys", token=admin).json()
    rotated = api.post("/api/admin/ticket-keys/rotate", token=admin)
    assert rotated.status == 201, rotated
    keys = rotated.json()
    assert len(keys) == len(before) + 1 and keys[-1]["retired_at"] is None
    assert all(k["retired_at"] is not None for k in keys[:-1])
    (fresh,) = buy(api, eid, ["A-B-2"])
    assert fresh.split(".")[1] == keys[-1]["kid"]
    # the old key still verifies: the event is not over
    (_old_code,) = [code]
    assert scan(api, scanner, fresh)["result"] == "admitted"
    listed = api.get(f"/api/checkin/events/{eid}/list", token=scanner).json()
    assert {k["kid"] for k in listed["keys"]} >= {code.split(".")[1], keys[-1]["kid"]}


def test_admins_watch_checkin_progress_over_stomp(api: Api, event: dict[str, Any]) -> None:
    eid = event["id"]
    route = f"/topic/admin/events/{eid}/checkin"
    opened = Clients(api.server)
    try:
        # only admins may watch, and nobody may send there
        stranger = opened("tcp", user=unique("u"))
        stranger.conn.subscribe(route, "sub-1")
        assert stranger.listener.error().headers["message"] == "forbidden destination"
        admin = opened("tcp", user="admin", role="admin")
        admin.subscribe(route)
        greeting = json.loads(admin.listener.message().body)
        assert greeting == {
            "type": "checkin", "event_id": eid, "sold": 0, "scanned": 0, "by_gate": {},
            "per_minute": greeting["per_minute"],
        }  # fmt: skip
        assert len(greeting["per_minute"]) == 15
        assert {m["admitted"] for m in greeting["per_minute"]} == {0}

        codes = buy(api, eid, ["B-E-1", "B-E-2", "B-E-3"])
        north = mint(api, "North", eid)["token"]
        for code in codes[:2]:
            assert scan(api, north, code)["admitted"]
        latest = greeting
        while latest["scanned"] < 2:  # pushed every 2 s
            latest = json.loads(admin.listener.message().body)
        assert (latest["sold"], latest["scanned"], latest["by_gate"]) == (3, 2, {"North": 2})
        assert latest["per_minute"][-1]["admitted"] + latest["per_minute"][-2]["admitted"] == 2
    finally:
        opened.close_all()


def test_a_remembered_token_still_expires_and_is_still_revoked() -> None:
    tokens = TokenAuthority(Keyring(SECRET))
    token = tokens.issue("scn_1", Role.SCANNER, 1, version=1, gate="North")
    assert tokens.verify(token).gate == "North"
    assert tokens.verify(token).gate == "North"  # remembered
    tokens.versions["scn_1"] = 2
    with pytest.raises(AuthenticationFailed, match="revoked"):
        tokens.verify(token)
    del tokens.versions["scn_1"]
    while time.time() < int(jwt.decode(token, options={"verify_signature": False})["exp"]):
        time.sleep(0.05)
    with pytest.raises(AuthenticationFailed, match="expired"):
        tokens.verify(token)
