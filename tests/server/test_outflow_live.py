"""Adaptive outflow through a real node: with database latency injected into every hold
decision (``--fault-hold-delay-file``), an adaptive event's admission rate, as the public queue
stats carry it over STOMP, falls; once the latency is gone it climbs back (issue 15)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from concert_hub_client.sdk import connect
from tests.conftest import ServerProcess, free_port, migrated_database_url_for, rest
from tests.redis_server import RedisServer

PATIENCE_S = 60  # a bound on waiting for what must come, not a timing claim


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    delay = tmp_path / "hold-delay-ms"
    delay.write_text("0")
    proc = ServerProcess(free_port(), free_port(), tmp_path, {"fault_hold_delay_file": delay})
    proc.start()
    yield proc, delay
    proc.stop()


def iso_in(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def create(node: ServerProcess, **extra: object) -> int:
    status, event = rest(node, "POST", "/api/admin/events", {
        "name": "Adaptive", "venue": "Hall", "starts_at": iso_in(86400),
        "sale_opens_at": iso_in(-60), "sale_closes_at": iso_in(3600), "status": "on_sale",
        "layout": {"tiers": [{"name": "A", "price_cents": 5000}],
                   "sections": [{"name": "S", "rows": 2, "seats_per_row": 10, "tier": "A"}]},
        **extra,
    }, token=node.token("admin", "admin"))  # fmt: skip
    assert status == 201, event
    return int(event["id"])


def keep_holding(node: ServerProcess, event_id: int, stop: threading.Event) -> None:
    """Hold a seat and let it go, again and again: hold decisions for the controller to time."""
    token = node.token("loader")
    while not stop.is_set():
        status, hold = rest(node, "POST", f"/api/events/{event_id}/holds", {"seats": ["S-A-1"]},
                            token=token)  # fmt: skip
        if status == 201:
            rest(node, "DELETE", f"/api/holds/{hold['hold_id']}", token=token)
        stop.wait(0.05)


async def test_admission_rate_falls_under_database_latency_and_recovers(
    node: tuple[ServerProcess, Path],
) -> None:
    server, delay = node
    watched = create(server, waiting_room=True, admission_mode="adaptive", admission_rate=40,
                     admission_rate_min=1, admission_rate_max=40)  # fmt: skip
    plain = create(server)
    stop = threading.Event()
    loader = threading.Thread(target=keep_holding, args=(server, plain, stop), daemon=True)
    async with connect(server.ws_url, token=server.token("watcher")) as client:
        stats = await client.subscribe(f"/topic/events/{watched}/queue")

        async def until(accept: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
            deadline = time.monotonic() + PATIENCE_S
            while True:
                left = deadline - time.monotonic()
                assert left > 0, f"not within {PATIENCE_S}s: {what}"
                with contextlib.suppress(TimeoutError):
                    got = json.loads((await stats.get(timeout=left)).body)
                    if accept(got):
                        return dict(got)

        try:
            loader.start()
            calm = await until(lambda m: m["rate_reason"] == "at maximum", "the top rate, healthy")
            assert calm["rate"] == 40

            delay.write_text("400")  # every hold decision now waits 0.4 s in its transaction
            began = time.monotonic()
            slow = await until(lambda m: m["rate"] <= 10, "the rate falling under latency")
            fell_s = time.monotonic() - began
            assert "hold p99" in slow["rate_reason"], slow

            delay.write_text("0")
            began = time.monotonic()
            back = await until(lambda m: m["rate"] >= 20, "the rate recovering")
            assert back["rate_reason"] in {"within budget", "at maximum"}, back
            print(f"fell to <=10/s in {fell_s:.1f}s; back to >=20/s in "
                  f"{time.monotonic() - began:.1f}s")  # fmt: skip
        finally:
            stop.set()
            loader.join(timeout=10)


@pytest.fixture
def cluster(
    tmp_path: Path, redis_server: RedisServer
) -> Iterator[tuple[ServerProcess, ServerProcess, Path]]:
    """Two nodes over one Redis and one MariaDB; only node A's hold decisions can be slowed."""
    redis_server.flush(3)
    delay = tmp_path / "hold-delay-ms"
    delay.write_text("0")
    for url in migrated_database_url_for("mariadb", tmp_path):
        nodes: list[ServerProcess] = []
        try:
            for name in ("a", "b"):
                # Only hold p99 counts here (a loaded test machine trips the pool and lag
                # budgets of two nodes on their own): the slow node is the one reason.
                flags: dict[str, object] = {"database_url": url, "node_id": f"node-{name}",
                                            "redis_url": redis_server.url_for(3),
                                            "outflow_pool_wait_ms": 5000,
                                            "outflow_loop_lag_ms": 5000}  # fmt: skip
                if name == "a":
                    flags["fault_hold_delay_file"] = delay
                proc = ServerProcess(free_port(), free_port(), tmp_path / name, flags)
                proc.workdir.mkdir()
                proc.start()
                nodes.append(proc)
            yield nodes[0], nodes[1], delay
        finally:
            for proc in nodes:
                proc.stop()


