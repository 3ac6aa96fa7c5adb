"""``/topic/events/{id}/status``: a page open on an event hears of its sale's changes at once
(an admin's pause), not at the next refused hold; the cluster case is in
``tests/cluster/test_cluster_as_one.py``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.server.stomp_clients import Clients, raw_peer, unique
from tests.server.test_app_commands import api, clients
from tests.server.test_rest_api import Api

__all__ = ["api", "clients"]  # the fixtures: this module's node and its clients


def statuses(client: Any, count: int) -> list[dict[str, Any]]:
    return [json.loads(f.body) for f in client.listener.messages(count)]


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_subscriber_gets_the_status_then_every_change(
    api: Api, clients: Clients, transport: str
) -> None:
    shown = api.create_event()
    topic = f"/topic/events/{shown['id']}/status"
    buyer = clients(transport, user=unique("buyer"))
    buyer.subscribe(topic)
    [now] = statuses(buyer, 1)  # at once, before any change
    assert (now["type"], now["event_id"], now["status"], now["on_sale"]) == (
        "status", shown["id"], "on_sale", True,
    )  # fmt: skip
    path = f"/api/admin/events/{shown['id']}"
    assert api.call("PATCH", path, {"status": "paused"}, token=api.admin()).status == 200
    [paused] = statuses(buyer, 1)
    assert (paused["status"], paused["on_sale"]) == ("paused", False)
    patch = {"status": "on_sale", "waiting_room": True}
    assert api.call("PATCH", path, patch, token=api.admin()).status == 200
    [reopened] = statuses(buyer, 1)
    assert (reopened["status"], reopened["on_sale"], reopened["waiting_room"]) == (
        "on_sale", True, True,
    )  # fmt: skip
    assert set(reopened) == {"type", "event_id", "status", "on_sale", "waiting_room",
                             "sale_opens_at", "sale_closes_at"}  # fmt: skip


def test_the_status_of_a_draft_or_unknown_event_is_refused_and_nobody_may_send(
    api: Api, clients: Clients
) -> None:
    draft = api.create_event(status="draft", name=unique("Draft"))
    for destination in (f"/topic/events/{draft['id']}/status", "/topic/events/424242/status",
                        "/topic/events/x/status"):  # fmt: skip
        with raw_peer(api.server, "tcp") as peer:
            peer.connect(token=api.server.token(unique("peek")))
            peer.send("SUBSCRIBE", [("id", "1"), ("destination", destination), ("receipt", "r")])
            error = peer.expect_error()
            assert error.message == "unknown event", destination
            assert error.get("receipt-id") == "r"
    admin = clients("tcp", user="root", role="admin")
    admin.subscribe(f"/topic/events/{draft['id']}/status")  # admins see drafts
    assert statuses(admin, 1)[0]["status"] == "draft"
    with raw_peer(api.server, "tcp") as peer:
        peer.connect(token=api.server.token("root", "admin"))
        peer.send("SEND", [("destination", f"/topic/events/{draft['id']}/status")], b"{}")
        assert peer.expect_error().message == "forbidden destination"
