"""Bad command-line input is one line on stderr and a non-zero exit, never a traceback (SPEC 1:
the CLI is the product's first surface), through the real ``concert-hub`` entry point."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy

from tests.conftest import ServerProcess, database_url_for, migrate, rest
from tests.ports import free_port
from tests.redis_server import RedisServer


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


def _serve(url: str, cwd: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return concert_hub("serve", "--port", str(free_port()), "--stomp-port", "0",
                       "--secret", "s" * 32, "--database-url", url, *more, cwd=cwd)  # fmt: skip


def test_a_node_refuses_a_database_it_cannot_use_in_one_line(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Outside embedded mode a node does not migrate: on a database that was never migrated it
    says to run ``concert-hub migrate``; on one it cannot reach, why (exit 1, no traceback)."""
    for url in database_url_for("mariadb", tmp_path):
        for workers in ("1", "2"):
            done = _serve(url, tmp_path, "--workers", workers, "--redis-url", redis_server.url)
            last = done.stderr.strip().splitlines()[-1]
            assert done.returncode == 1, done
            assert last.startswith("concert-hub: the database at "), done.stderr
            assert last.endswith("run `concert-hub migrate`"), last
            assert "Traceback" not in done.stderr, done.stderr
    unreachable = f"mysql+aiomysql://root@127.0.0.1:{free_port()}/nothing"
    done = _serve(unreachable, tmp_path)
    assert done.returncode == 1, done
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("concert-hub: cannot reach the database at 127.0.0.1:")
    ), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    done = concert_hub("migrate", "--database-url", unreachable, cwd=tmp_path)
    assert (done.returncode, "Traceback" in done.stderr) == (1, False), done
    assert done.stderr.startswith("concert-hub: cannot migrate the database at "), done.stderr


def test_a_node_starts_on_a_database_a_newer_version_migrated(
    tmp_path: Path, make_server: Callable[..., ServerProcess]
) -> None:
    """A rolling upgrade: the new version's migration ran, old nodes keep starting."""
    for url in database_url_for("mariadb", tmp_path):
        migrate(url)
        engine = sqlalchemy.create_engine(url.replace("+aiomysql", "+pymysql"))
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = 'newer'"))
        engine.dispose()
        node = make_server(database_url=url)
        assert rest(node, "GET", "/readyz")[0] == 200


def test_a_token_is_never_signed_with_a_secret_made_up_for_it(tmp_path: Path) -> None:
    """Run where no node keeps its secret, ``token`` used to create one and print a token every
    node refused (401, signed with another secret); it now says where to run it."""
    done = concert_hub("token", "--user", "alice", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.startswith("concert-hub: no secret at "), done.stderr
    assert "the directory of the node's database" in done.stderr
    assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []
    (tmp_path / "concert-hub.secret").write_text("s" * 43 + "\n")  # as the node leaves it
    signed = concert_hub("token", "--user", "alice", cwd=tmp_path)
    assert signed.returncode == 0 and signed.stdout.count(".") == 2, signed