async def test_a_cluster_admits_at_one_rate_that_the_slow_node_brings_down(
    cluster: tuple[ServerProcess, ServerProcess, Path],
) -> None:
    """Only node A is slow (its hold decisions wait 0.4 s) and only A takes holds; node B's
    public queue stats carry the same falling rate, for A's reason: one rate per event for
    the cluster, not one per node."""
    a, b, delay = cluster
    watched = create(a, waiting_room=True, admission_mode="adaptive", admission_rate=40,
                     admission_rate_min=1, admission_rate_max=40)  # fmt: skip
    plain = create(a)
    # Users wait through both nodes (so each node serves the event's waiting room).
    for node in (a, b):
        status, _ = rest(node, "POST", f"/api/events/{watched}/queue", token=node.token("fan"))
        assert status == 200
    stop = threading.Event()
    loader = threading.Thread(target=keep_holding, args=(a, plain, stop), daemon=True)
    async with contextlib.AsyncExitStack() as opened:
        heard = {}
        for name, node in (("a", a), ("b", b)):
            client = await opened.enter_async_context(
                connect(node.ws_url, token=node.token("watcher"))
            )
            heard[name] = await client.subscribe(f"/topic/events/{watched}/queue")

        async def until(node: str, accept: Callable[[dict[str, Any]], bool], what: str
                        ) -> dict[str, Any]:  # fmt: skip
            deadline = time.monotonic() + PATIENCE_S
            while True:
                left = deadline - time.monotonic()
                assert left > 0, f"not within {PATIENCE_S}s on node {node}: {what}"
                with contextlib.suppress(TimeoutError):
                    got = json.loads((await heard[node].get(timeout=left)).body)
                    if accept(got):
                        return dict(got)

        try:
            loader.start()
            await until("b", lambda m: m["rate_reason"] == "at maximum", "the top rate, healthy")
            delay.write_text("400")
            slow = await until("b", lambda m: m["rate"] <= 10, "node B's rate falling")
            assert "hold p99" in slow["rate_reason"], slow  # node A's trouble, decided for both
            on_a = await until("a", lambda m: m["rate"] <= 10, "node A's rate falling")
            assert "hold p99" in on_a["rate_reason"], on_a
            delay.write_text("0")
            await until("b", lambda m: m["rate"] >= 20, "node B's rate recovering")
            # The admin stats of both nodes name the same rate for the event.
            rates = []
            for node in (a, b):
                stats = rest(node, "GET", "/api/admin/stats", token=node.token("admin", "admin"))[1]
                queue = next(e for e in stats["events"] if e["event_id"] == watched)["queue"]
                rates.append(queue["admission_rate"])
            assert abs(rates[0] - rates[1]) <= 2, rates  # one rate (a step apart at most)
        finally:
            stop.set()
            loader.join(timeout=10)
