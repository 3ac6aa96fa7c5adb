"""``concert-hub serve --workers N`` (issue 16): one node's ports served by N processes.

Each worker is a node of the cluster (``<node-id>-w<i>``) on the same HTTP and STOMP ports
(SO_REUSEPORT), sharing state through Redis: a hold made through one worker reaches a seat-map
subscriber on the other. SIGTERM stops every process of the node; a worker that dies takes the
node down with a failure exit; without Redis the command refuses to start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.booking.conftest import call
from tests.cluster.conftest import create_event, wait_ready, wait_until
from tests.conftest import ServerProcess, free_port, migrated_database_url_for
from tests.redis_server import RedisServer
from tests.seat_feed import SeatFeed
from tests.server.stomp_clients import Client, Clients, RawPeer, RawTcp, RawWs, unique

WORKERS = ("w1", "w2")


@pytest.fixture(scope="module")
def backing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A private Redis and a migrated MariaDB database: (workdir, redis url, database url)."""
    workdir = tmp_path_factory.mktemp("workers")
    redis = RedisServer(free_port(), workdir)
    redis.start()
    try:
        for url in migrated_database_url_for("mariadb", workdir):
            yield workdir, redis.url, url
    finally:
        redis.stop()


def start_node(backing: tuple[Path, str, str], name: str) -> ServerProcess:
    workdir, redis_url, database_url = backing
    flags: dict[str, object] = {
        "database_url": database_url, "redis_url": redis_url, "node_id": name,
        "workers": len(WORKERS), "rest_rate_per_ip": 100000, "rest_rate_per_user": 100000,
    }  # fmt: skip
    node = ServerProcess(free_port(), free_port(), workdir / name, flags)
    node.workdir.mkdir()
    node.start()
    wait_ready([node], 30)
    wait_until(lambda: listed(node) >= worker_ids(node), 30, "both workers up")
    return node


def worker_ids(node: ServerProcess) -> set[str]:
    return {f"{node.flags['node_id']}-{w}" for w in WORKERS}


def listed(node: ServerProcess) -> set[str]:
    """The node ids ``/api/admin/stats`` lists (each worker is a node)."""
    status, body = call(node, "GET", "/api/admin/stats", token=node.token("root", "admin"))
    assert status == 200, body
    return {n["node_id"] for n in body["nodes"]}


@pytest.fixture(scope="module")
def node(backing: tuple[Path, str, str]) -> Iterator[ServerProcess]:
    started = start_node(backing, "shared")
    yield started
    started.stop()


@pytest.fixture
def clients(node: ServerProcess) -> Iterator[Clients]:
    opened = Clients(node)
    yield opened
    opened.close_all()


def session_worker(client: Client) -> str:
    """``shared-w2-s17`` → ``w2``: the worker that accepted the session."""
    session = client.reply.headers["session"]
    assert session.startswith("shared-w"), session
    return str(session.split("-")[1])


def one_session_per_worker(clients: Clients) -> dict[str, tuple[Client, str]]:
    """Open STOMP sessions on the node's one port until every worker has accepted one; the
    kernel spreads connections over the workers, so a few dozen are plenty."""
    found: dict[str, tuple[Client, str]] = {}
    for _ in range(64):
        user = unique("fan")
        client = clients("tcp", user=user)
        found.setdefault(session_worker(client), (client, user))
        if len(found) == len(WORKERS):
            return found
    raise AssertionError(f"64 sessions all went to {sorted(found)}")


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


