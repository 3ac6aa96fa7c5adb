"""Fixtures shared by the broker's real-client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ServerProcess
from tests.server.stomp_clients import Clients


@pytest.fixture(params=["tcp", "ws"])
def transport(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once over raw TCP and once over WebSocket."""
    return str(request.param)


@pytest.fixture
def clients(server: ServerProcess) -> Iterator[Clients]:
    """STOMP clients on the session server, all closed after the test."""
    opened = Clients(server)
    yield opened
    opened.close_all()
