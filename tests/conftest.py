"""Shared fixtures: real server processes on free ports.

``server`` is one node with default limits for the whole session; ``make_server(**flags)`` starts
a fresh node with extra flags (``max_connections=3`` → ``--max-connections 3``) for tests that need
tight limits, and stops it after the test.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  (imported early on purpose; see below)
import pymysql  # aiomysql's own dependency; sync is right for fixtures
import pytest
import schemathesis.reporting.html.writer  # imported early on purpose, as hypothesis is
import schemathesis.reporting.junitxml  # (the same)

from booking.keyring import Keyring
from server.auth import TokenAuthority
from tests.ports import free_port
from tests.redis_server import RedisServer

__all__ = ["free_port"]  # re-exported: test modules import it from here

# Why hypothesis is imported above: on CPython 3.11.7, after the redis client has run in a test,
# pytest's assertion rewriter fails to compile a module imported later with "SystemError: AST
# constructor recursion depth mismatch" (a CPython AST-validation state bug). Test modules and
# conftests are compiled at collection; the modules rewritten late are hypothesis, imported by
# its plugin's end-of-session summary, and schemathesis's report writers, imported by its xdist
# plugin's session finish (in every worker too). Importing them here keeps those compiles at
# start-up.
try:
    import schemathesis.reporting.allure  # noqa: F401  (the same)
except ImportError:
    # Without allure-pytest the Allure writer cannot load, and a failed import is tried (and
    # compiled) again at session finish, where a serial run of tests/waiting_room failed with
    # the SystemError rather than an ImportError. Marked absent, the module is an ImportError
    # there, which schemathesis takes as "no Allure".
    sys.modules["schemathesis.reporting.allure"] = None  # type: ignore[assignment]

SECRET = "test-secret-not-for-production"

#: Where the MariaDB tests connect (scripts/setup --test makes sure a server answers there).
#: pymysql.connect() keywords of the test MariaDB server.
MARIADB: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 3306,
    "user": os.environ.get("CONCERT_HUB_TEST_MARIADB_USER", "root"),
    "password": os.environ.get("CONCERT_HUB_TEST_MARIADB_PASSWORD", ""),
}
BACKENDS = ("sqlite", "mariadb")


def rest(
    server: ServerProcess,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15.0,
) -> tuple[int, Any]:
    """One REST call: (status, decoded JSON body or ``None``); never raises for a 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.http_url}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    return status, (json.loads(raw) if raw else None)


def listening_ports() -> set[int]:
    """TCP ports in state LISTEN on this machine (IPv4), from /proc/net/tcp."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":  # TCP_LISTEN
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@dataclass
class ServerProcess:
    """A ``concert-hub serve`` child process and how to reach it."""

    http_port: int
    stomp_port: int
    workdir: Path
    flags: dict[str, object] = field(default_factory=dict)
    host: str = "127.0.0.1"
    secret: str = SECRET
    proc: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.http_port}/ws"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def token(self, user: str, role: str = "user", ttl: int = 3600) -> str:
        return TokenAuthority(Keyring(self.secret)).issue(user, role, ttl)

    def command(self) -> list[str]:
        args = [
            sys.executable, "-m", "server", "serve",
            "--host", self.host,
            "--port", str(self.http_port),
            "--stomp-port", str(self.stomp_port),
            "--secret", self.secret,
            "--log-level", "info",
        ]  # fmt: skip
        if "database_url" not in self.flags:
            args += ["--database-url", f"sqlite+aiosqlite:///{self.workdir / 'test.db'}"]
        if "max_held_seats_per_ip" not in self.flags:
            # Every test client is 127.0.0.1: one "client IP" stands for all of a test's buyers.
            args += ["--max-held-seats-per-ip", "0"]
        for name, value in self.flags.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                args.append(flag)
            else:
                args += [flag, str(value)]
        return args

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait for ``/healthz``. Should a port have been taken since it was found
        free (by another xdist worker, or a client's ephemeral port), start on fresh ports."""
        for _ in range(3):
            if self._start(timeout):
                return
            self.http_port = free_port()
            if self.stomp_port:
                self.stomp_port = free_port()
        raise RuntimeError(f"server found no free ports:\n{self.log()}")

    def _start(self, timeout: float) -> bool:
        logged = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if b"address already in use" in self.log_path.read_bytes()[logged:]:
                    return False
                raise RuntimeError(f"server exited early:\n{self.log()}")
            if self._listening():
                return True
            time.sleep(0.05)
        self.proc.kill()  # never leave a node running behind a failed test
        self.proc.wait()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def _listening(self) -> bool:
        """``/healthz`` answers and, when enabled, the STOMP/TCP port listens (the node opens
        it after the HTTP one). The port is looked up, not connected to: a probe connection
        would count against tests of connection limits."""
        try:
            with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=1):
                pass
        except OSError:
            return False
        return not self.stomp_port or self.stomp_port in listening_ports()

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(free_port(), free_port(), tmp_path_factory.mktemp("server"))
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of this test session (of each xdist worker): tests may flush it."""
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(**flags: object) -> ServerProcess:
        workdir = tmp_path / f"node{len(started)}"
        workdir.mkdir()
        proc = ServerProcess(free_port(), free_port(), workdir, flags)
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def _fresh_mariadb_database(prefix: str = "ch_test", collation: str = "utf8mb4_bin") -> str:
    """Create an empty MariaDB database with a unique name; returns its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = pymysql.connect(**MARIADB)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE {collation}")
    finally:
        conn.close()
    return name


