"""A small journey run (scripts/bench_journey.py) as a smoke test of the benchmark's code.

200 buyers on two nodes sharing this session's redis-server and a fresh MariaDB database: every
buyer connects, joins the pre-queue, is admitted once the sale opens on node A, and ends with an
outcome; the seats sell out and the database holds no double sale. Completion and correctness
only: the figures are the benchmark's business, never this test's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MARIADB
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)
def test_a_small_journey_on_two_nodes_completes_without_a_double_sale(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    auth = MARIADB["user"] + (f":{MARIADB['password']}" if MARIADB["password"] else "")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_journey.py"),
         "--users", "200", "--seats", "100", "--nodes", "2", "--client-procs", "1",
         "--redis-url", redis_server.url,
         "--server-url", f"mysql+aiomysql://{auth}@{MARIADB['host']}:{MARIADB['port']}",
         "--max-seconds", "120", "--plot-dir", str(tmp_path / "plots"), "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert done.stdout, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert out["errors"] == [], out
    assert out["connected"] == out["joined"] == out["finished"] == 200
    outcomes = out["outcomes"]
    assert outcomes["error"] == outcomes["unfinished"] == 0, outcomes
    assert sum(outcomes.values()) == 200
    # the sale opened on node A reached node B: buyers of both nodes were admitted and bought
    assert all(paid > 0 for paid in out["paid_by_node"]), out["paid_by_node"]
    assert out["checkouts"] == outcomes["paid"]
    assert out["seats_sold"] == 100  # it sells out
    assert out["integrity"]["ok"], out["integrity"]
    assert out["seq_gaps"] == 0 and out["dropped"] == 0
    assert out["delta_spread_ms"]["max"] is not None  # observers on both nodes saw deltas
    assert out["node_exit_codes"] == [0, 0]
    assert [Path(p).name for p in out["plots"]] == ["journey.png"]
    assert done.returncode == 0
