"""A fresh MariaDB database for one benchmark run, dropped at the end whatever happens."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql  # aiomysql's own dependency (typed by types-PyMySQL)
from sqlalchemy.engine import make_url

#: The MariaDB server the tests use too (scripts/setup --test makes sure one answers).
DEFAULT_SERVER_URL = "mysql+aiomysql://root@127.0.0.1:3306"


def _admin(server_url: str) -> Any:
    u = make_url(server_url)
    return pymysql.connect(
        host=u.host or "127.0.0.1",
        port=u.port or 3306,
        user=u.username or "root",
        password=u.password or "",
        connect_timeout=10,
        read_timeout=60,
        write_timeout=60,
    )


def _execute(server_url: str, *statements: str) -> None:
    conn = _admin(server_url)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def create_database(
    server_url: str = DEFAULT_SERVER_URL, prefix: str = "ch_bench"
) -> tuple[str, str]:
    """An empty utf8mb4 database ``<prefix>_<hex>``; returns (name, SQLAlchemy URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _execute(server_url, f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    url = make_url(server_url).set(database=name, query={"charset": "utf8mb4"})
    return name, url.render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    # never wait forever on a lock held by a connection that is still closing
    _execute(server_url, "SET SESSION lock_wait_timeout = 20", f"DROP DATABASE IF EXISTS {name}")


@contextlib.contextmanager
def fresh_database(server_url: str, out: dict[str, Any], *, keep: bool = False) -> Iterator[str]:
    """A database of its own for one run (its URL), dropped afterwards unless ``keep``: the
    benchmark's JSON ``out`` gets its name (``database``) and ``dropped``."""
    name, url = create_database(server_url)
    out["database"] = name
    try:
        yield url
    finally:
        if not keep:
            with contextlib.suppress(Exception):
                drop_database(server_url, name)
            out["dropped"] = True
