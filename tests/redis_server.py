"""A test-owned ``redis-server``: no persistence, its own port and working directory.

Tests never touch the machine's shared Redis on 6379 (other users' data lives there): what needs
Redis gets one of these, started and stopped by a fixture, so it may flush it, fill it, or kill
it and start it again on the same port.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.ports import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class RedisServer:
    """A ``redis-server`` child process without persistence."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def url_for(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, socket_timeout=2, socket_connect_timeout=2)

    def start(self, timeout: float = 10.0) -> None:
        """Start on :attr:`port`; if another process took that port meanwhile, on a new one."""
        for _ in range(3):
            if self._start(timeout):
                return
            self.port = free_port()
        raise RuntimeError(f"redis-server found no free port:\n{self.log()}")

    def _start(self, timeout: float) -> bool:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--dir", str(self.workdir)],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "Address already in use" in self.log():
                    return False
                raise RuntimeError(f"redis-server exited early:\n{self.log()}")
            client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
            try:
                if client.ping():
                    return True
            except redis.RedisError:
                time.sleep(0.05)
            finally:
                client.close()
        raise RuntimeError(f"redis-server did not answer on port {self.port}:\n{self.log()}")

    def kill(self) -> None:
        """Stop it the hard way (SIGKILL), as a crashed or unplugged Redis."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def flush(self, db: int) -> None:
        """Empty database ``db`` (this server is the test's own)."""
        client = self.client(db)
        try:
            client.flushdb()
        finally:
            client.close()

    def get(self, key: str) -> bytes | None:
        """Read one key of database 0."""
        client = self.client()
        try:
            value = client.get(key)
            return value if isinstance(value, bytes) else None
        finally:
            client.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no redis log: {exc})"
