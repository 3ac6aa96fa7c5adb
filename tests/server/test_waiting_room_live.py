"""The waiting room through real servers and a real STOMP client (SPEC §5, §6, §8).

Single node (in-process engine): positions arrive at the promised cadence, the admission
message carries a token that holds accept, the pre-queue opens with the sale, bad input is
refused. Two nodes sharing Redis and MariaDB: one queue across nodes, a user's position on
whichever node their session is, a node restart loses no one's place.
"""

from __future__ import annotations

import itertools
import json
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stomp

from server.cli import main as cli_main
from tests.conftest import ServerProcess, free_port, migrated_database_url_for, rest
from tests.redis_server import RedisServer

INTERVAL = 0.5


def call(
    node: ServerProcess,
    method: str,
    path: str,
    token: str | None = None,
    body: object = None,
    *,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    return rest(node, method, path, body, token=token, headers=headers)


def iso_in(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def create_event(node: ServerProcess, *, opens_in: float = -60, rate: float = 50,
                 cap: int = 100, waiting_room: bool = True) -> int:  # fmt: skip
    status, event = call(node, "POST", "/api/admin/events", node.token("admin", "admin"), {
        "name": "Big night", "venue": "Arena", "starts_at": iso_in(86400),
        "sale_opens_at": iso_in(opens_in), "sale_closes_at": iso_in(3600), "status": "on_sale",
        "waiting_room": waiting_room, "admission_rate": rate, "max_active_shoppers": cap,
        "layout": {"tiers": [{"name": "A", "price_cents": 5000}],
                   "sections": [{"name": "S", "rows": 2, "seats_per_row": 10, "tier": "A"}]},
    })  # fmt: skip
    assert status == 201, event
    return int(event["id"])


class Positions(stomp.ConnectionListener):  # type: ignore[misc]  # stomp.py is untyped
    """Collects /user/queue/position messages with their arrival time."""

    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()

    def on_message(self, frame: stomp.utils.Frame) -> None:
        self.messages.put((time.monotonic(), json.loads(frame.body)))

    def until(self, accept: Callable[[dict[str, Any]], bool], timeout: float = 15
              ) -> list[tuple[float, dict[str, Any]]]:  # fmt: skip
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = self.messages.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                break
            seen.append(item)
            if accept(item[1]):
                return seen
        raise AssertionError(f"no matching position message in {timeout}s; saw {seen[-5:]}")


def wait_for_state(
    node: ServerProcess, event: int, user: str, state: str, timeout: float = 10.0
) -> None:
    """Poll ``GET /api/events/{event}/queue/me`` until ``user`` is in ``state``."""
    deadline = time.monotonic() + timeout
    while True:
        me = call(node, "GET", f"/api/events/{event}/queue/me", node.token(user))[1]
        if me.get("state") == state:
            return
        assert time.monotonic() < deadline, f"{user} not {state} within {timeout}s: {me}"
        time.sleep(0.05)


def watch(node: ServerProcess, user: str) -> tuple[stomp.Connection, Positions]:
    listener = Positions()
    conn = stomp.Connection([("127.0.0.1", node.stomp_port)])
    conn.set_listener("", listener)
    conn.connect(passcode=node.token(user), wait=True)
    conn.subscribe("/user/queue/position", id="pos", ack="auto")
    return conn, listener


# -- one node ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(free_port(), free_port(), tmp_path_factory.mktemp("queue"),
                         {"position_interval_s": INTERVAL})  # fmt: skip
    proc.start()
    yield proc
    proc.stop()


def test_waiting_users_hear_their_position_at_the_promised_cadence(node: ServerProcess) -> None:
    event = create_event(node, rate=0.1, cap=1)  # one admitted, everyone else waits
    for i in range(3):
        assert call(node, "POST", f"/api/events/{event}/queue", node.token(f"w{i}"))[0] == 200
    first = node.token("w0")
    for _ in range(100):  # the first admission tick comes within 100 ms
        if call(node, "GET", f"/api/events/{event}/queue/me", first)[1]["state"] == "admitted":
            break
        time.sleep(0.05)
    conn, positions = watch(node, "waiter")
    try:
        status, joined = call(node, "POST", f"/api/events/{event}/queue", node.token("waiter"))
        assert (status, joined["state"], joined["position"]) == (200, "waiting", 3)
        seen: list[tuple[float, dict[str, Any]]] = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            try:
                seen.append(positions.messages.get(timeout=1))
            except queue.Empty:
                break
        ours = [(t, m) for t, m in seen if m["event_id"] == event]
        assert len(ours) >= 5, ours  # 4 s at one update per 0.5 s, with room to spare
        assert all(m["state"] == "waiting" and m["position"] == 3 for _, m in ours)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(ours)]
        assert max(gaps) < 3 * INTERVAL, gaps  # never silent for long
    finally:
        conn.disconnect()


