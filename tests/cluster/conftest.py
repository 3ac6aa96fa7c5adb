"""A real cluster per test module (SPEC §8): its own redis-server, one fresh migrated MariaDB
database and three ``concert-hub serve`` nodes sharing both.

Each module gets its own Redis on a spare port, so a test may kill it and start it again on the
same port, or kill a node with ``kill -9``. Modules change the nodes' flags by overriding the
``cluster_flags`` fixture. When a test fails, the tail of every node's log and of Redis's log is
attached to its report.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.booking.conftest import call, event_body
from tests.conftest import ServerProcess, free_port, migrated_database_url_for
from tests.redis_server import RedisServer
from tests.server.stomp_clients import unique

NODE_NAMES = ("a", "b", "c")
VISA = {"payment": {"method": "card", "token": "tok_visa"}}
LOG_TAIL = 12_000


# -- the cluster -----------------------------------------------------------------------------


@dataclass
class Cluster:
    redis: RedisServer
    database_url: str
    nodes: dict[str, ServerProcess] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ServerProcess:
        return self.nodes[name]

    def by_node_id(self, node_id: str) -> ServerProcess:
        return next(n for n in self.nodes.values() if n.flags["node_id"] == node_id)

    def alive(self) -> list[ServerProcess]:
        return [n for n in self.nodes.values() if n.proc is not None and n.proc.poll() is None]


@pytest.fixture(scope="module")
def cluster_flags() -> dict[str, object]:
    """Extra ``serve`` flags for every node of the module's cluster (override per module)."""
    return {}


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, cluster_flags: dict[str, object]
) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("cluster")
    server = RedisServer(free_port(), workdir)
    server.start()
    try:
        for url in migrated_database_url_for("mariadb", workdir):
            built = Cluster(server, url)
            for name in NODE_NAMES:
                flags: dict[str, object] = {
                    "database_url": url, "redis_url": server.url, "node_id": f"node-{name}",
                    "rest_rate_per_ip": 100000, "rest_rate_per_user": 100000,
                    "guest_rate_per_ip": 100000, **cluster_flags,
                }  # fmt: skip
                node = ServerProcess(free_port(), free_port(), workdir / name, flags)
                node.workdir.mkdir()
                built.nodes[name] = node
            try:
                with ThreadPoolExecutor(len(built.nodes)) as pool:
                    for started in [pool.submit(n.start) for n in built.nodes.values()]:
                        started.result()
                wait_ready(built.alive(), 20)
                yield built
            finally:
                for node in built.nodes.values():
                    with contextlib.suppress(Exception):
                        node.stop()
    finally:
        server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the nodes' and Redis's logs to a failing test's report."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        built = getattr(item, "funcargs", {}).get("cluster")
        if isinstance(built, Cluster):
            for name, node in built.nodes.items():
                report.sections.append(
                    (f"node-{name} log ({node.log_path})", log_excerpt(node.log()))
                )
            report.sections.append((f"redis log ({built.redis.log_path})", built.redis.log()))
    return report


#: Lines a node repeats many times while Redis is away; a few of each are enough evidence.
NOISY = ("messages dropped", "redis unavailable")


def log_excerpt(text: str) -> str:
    """The tail of a node's log, with repeated Redis-outage warnings thinned out."""
    kept: list[str] = []
    seen = dict.fromkeys(NOISY, 0)
    for line in text.splitlines():
        noise = next((n for n in NOISY if n in line), None)
        if noise is not None:
            seen[noise] += 1
            if seen[noise] > 3:
                continue
        kept.append(line)
    thinned = ", ".join(f"{count} lines with {n!r}" for n, count in seen.items() if count > 3)
    head = f"(thinned out: {thinned}; the first 3 of each kept)\n" if thinned else ""
    return head + "\n".join(kept)[-LOG_TAIL:]


# -- waiting ---------------------------------------------------------------------------------


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
        time.sleep(interval)


def readyz(node: ServerProcess) -> tuple[int, Any]:
    try:
        return call(node, "GET", "/readyz", timeout=5)
    except OSError as exc:
        return 0, str(exc)


def wait_ready(nodes: list[ServerProcess], timeout: float) -> None:
    for node in nodes:
        wait_until(functools.partial(answers_ready, node), timeout, f"{node.http_url}/readyz 200")


def answers_ready(node: ServerProcess) -> bool:
    """Whether ``node``'s ``/readyz`` answers 200 (a check for :func:`wait_until`)."""
    return readyz(node)[0] == 200


# -- REST ------------------------------------------------------------------------------------


def create_event(node: ServerProcess, rows: int = 2, seats_per_row: int = 10) -> int:
    admin = node.token("root", "admin")
    body = event_body(rows=rows, seats_per_row=seats_per_row)
    status, body = call(node, "POST", "/api/admin/events", body, token=admin)
    assert status == 201, (status, body)
    return int(body["id"])


def rest_seats(node: ServerProcess, event_id: int) -> dict[str, Any]:
    status, body = call(node, "GET", f"/api/events/{event_id}/seats")
    assert status == 200, (node.http_url, status, body)
    return dict(body)


def hold(node: ServerProcess, event_id: int, user: str, seat_ids: list[str]) -> str:
    status, body = call(node, "POST", f"/api/events/{event_id}/holds", {"seats": seat_ids},
                        token=node.token(user))  # fmt: skip
    assert status == 201, (node.http_url, status, body)
    return str(body["hold_id"])


def release(node: ServerProcess, user: str, hold_id: str) -> None:
    status, body = call(node, "DELETE", f"/api/holds/{hold_id}", token=node.token(user))
    assert status in (200, 204), (node.http_url, status, body)


def buy(node: ServerProcess, user: str, hold_id: str) -> dict[str, Any]:
    key = {"Idempotency-Key": unique("k")}
    status, body = call(node, "POST", f"/api/holds/{hold_id}/checkout", VISA,
                        token=node.token(user), headers=key)  # fmt: skip
    assert status == 201, (node.http_url, status, body)
    assert body["status"] == "paid", body
    return dict(body)


def book(node: ServerProcess, event_id: int, seat_ids: list[str]) -> tuple[str, dict[str, Any]]:
    """Hold and pay for ``seat_ids`` as a fresh user; returns (user, order)."""
    user = unique("buyer")
    return user, buy(node, user, hold(node, event_id, user, seat_ids))


def numbered_topic(prefix: str) -> str:
    return f"/topic/cluster/{prefix}-{uuid.uuid4().hex[:12]}"