def worker_pids(node: ServerProcess) -> set[int]:
    """The node's worker processes (its other child is multiprocessing's resource tracker)."""
    assert node.proc is not None
    found = set()
    for pid in descendants(node.proc.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if b"spawn_main" in cmdline and ppid == node.proc.pid:
            found.add(pid)
    return found


def test_every_worker_serves_the_same_ports_as_a_node_of_its_own(
    node: ServerProcess, clients: Clients
) -> None:
    sessions = one_session_per_worker(clients)
    assert sorted(sessions) == list(WORKERS)

    # each worker is a node of the cluster; the one answering lists the other once it heard it
    wait_until(lambda: listed(node) >= worker_ids(node), 20, "admin stats listing both workers")

    # /metrics reaches one worker and answers for all of them, each sample labelled.
    def labelled() -> set[str]:
        with urllib.request.urlopen(f"{node.http_url}/metrics", timeout=10) as response:
            text = response.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        return {s.labels["worker"] for s in families["concert_hub_connections"].samples}

    wait_until(lambda: labelled() == set(WORKERS), 20, "/metrics with both workers' samples")


def test_a_hold_through_one_worker_reaches_a_seat_map_on_the_other(
    node: ServerProcess, clients: Clients
) -> None:
    event_id = create_event(node)
    sessions = one_session_per_worker(clients)
    (shopper, user), (watcher, _) = sessions["w1"], sessions["w2"]
    feed = SeatFeed(watcher, event_id)
    feed.subscribe()

    shopper.subscribe("/user/queue/replies")
    correlation = unique("c")
    shopper.send(
        f"/app/events/{event_id}/holds",
        json.dumps({"seats": ["S-A-1", "S-A-2"]}),
        content_type="application/json",
        headers={"correlation-id": correlation},
    )
    reply = shopper.listener.wait(
        "MESSAGE", 10, lambda f: f.headers.get("correlation-id") == correlation
    )
    held: dict[str, Any] = json.loads(reply.body)
    assert held["type"] == "hold", held
    feed.until({"S-A-1": "held", "S-A-2": "held"})
    assert user  # the hold is the shopper's, made on worker w1


def test_sigterm_stops_every_process_of_the_node(backing: tuple[Path, str, str]) -> None:
    node = start_node(backing, "stopped")
    assert node.proc is not None
    workers = worker_pids(node)
    assert len(workers) == len(WORKERS), node.log()
    everything = descendants(node.proc.pid)

    assert node.stop() == 0, node.log()
    wait_until(lambda: not alive(everything), 10, "no process of the node left")
    log = node.log()
    assert "Traceback" not in log, log
    assert log.count("stopped") >= len(WORKERS), log


def test_sigterm_tells_every_session_of_every_worker_and_the_node_exits_0(
    backing: tuple[Path, str, str],
) -> None:
    """SPEC §1 with ``--workers``: every session of every worker gets ERROR ``server shutting
    down`` (a WebSocket the close 1001), also while one client reads nothing (its connection is
    cut after the drain), and the node exits 0."""
    node = start_node(backing, "told")
    assert node.proc is not None
    peers: list[RawPeer] = [RawWs.to(node) for _ in range(24)]
    peers += [RawTcp.to(node) for _ in range(8)]
    deaf = RawWs.to(node)
    try:
        accepted_by = set()
        for peer in (*peers, deaf):
            connected = peer.connect(token=node.token(unique("fan")))
            assert connected.command == "CONNECTED", connected
            session = dict(connected.headers)["session"]  # told-w2-s17
            accepted_by.add(session.split("-")[1])
        assert accepted_by == set(WORKERS), accepted_by  # (the kernel spread them)

        node.proc.terminate()  # SIGTERM, to the supervisor alone
        for peer in peers:
            assert peer.expect_error().message == "server shutting down"
            if isinstance(peer, RawWs):
                assert peer.close_code == 1001, (peer.close_code, peer.close_reason)
        assert node.proc.wait(15) == 0, node.log()
    finally:
        for peer in (*peers, deaf):
            peer.close()
    log = node.log()
    assert "Traceback" not in log, log


def test_a_worker_that_dies_takes_the_node_down_with_a_failure(
    backing: tuple[Path, str, str],
) -> None:
    node = start_node(backing, "crashed")
    assert node.proc is not None
    victim, *_ = sorted(worker_pids(node))
    everything = descendants(node.proc.pid)

    os.kill(victim, signal.SIGKILL)
    assert node.proc.wait(20) == 1, node.log()
    wait_until(lambda: not alive(everything), 10, "no process of the node left")
    assert f"(pid {victim}) exited with -9; stopping the others" in node.log()


def serve(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", "serve", "--secret", "s" * 32, *flags],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_several_workers_without_redis_are_refused(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    done = serve("--workers", "2", "--database-url", database, "--port", str(free_port()))
    assert done.returncode == 2, done
    assert "--workers 2 needs --redis-url" in done.stderr, done.stderr

    done = serve("--workers", "2", "--redis-url", "redis://127.0.0.1:1", "--port", "0")
    assert done.returncode == 2, done
    assert "needs a fixed --port" in done.stderr, done.stderr