def test_admission_message_carries_a_token_that_holds_accept(node: ServerProcess) -> None:
    event = create_event(node)
    user = "lucky"
    assert call(node, "POST", f"/api/events/{event}/holds", node.token(user),
                {"seats": ["S-A-1"]})[0] == 403  # fmt: skip
    conn, positions = watch(node, user)
    try:
        call(node, "POST", f"/api/events/{event}/queue", node.token(user))
        admitted = positions.until(lambda m: m["event_id"] == event and m["state"] == "admitted")
        message = admitted[-1][1]
        token = message["admission_token"]
        assert message["expires_at"].endswith("Z")
        status, hold = call(node, "POST", f"/api/events/{event}/holds", node.token(user),
                            {"seats": ["S-A-1"]}, headers={"X-Admission-Token": token})  # fmt: skip
        assert status == 201, hold
        # Someone else cannot use it.
        thief, stolen = node.token("thief"), {"X-Admission-Token": token}
        status, problem = call(node, "POST", f"/api/events/{event}/holds", thief,
                               {"seats": ["S-A-2"]}, headers=stolen)  # fmt: skip
        assert (status, problem["kind"]) == (403, "admission_required")
    finally:
        conn.disconnect()


def test_pre_queue_is_placed_when_the_sale_opens(node: ServerProcess) -> None:
    event = create_event(node, opens_in=3)
    early = [f"early{i}" for i in range(4)]
    for user in early:
        status, joined = call(node, "POST", f"/api/events/{event}/queue", node.token(user))
        assert (status, joined["state"], joined["position"]) == (200, "waiting", None)
    conn, positions = watch(node, early[0])
    try:
        positions.until(lambda m: m["event_id"] == event and m["state"] == "admitted")
    finally:
        conn.disconnect()
    states = [call(node, "GET", f"/api/events/{event}/queue/me", node.token(u))[1]["state"]
              for u in early]  # fmt: skip
    assert states == ["admitted"] * 4


def test_bad_joins_are_refused_clearly(node: ServerProcess) -> None:
    token = node.token("picky")
    status, problem = call(node, "POST", "/api/events/999999/queue", token)
    assert (status, problem["kind"]) == (404, "not_found")
    plain = create_event(node, waiting_room=False)
    status, problem = call(node, "POST", f"/api/events/{plain}/queue", token)
    assert status == 422
    closed = create_event(node)
    admin = node.token("admin", "admin")
    assert call(node, "PATCH", f"/api/admin/events/{closed}", admin, {"status": "closed"})[0] == 200
    status, problem = call(node, "POST", f"/api/events/{closed}/queue", token)
    assert (status, problem["kind"]) == (409, "sale_closed")
    status, me = call(node, "GET", f"/api/events/{closed}/queue/me", token)
    assert (status, me["state"], me["position"]) == (200, "not_joined", None)
    # Joining twice keeps the place.
    open_event = create_event(node, rate=0.1, cap=1)
    call(node, "POST", f"/api/events/{open_event}/queue", node.token("first"))
    # "first" takes the one shopper's place at the next admission tick; from then on the queue
    # stands still, so a place kept is a position unchanged (on a busy machine the tick may come
    # between two joins).
    wait_for_state(node, open_event, "first", "admitted")
    once = call(node, "POST", f"/api/events/{open_event}/queue", token)[1]
    twice = call(node, "POST", f"/api/events/{open_event}/queue", token)[1]
    assert once["state"] == "waiting" and twice["position"] == once["position"]
    # A forged admission token is refused.
    forged = {"X-Admission-Token": "eyJ.forged.token"}
    status, problem = call(node, "POST", f"/api/events/{open_event}/holds", token,
                           {"seats": ["S-A-1"]}, headers=forged)  # fmt: skip
    assert (status, problem["kind"]) == (403, "admission_required")


