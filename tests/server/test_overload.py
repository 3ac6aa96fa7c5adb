"""A node whose database connections are all taken sheds load: a request that waited
``--db-pool-timeout-s`` for one is answered 503 ``unavailable`` with ``Retry-After`` (nothing
was done; retry), not left waiting, and not answered 500."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ServerProcess, free_port, migrated_database_url_for, rest
from tests.server.test_outflow_live import create

SEATS = [f"S-{row}-{n}" for row in "AB" for n in range(1, 11)]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    """MariaDB through one pooled connection (and the pool's ten overflow), each hold
    decision held 2 s in its transaction while the delay file says so."""
    delay = tmp_path / "hold-delay-ms"
    delay.write_text("0")
    for url in migrated_database_url_for("mariadb", tmp_path):
        flags: dict[str, object] = {
            "database_url": url,
            "db_pool_size": 1,
            "db_pool_timeout_s": 0.5,
            "fault_hold_delay_file": delay,
        }
        proc = ServerProcess(free_port(), free_port(), tmp_path, flags)
        proc.start()
        try:
            yield proc, delay
        finally:
            proc.stop()


async def test_holds_beyond_the_pool_are_answered_503_with_retry_after(
    node: tuple[ServerProcess, Path],
) -> None:
    server, delay = node
    event_id = create(server)
    delay.write_text("2000")

    async def hold(session: aiohttp.ClientSession, n: int) -> tuple[int, str | None, Any]:
        token = server.token(f"buyer-{n}")
        async with session.post(
            f"{server.http_url}/api/events/{event_id}/holds", json={"seats": [SEATS[n]]},
            headers={"Authorization": f"Bearer {token}"},
        ) as reply:  # fmt: skip
            return reply.status, reply.headers.get("Retry-After"), await reply.json()

    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(hold(session, n) for n in range(len(SEATS))))

    statuses = sorted(status for status, _, _ in answers)
    assert set(statuses) == {201, 503}, statuses  # some held, the rest shed; nothing else
    shed = [n for n, (status, _, _) in enumerate(answers) if status == 503]
    for n in shed:
        _, retry_after, body = answers[n]
        assert body["kind"] == "unavailable" and retry_after == "1", (retry_after, body)

    # The load is gone: a shed request, tried again, succeeds (it had done nothing).
    delay.write_text("0")
    again = shed[0]
    token = server.token(f"buyer-{again}")
    status, held = rest(
        server, "POST", f"/api/events/{event_id}/holds", {"seats": [SEATS[again]]}, token=token
    )
    assert status == 201, held
