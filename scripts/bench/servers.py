"""Child processes a benchmark starts: concert-hub nodes and a private redis-server.

Each child runs in its own process group with its output in a log file, is registered in
:data:`ACTIVE_CHILDREN` so an interrupted run (or the watchdog) can kill it, and is stopped with
SIGTERM, then SIGKILL. Only 127.0.0.1 is ever used. A benchmark never touches the machine's shared
Redis: what needs Redis gets a redis-server of its own (:func:`start_redis`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
BENCH_SECRET = "bench-secret"
#: The interpreter of the project's virtualenv (scripts/setup makes it), else this one.
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
DEFAULT_PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


class SetupError(Exception):
    """A server could not be started or did not become ready."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_status(port: int, path: str, timeout: float = 2.0) -> int | None:
    """Status of ``GET http://127.0.0.1:port/path``; ``None`` when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def log_summary(path: Path, limit: int = 10) -> dict[str, Any]:
    """A child runs at --log-level warning, so every line it logged deserves a look."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return {"lines": 0, "first": []}
    return {"lines": len(lines), "first": [ln[:300] for ln in lines[:limit]]}


class ChildProcess:
    """A server started by a benchmark (its own process group, output to ``log_path``)."""

    def __init__(self, cmd: list[str], log_path: Path, what: str, cwd: Path = REPO_ROOT) -> None:
        self.cmd = cmd
        self.log_path = log_path
        self.what = what
        log.info("starting %s: %s", what, shlex.join(cmd))
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        ACTIVE_CHILDREN.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, ready: Callable[[], bool], timeout: float, check: str) -> None:
        """Poll ``ready``; SetupError when the child dies or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                raise SetupError(
                    f"{self.what} exited with {self.proc.returncode} during start-up: "
                    + tail(self.log_path, 15)
                )
            if time.monotonic() > deadline:
                raise SetupError(f"{self.what}: {check} within {timeout} s: " + tail(self.log_path))
            time.sleep(0.2)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 12 s; returns the exit code and logs a bad one."""
        proc = self.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=12)
            except subprocess.TimeoutExpired:
                log.warning("%s did not exit within 12 s of SIGTERM; killing it", self.what)
                self.kill()
                proc.wait(timeout=5)
        else:
            self.kill()  # the leader exited; make sure nothing of its group survives
        if self in ACTIVE_CHILDREN:
            ACTIVE_CHILDREN.remove(self)
        code = proc.returncode
        log.info("%s exited with %s", self.what, code)
        if code not in (0, -signal.SIGTERM):
            log.warning("%s exit code %s; log tail:\n%s", self.what, code, tail(self.log_path))
        return code


ACTIVE_CHILDREN: list[ChildProcess] = []


def serve_cmd(
    python: str, port: int, database_url: str, secret: str, flags: Sequence[str] = ()
) -> list[str]:
    """``concert-hub serve`` on 127.0.0.1:``port`` without STOMP/TCP, logging warnings only."""
    return [
        python, "-m", "server", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--stomp-port", "0",
        "--database-url", database_url, "--secret", secret, "--log-level", "warning",
        # every simulated client connects from 127.0.0.1: no per-IP caps
        "--max-held-seats-per-ip", "0", "--max-connections-per-ip", "0",
        "--max-http-connections-per-ip", "0",
        *flags,
    ]  # fmt: skip


def migrate(python: str, database_url: str) -> None:
    """``concert-hub migrate`` (a node in cluster mode does not migrate SQLite by itself)."""
    cmd = [python, "-m", "server", "migrate", "--database-url", database_url]
    try:
        done = subprocess.run(
            cmd, cwd=REPO_ROOT, check=False, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as exc:
        raise SetupError(f"{shlex.join(cmd)} timed out") from exc
    if done.returncode != 0:
        raise SetupError(
            f"migrate failed ({done.returncode}): " + (done.stderr or done.stdout).strip()[-500:]
        )


def start_node(
    python: str,
    database_url: str,
    secret: str,
    flags: Sequence[str],
    log_path: Path,
    *,
    what: str = "server",
    ready_path: str = "/healthz",
    timeout: float = 60.0,
) -> tuple[ChildProcess, int]:
    """Start a concert-hub node on a free port and wait until ``ready_path`` answers 200."""
    port = free_port()
    child = ChildProcess(serve_cmd(python, port, database_url, secret, flags), log_path, what)
    try:
        child.wait_ready(
            lambda: http_status(port, ready_path) == 200, timeout, f"GET {ready_path} not 200"
        )
    except BaseException:
        child.stop()
        raise
    return child, port


def children_of(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (a node's e-mail renderer, or its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = (entry / "stat").read_text()
                if int(raw[raw.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def worker_pids(pid: int) -> list[int]:
    """The worker processes of the node ``pid`` (``--workers`` > 1; none for one worker)."""
    found = []
    for child in children_of(pid):
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return sorted(found)


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(workdir: Path, timeout: float = 60.0) -> tuple[ChildProcess, int]:
    """A private redis-server on a free port, without persistence, working in ``workdir``."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SetupError("redis-server not found (scripts/setup --test installs it)")
    port = free_port()
    cmd = [binary, "--port", str(port), "--bind", "127.0.0.1"]
    cmd += ["--save", "", "--appendonly", "no", "--dir", str(workdir)]
    child = ChildProcess(cmd, workdir / "redis.log", "redis-server", cwd=workdir)
    try:
        child.wait_ready(lambda: redis_ping(port), timeout, "no PONG")
    except BaseException:
        child.stop()
        raise
    return child, port


def mint_tokens(secret: str, grants: Sequence[tuple[str, str]], ttl: int = 7200) -> list[str]:
    """Signed tokens for ``(user, role)`` pairs, as ``concert-hub token`` makes them."""
    from booking.keyring import Keyring  # noqa: PLC0415  (only the main process needs it)
    from server.auth import TokenAuthority  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns about the short fixed bench secret
        authority = TokenAuthority(Keyring(secret))
        return [authority.issue(user, role, ttl) for user, role in grants]
