"""SIGTERM (issue 14, item 11): ``/readyz`` turns 503 at once and the HTTP listener stops
accepting with the STOMP/TCP one, while the node drains its STOMP sessions."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.ports import free_port
from tests.server.stomp_clients import RawTcp, log_tail, unique


def test_sigterm_turns_readyz_503_and_stops_the_http_listener_at_once(
    make_server: Callable[..., ServerProcess],
) -> None:
    node = make_server()
    assert node.proc is not None
    # A balancer's kept-alive connection, ready before the signal.
    balancer = http.client.HTTPConnection(node.host, node.http_port, timeout=5)
    balancer.request("GET", "/readyz")
    ready = balancer.getresponse()
    assert (ready.status, json.loads(ready.read())["status"]) == (200, "ready")
    # Two sessions hold the drain open: one reads its ERROR, the other reads nothing and
    # never closes, so the node drains for its full grace period.
    reader = RawTcp.to(node)
    deaf = RawTcp.to(node)
    try:
        assert reader.connect(token=node.token(unique("r"))).command == "CONNECTED"
        assert deaf.connect(token=node.token(unique("d"))).command == "CONNECTED"
        node.proc.terminate()  # SIGTERM
        # The sessions are being told: the node is draining.
        assert reader.read_until("ERROR").get("message") == "server shutting down"

        # The connection the balancer has gets a 503 from /readyz ...
        balancer.request("GET", "/readyz")
        answer = balancer.getresponse()
        body = json.loads(answer.read())
        assert answer.status == 503, body
        assert body["failed"].get("node") == "stopping", body
        # ... while both listeners refuse new connections.
        for port in (node.http_port, node.stomp_port):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((node.host, port), timeout=2).close()

        assert node.proc.wait(15) == 0, log_tail(node)
    finally:
        balancer.close()
        reader.close()
        deaf.close()


def test_a_thread_left_by_a_library_does_not_hold_a_stopped_node(tmp_path: Path) -> None:
    """Once the node has stopped, the process ends within SPEC §1's 10 s even if a non-daemon
    thread would keep the interpreter waiting (as one of a library's did, in a CI run)."""
    node = ServerProcess(free_port(), free_port(), tmp_path, {})
    serve = node.command()[1:]  # -m server serve ...
    stuck = (
        "import runpy, sys, threading, time;"
        "threading.Thread(target=time.sleep, args=(3600,), name='stuck-thread').start();"
        f"sys.argv = {['server', *serve[2:]]!r};"
        "runpy.run_module('server', run_name='__main__')"
    )
    node.command = lambda: [sys.executable, "-c", stuck]  # type: ignore[method-assign]
    node.start()
    assert node.stop(timeout=10) == 0
    log = node.log()
    assert "stopped" in log and "exit held up" in log and "stuck-thread" in log, log[-2000:]


def test_a_sigterm_while_the_first_start_migrates_stops_cleanly(tmp_path: Path) -> None:
    """SPEC 1: exit 0 on SIGTERM, also while an embedded node still migrates its new
    database: the migration finishes, the node stops, and the database is whole (the default
    signal handler ended the process mid-migration: exit 143, and a file that neither
    ``serve`` nor ``migrate`` could use again)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(free_port()), "--stomp-port",
         "0", "--database-url", url, "--log-level", "info"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line.decode(errors="replace"))
        if "Running upgrade" in seen[-1]:
            proc.send_signal(signal.SIGTERM)
            break
    rest, _ = proc.communicate(timeout=30)
    log = "".join(seen) + rest.decode(errors="replace")
    assert proc.returncode == 0, log
    assert "Traceback" not in log, log
    migrated = subprocess.run(
        [sys.executable, "-m", "server", "migrate", "--database-url", url],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
