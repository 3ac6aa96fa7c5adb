"""Where the node's signing secret comes from (SPEC §1 ``--secret``).

Given explicitly, it is used as is. In embedded mode (a SQLite file) it is generated once and kept
in a file beside the database, readable by the owner only, so tokens and tickets survive restarts
with nothing to configure. Anywhere else it is required: nodes of a cluster must share it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy.engine import make_url


class SecretRequired(Exception):
    pass


def secret_file_for(database_url: str) -> Path | None:
    """The file beside a SQLite database that keeps its secret, or None (memory/other DB)."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    db = Path(url.database)
    return db.with_name(db.stem + ".secret")


def resolve_secret(given: str, database_url: str, *, create: bool = True) -> str:
    if given:
        return given
    if not database_url.startswith("sqlite"):
        raise SecretRequired("--secret (or CONCERT_HUB_SECRET) is required outside embedded mode")
    path = secret_file_for(database_url)
    if path is None:
        return secrets.token_urlsafe(32)  # in-memory database: nothing outlives the process
    if path.exists():
        return path.read_text().strip()
    if not create:
        raise SecretRequired(
            f"no secret at {path}: run this in the directory of the node's database (scripts/serve "
            "keeps it in the repository root), start the node once first, or pass --secret"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
