"""The admission log and the queue analytics through a real node, with either waiting room
(in-process on SQLite, Redis on MariaDB) (issue 15).

After a sale with a pre-queue, the public audit's hash chain covers every admission (opaque
queue id, position, time, previous hash), ``concert-hub audit verify EVENT`` passes against the
node and fails on an edited or reordered entry; with Redis, a log edited where it is stored
makes the node refuse to serve it (500 ``audit_broken``) and the command fail. The admin stats
count abandonment (admissions that lapsed unused) and the time-to-admission histogram.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from server.cli import main as cli_main
from tests.conftest import ServerProcess, free_port, migrated_database_url_for, rest
from tests.redis_server import RedisServer

PATIENCE_S = 60  # a bound on waiting for what must come, not a timing claim
TTL_S = 10  # the shortest admission the server allows: unused ones lapse (abandonment)


@pytest.fixture(params=["in-process", "redis"])
def node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, RedisServer | None]]:
    workdir = tmp_path_factory.mktemp("audit")
    flags: dict[str, object] = {"admission_ttl_s": TTL_S}
    if request.param == "in-process":
        proc = ServerProcess(free_port(), free_port(), workdir, flags)
        proc.start()
        yield proc, None
        proc.stop()
        return
    redis: RedisServer = request.getfixturevalue("redis_server")
    redis.flush(4)
    for url in migrated_database_url_for("mariadb", workdir):
        flags |= {"database_url": url, "redis_url": redis.url_for(4), "node_id": "solo"}
        proc = ServerProcess(free_port(), free_port(), workdir, flags)
        proc.start()
        try:
            yield proc, redis
        finally:
            proc.stop()


def iso_in(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def eventually(check: Any, what: str) -> Any:
    deadline = time.monotonic() + PATIENCE_S
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {PATIENCE_S}s: {what}"
        time.sleep(0.2)


def test_every_admission_is_in_the_verified_chain_and_the_console_counts_the_waits(
    node: tuple[ServerProcess, RedisServer | None], tmp_path: Path
) -> None:
    server, redis = node
    admin = server.token("admin", "admin")
    status, event = rest(server, "POST", "/api/admin/events", {
        "name": "Audited", "venue": "Hall", "starts_at": iso_in(86400),
        "sale_opens_at": iso_in(3), "sale_closes_at": iso_in(3600), "status": "on_sale",
        "waiting_room": True, "admission_rate": 4, "max_active_shoppers": 100,
        "layout": {"tiers": [{"name": "A", "price_cents": 5000}],
                   "sections": [{"name": "S", "rows": 2, "seats_per_row": 10, "tier": "A"}]},
    }, token=admin)  # fmt: skip
    assert status == 201, event
    event_id = int(event["id"])
    early = [f"early{i}" for i in range(6)]
    for user in early:  # the pre-queue
        assert (
            rest(server, "POST", f"/api/events/{event_id}/queue", token=server.token(user))[0]
            == 200
        )
    eventually(lambda: rest(server, "GET", f"/api/events/{event_id}/queue/me",
                            token=server.token("early0"))[1]["state"] != "waiting"
               or None, "the sale opening")  # fmt: skip
    late = [f"late{i}" for i in range(3)]
    for user in late:  # first come, first served after opening
        assert (
            rest(server, "POST", f"/api/events/{event_id}/queue", token=server.token(user))[0]
            == 200
        )

    def audited() -> dict[str, Any] | None:
        status, doc = rest(server, "GET", f"/api/events/{event_id}/queue/audit")
        assert status == 200, doc
        return doc if len(doc["admissions"]) == len(early) + len(late) else None

    doc = eventually(audited, "every user admitted and in the log")
    assert [e["position"] for e in doc["admissions"]] == list(range(1, 10))
    placed = [e["queue_id"] for e in doc["log"]]
    admitted = [e["queue_id"] for e in doc["admissions"]]
    assert admitted[:6] == placed  # the pre-queue is admitted in its placement order
    assert len(set(admitted)) == 9 and not any(u in json.dumps(doc) for u in early + late)
    assert cli_main(["audit", "verify", str(event_id), "--url", server.http_url]) == 0

    # Edited or reordered, a saved copy fails.
    for tamper in ("edit", "swap"):
        bad = copy.deepcopy(doc)
        if tamper == "edit":
            bad["admissions"][7]["time"] += 0.5
        else:
            bad["admissions"][6], bad["admissions"][7] = bad["admissions"][7], bad["admissions"][6]
        saved = tmp_path / f"{tamper}.json"
        saved.write_text(json.dumps(bad))
        assert cli_main(["audit", "verify", str(event_id), "--file", str(saved)]) == 1

    # Nobody holds: every admission lapses unused (abandonment); and everyone was admitted
    # soon after joining (time to admission).
    def queue_stats() -> dict[str, Any]:
        stats = rest(server, "GET", "/api/admin/stats", token=admin)[1]
        found = next(e for e in stats["events"] if e["event_id"] == event_id)
        queue_part: dict[str, Any] = found["queue"]
        return queue_part

    queue = eventually(lambda: (q := queue_stats())["abandoned"] == 9 and q,
                       "the unused admissions lapsing")  # fmt: skip
    hist = queue["time_to_admission"]
    assert sum(hist["counts"]) == 9 and len(hist["counts"]) == len(hist["edges_s"]) + 1
    assert hist["counts"][0] + hist["counts"][1] == 9, hist  # all within 30 s

    if redis is not None:
        # The log edited where it is kept (two admissions' times swapped): the node refuses
        # to publish it, loudly, and the operator's command fails.
        client = redis.client(4)
        (key,) = client.keys(f"*{{wr:{event_id}}}:log")
        first, second = client.lindex(key, 0), client.lindex(key, 8)
        # redis-py annotates lset's value as str, but it takes the bytes lindex returns as is.
        client.lset(key, 0, cast(str, second))
        client.lset(key, 8, cast(str, first))
        status, problem = rest(server, "GET", f"/api/events/{event_id}/queue/audit")
        assert status == 500 and problem["type"].endswith("audit_broken"), problem
        assert any("out of order" in p for p in problem["problems"]), problem
        assert cli_main(["audit", "verify", str(event_id), "--url", server.http_url]) == 1
