"""Bad command-line input is one line on stderr and a non-zero exit, never a traceback (SPEC 1:
the CLI is the product's first surface), through the real ``concert-hub`` entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.ports import free_port


def concert_hub(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["migrate", "--database-url", "notaurl"], "--database-url"),
        (["migrate", "--database-url", "bogus://x"], "--database-url"),
        (["migrate", "--database-url", "sqlite:///sync.db"], "--database-url"),  # no asyncio
        (["migrate", "--database-url", "postgresql+asyncpg://u@127.0.0.1:1/x"], "--database-url"),
        (["serve", "--redis-url", "notaurl"], "--redis-url"),
        (["serve", "--redis-url", "redis://127.0.0.1:notaport/0"], "--redis-url"),
        (["serve", "--heartbeat-ms=-1,-1"], "--heartbeat-ms"),
        (["token", "--user", "x", "--ttl", "-100", "--secret", "s" * 32], "--ttl"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(args: list[str], flag: str, tmp_path: Path) -> None:
    if args[0] == "serve":
        args = [*args, "--port", str(free_port()), "--stomp-port", "0",
                "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"]  # fmt: skip
    done = concert_hub(*args, cwd=tmp_path)
    assert done.returncode == 2, done
    assert done.stderr.startswith(f"concert-hub: {flag}: "), done.stderr
    assert "Traceback" not in done.stderr and done.stdout == "", done


@pytest.mark.parametrize(
    "source", ["--url=http://127.0.0.1:1", "--file=missing.json", "--file=bad"]
)
def test_an_audit_it_cannot_read_is_one_line(source: str, tmp_path: Path) -> None:
    (tmp_path / "bad").write_text("garbage")
    done = concert_hub("audit", "verify", "1", source, cwd=tmp_path)
    assert done.returncode == 1, done
    assert done.stderr.startswith("concert-hub: audit: cannot read the audit"), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
