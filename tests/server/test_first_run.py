"""First run (issue 14, item 16): a port already in use is one clear line naming the port and
the flag that changes it, and a non-zero exit, not a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SECRET, free_port


@pytest.mark.parametrize("taken", ["--port", "--stomp-port"])
def test_a_port_in_use_is_named_with_its_flag(tmp_path: Path, taken: str) -> None:
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
             "--secret", SECRET,
             "--database-url", f"sqlite+aiosqlite:///{tmp_path / 'db.db'}"],
            check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
    finally:
        holder.close()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("concert-hub:")]
    assert f"port {busy} is already in use" in line, line
    assert taken in line, line
