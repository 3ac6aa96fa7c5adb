"""scripts/bench_send_floor.py runs and reports every figure (its code, not its figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_send_floor_benchmark_reports_each_transport() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_send_floor.py"),
         "--sockets", "50", "--rounds", "2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    for figure in ("tcp_loopback_us", "unix_us", "syscall_us"):
        assert out[figure] > 0, out
    assert set(out["delta_ms_at"]) == {"1000", "10000", "20000"}
    assert abs(out["delta_ms_at"]["10000"] - out["tcp_loopback_us"] * 10) <= 0.1
