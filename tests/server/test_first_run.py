"""First run (issue 14, item 16): a port already in use is one clear line naming the port and
the flag that changes it, and a non-zero exit, not a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SECRET, free_port, migrated_database_url_for
from tests.redis_server import RedisServer


def serve_with_a_port_taken(
    workdir: Path, taken: str, *flags: str
) -> tuple[int, subprocess.CompletedProcess[str]]:
    """``serve`` with the port of flag ``taken`` held by another socket: (that port, result)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = holder.getsockname()[1]
    ports = {"--port": free_port(), "--stomp-port": free_port()}
    ports[taken] = busy
    try:
        result = subprocess.run(
            [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1",
             "--port", str(ports["--port"]), "--stomp-port", str(ports["--stomp-port"]),
             "--secret", SECRET, *flags],
            check=False, capture_output=True, text=True, timeout=60, cwd=workdir,
        )  # fmt: skip
    finally:
        holder.close()
    return busy, result


def assert_named(busy: int, taken: str, result: subprocess.CompletedProcess[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("concert-hub:")]
    assert f"port {busy} is already in use" in line, line
    assert taken in line, line


@pytest.mark.parametrize("taken", ["--port", "--stomp-port"])
def test_a_port_in_use_is_named_with_its_flag(tmp_path: Path, taken: str) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'db.db'}"
    busy, result = serve_with_a_port_taken(tmp_path, taken, "--database-url", database)
    assert_named(busy, taken, result)


def test_a_refused_embedded_start_leaves_no_files_behind(tmp_path: Path) -> None:
    """The README's first run, with 8080 taken: the node used to create and migrate
    ``concert-hub.db`` and write ``concert-hub.secret`` before it found the port taken."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    busy = holder.getsockname()[1]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "server", "serve", "--host", "127.0.0.1",
             "--port", str(busy), "--stomp-port", "0"],
            check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
    finally:
        holder.close()
    assert_named(busy, "--port", result)
    assert list(tmp_path.iterdir()) == []


def test_a_cluster_node_with_a_port_in_use_exits_too(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """On the way out the Redis backplane's loops stop even when a command was in flight (the
    node publishes at start), which redis-py turns from a cancellation into a connection
    error: the node used to hang there instead of exiting."""
    for url in migrated_database_url_for("mariadb", tmp_path):
        busy, result = serve_with_a_port_taken(
            tmp_path, "--stomp-port", "--database-url", url, "--redis-url", redis_server.url_for(5)
        )
        assert_named(busy, "--stomp-port", result)