# -- two nodes, one Redis ------------------------------------------------------------------


@pytest.fixture
def cluster(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[list[ServerProcess]]:
    redis_server.flush(1)
    workdir = tmp_path_factory.mktemp("cluster")
    for url in migrated_database_url_for("mariadb", workdir):
        nodes = []
        try:
            for name in ("a", "b"):
                proc = ServerProcess(free_port(), free_port(), workdir / name, {
                    "database_url": url, "redis_url": redis_server.url_for(1),
                    "node_id": f"node-{name}", "position_interval_s": INTERVAL,
                })  # fmt: skip
                proc.workdir.mkdir()
                proc.start()
                nodes.append(proc)
            yield nodes
        finally:
            for proc in nodes:
                proc.stop()


def test_two_nodes_share_one_queue_and_survive_a_restart(cluster: list[ServerProcess]) -> None:
    a, b = cluster
    event = create_event(a, rate=0.1, cap=1)
    users = [f"fan{i}" for i in range(6)]
    for i, user in enumerate(users):
        node = (a, b)[i % 2]
        status, joined = call(node, "POST", f"/api/events/{event}/queue", node.token(user))
        assert status == 200, joined
    # The cap of one admits fan0 and then freezes the serving counter.
    for _ in range(100):
        if (
            call(b, "GET", f"/api/events/{event}/queue/me", b.token(users[0]))[1]["state"]
            == "admitted"
        ):
            break
        time.sleep(0.05)
    places = {u: call(a, "GET", f"/api/events/{event}/queue/me", a.token(u))[1] for u in users}
    # One sequence across both nodes, in join order, whichever node each joined through.
    assert places[users[0]]["state"] == "admitted"
    assert [places[u]["position"] for u in users[1:]] == [1, 2, 3, 4, 5], places

    # A user who joined through node A hears their position on node B.
    conn, positions = watch(b, users[3])
    try:
        heard = positions.until(lambda m: m["event_id"] == event)
        assert heard[-1][1]["position"] == places[users[3]]["position"]
    finally:
        conn.disconnect()

    # Restart node A: the queue lives in Redis, nobody loses their place.
    a.stop()
    a.start()
    for user in users[1:]:
        status, me = call(a, "GET", f"/api/events/{event}/queue/me", a.token(user))
        assert (status, me["position"]) == (200, places[user]["position"])


def test_the_fairness_audit_is_published_and_verifies(node: ServerProcess) -> None:
    event = create_event(node, opens_in=3)
    for i in range(6):
        assert call(node, "POST", f"/api/events/{event}/queue", node.token(f"audit{i}"))[0] == 200
    status, before = call(node, "GET", f"/api/events/{event}/queue/audit")
    assert status == 200 and before["seed"] is None and len(before["commitment"]) == 64
    wait_for_state(node, event, "audit0", "admitted")
    status, after = call(node, "GET", f"/api/events/{event}/queue/audit")
    assert after["commitment"] == before["commitment"] and len(after["log"]) == 6
    # The operator's command, against this node.
    assert cli_main(["audit", "verify", str(event), "--url", node.http_url]) == 0
