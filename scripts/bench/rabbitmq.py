"""RabbitMQ Web-STOMP as a fan-out target to compare with (``bench_fanout --target rabbitmq``).

``rabbitmq-plugins enable rabbitmq_web_stomp`` is run when ``ws://127.0.0.1:15674/ws`` does not
complete a WebSocket handshake (``scripts/rabbitmq_webstomp.sh enable`` does the same). The
server process is the ``beam.smp`` VM. RabbitMQ 3.10 keeps accepting sockets past its open-files
budget and then breaks (its memory monitors crash at EMFILE), so :func:`fd_headroom` tells the
benchmark how many subscribers it can open safely.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from bench.servers import SetupError
from concert_hub_client.websocket import WebSocketClient

log = logging.getLogger("bench")

WS_URL = "ws://127.0.0.1:15674/ws"
DESTINATION = "/topic/bench"


def ws_handshake_ok(host: str, port: int, path: str, timeout: float = 2.0) -> bool:
    """Does ``ws://host:port/path`` accept a WebSocket upgrade offering ``v12.stomp``?"""
    ws = WebSocketClient(f"{host}:{port}", path, ["v12.stomp"])
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(ws.data_to_send())
            ws.receive_data(s.recv(1024))
    except Exception:
        return False
    return ws.open


def enable_web_stomp(host: str, port: int, path: str, timeout: float) -> None:
    if ws_handshake_ok(host, port, path):
        return
    if not shutil.which("rabbitmq-plugins"):
        raise SetupError("rabbitmq-plugins not found and Web-STOMP is not answering")
    log.info("enabling rabbitmq_web_stomp")
    try:
        res = subprocess.run(
            ["rabbitmq-plugins", "enable", "rabbitmq_web_stomp"],
            check=False, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise SetupError("rabbitmq-plugins enable timed out") from exc
    if res.returncode != 0:
        raise SetupError(
            f"rabbitmq-plugins enable failed ({res.returncode}): "
            + (res.stderr or res.stdout).strip()[-500:]
        )
    deadline = time.monotonic() + timeout
    while not ws_handshake_ok(host, port, path):
        if time.monotonic() > deadline:
            raise SetupError(f"ws://{host}:{port}{path} did not answer within {timeout} s")
        time.sleep(0.5)


def find_beam_pid() -> int | None:
    try:
        out = subprocess.run(
            ["pgrep", "-f", "beam.smp"], check=False, capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    for pid_s in out.split():
        try:
            cmdline = Path(f"/proc/{pid_s}/cmdline").read_bytes()
        except OSError:
            continue
        if b"rabbit" in cmdline:
            return int(pid_s)
    if shutil.which("rabbitmqctl"):
        try:
            status = subprocess.run(
                ["rabbitmqctl", "status"], check=False, capture_output=True, text=True, timeout=60
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        for line in status.splitlines():
            if "OS PID" in line:
                digits = "".join(ch for ch in line.split(":")[-1] if ch.isdigit())
                if digits:
                    return int(digits)
    return None


def _open_files(pid: int) -> tuple[str, str] | None:
    """(soft, hard) open-files limit of ``pid`` as /proc shows them."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return soft, hard
    return None


def fd_headroom(pid: int | None, margin: int = 64) -> int | None:
    """How many more sockets ``pid`` can open before hitting its soft open-files limit."""
    if pid is None or (limits := _open_files(pid)) is None or limits[0] == "unlimited":
        return None
    try:
        in_use = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    return int(limits[0]) - in_use - margin


def limit_hint(pid: int | None) -> str | None:
    """What RabbitMQ says about its socket budget (the 1,024 open-files default)."""
    parts = []
    if pid is not None and (limits := _open_files(pid)):
        parts.append(f"beam.smp open-files limit {limits[0]} (hard {limits[1]})")
    for logfile in sorted(Path("/var/log/rabbitmq").glob("rabbit@*.log")):
        if logfile.name.endswith("_upgrade.log"):
            continue
        last = None
        with contextlib.suppress(OSError), logfile.open(errors="replace") as fh:
            for line in fh:
                if "Limiting to approx" in line:
                    last = line
        if last:
            parts.append("RabbitMQ log: " + last[last.index("Limiting") :].strip())
            break
    return "; ".join(parts) or None