def _drop_mariadb_database(name: str) -> None:
    conn = pymysql.connect(**MARIADB)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
    finally:
        conn.close()


def _mariadb_url(name: str) -> str:
    m = MARIADB
    auth = f"{m['user']}:{m['password']}" if m["password"] else str(m["user"])
    return f"mysql+aiomysql://{auth}@{m['host']}:{m['port']}/{name}?charset=utf8mb4"


def database_url_for(backend: str, workdir: Path, collation: str = "utf8mb4_bin") -> Generator[str]:
    """A fresh, empty database of ``backend``; dropped afterwards (MariaDB, created with
    ``collation``, the README's ``utf8mb4_bin`` unless a test asks for another)."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / f'db-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = _fresh_mariadb_database(collation=collation)
    try:
        yield _mariadb_url(name)
    finally:
        _drop_mariadb_database(name)


def migrated_database_url_for(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh database of ``backend`` holding the migrated schema; dropped afterwards (MariaDB).

    It is a copy of a template that this test process migrated once with ``concert-hub migrate``
    (:func:`migrate`): the same tables, indexes, foreign keys and rows (the Alembic revision).
    Migrating in a subprocess for each test cost about 1.7 s a test, most of it the CLI's
    imports, which was a third of the booking suite's time; a copy costs a few milliseconds on
    SQLite and a few hundred on MariaDB. Tests of migrating itself use :func:`database_url_for`
    and :func:`migrate`.
    """
    template = _migrated_template(backend)
    if backend == "sqlite":
        path = workdir / f"db-{uuid.uuid4().hex[:8]}.db"
        with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(path)) as copy:
            source.backup(copy)
        yield f"sqlite+aiosqlite:///{path}"
        return
    name = _fresh_mariadb_database()
    try:
        _copy_mariadb_database(template, name)
        yield _mariadb_url(name)
    finally:
        _drop_mariadb_database(name)


#: This process's migrated templates, by backend: a SQLite file's path or a MariaDB database's
#: name (dropped when the process exits).
_TEMPLATES: dict[str, str] = {}


def _migrated_template(backend: str) -> str:
    if backend not in _TEMPLATES:
        if backend == "sqlite":
            path = Path(tempfile.mkdtemp(prefix="ch-template-")) / "migrated.db"
            migrate(f"sqlite+aiosqlite:///{path}")
            atexit.register(shutil.rmtree, path.parent, True)
            _TEMPLATES[backend] = str(path)
        else:
            name = _fresh_mariadb_database("ch_template")
            atexit.register(_drop_mariadb_database, name)
            migrate(_mariadb_url(name))
            _TEMPLATES[backend] = name
    return _TEMPLATES[backend]


def _copy_mariadb_database(source: str, target: str) -> None:
    """Create ``source``'s tables in ``target`` as ``SHOW CREATE TABLE`` gives them (with their
    foreign keys, which ``CREATE TABLE … LIKE`` would drop), and copy their rows."""
    conn = pymysql.connect(**MARIADB, database=target)
    try:
        with conn.cursor() as cur:
            cur.execute("SET foreign_key_checks = 0")  # the tables come in any order
            cur.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                (source,),
            )
            for (table,) in cur.fetchall():
                cur.execute(f"SHOW CREATE TABLE `{source}`.`{table}`")
                (_, ddl) = cur.fetchone()
                cur.execute(ddl)  # unqualified, so in ``target``, references included
                cur.execute(f"INSERT INTO `{table}` SELECT * FROM `{source}`.`{table}`")
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database, once on SQLite and once on MariaDB (no schema yet)."""
    yield from database_url_for(request.param, tmp_path)


@pytest.fixture(params=BACKENDS)
def migrated_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated database, once on SQLite and once on MariaDB (for an in-process booking
    core, or for ``make_server(database_url=…)``)."""
    yield from migrated_database_url_for(request.param, tmp_path)


def migrate(url: str) -> None:
    """Run ``concert-hub migrate`` against ``url`` (what an operator does before ``serve``)."""
    subprocess.run(
        [sys.executable, "-m", "server", "migrate", "--database-url", url],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def booking_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A node per backend (module-wide) with a migrated, empty database and generous REST
    rate limits; tests create their own events through the admin API."""
    workdir = tmp_path_factory.mktemp(f"booking-{request.param}")
    for url in migrated_database_url_for(request.param, workdir):
        proc = ServerProcess(
            free_port(), free_port(), workdir,
            {"database_url": url, "rest_rate_per_ip": 100000, "rest_rate_per_user": 100000,
             "guest_rate_per_ip": 100000},
        )  # fmt: skip
        proc.start()
        try:
            yield proc
        finally:
            proc.stop()


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """Where ``scripts/test`` installed the Node test dependencies (@stomp/stompjs, ws)."""
    path = Path(__file__).parent / "js" / "node_modules"
    if not path.is_dir():
        pytest.fail("tests/js/node_modules missing: run scripts/test (it runs npm ci)")
    return path


os.environ.setdefault("PYTHONUNBUFFERED", "1")
