"""A server restart under an open page: the page says it lost the connection, gets it back on its
own, and shows the seat map as it now is, including what changed while it was away."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    SERVER_FLAGS,
    Pages,
    api,
    api_seats,
    buy_via_api,
    connection_states,
    create_event,
    element,
    event_url,
    hold_via_api,
    record_connection_states,
    seat_statuses,
    wait_seat_map,
)
from tests.conftest import ServerProcess, free_port

#: stompjs reconnects after a delay of its own (5 s by default): allow for a few attempts.
RECONNECT_MS = 30_000


class Restartable:
    """One node, and the same node (ports, working directory, database) started again."""

    def __init__(self, workdir: Path) -> None:
        self.ports = free_port(), free_port()
        self.workdir = workdir
        self.node = self._new()

    def _new(self) -> ServerProcess:
        return ServerProcess(*self.ports, self.workdir, dict(SERVER_FLAGS))

    def restart_stopped(self) -> ServerProcess:
        self.node = self._new()
        self.node.start()
        return self.node


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Restartable]:
    server = Restartable(tmp_path)
    server.node.start()
    yield server
    server.node.stop()


def page_matches_api(page: Page, node: ServerProcess, event: int) -> None:
    truth = api_seats(node, event)
    assert seat_statuses(page, sorted(truth)) == truth


def eventually(check: Callable[[], None], timeout: float = 10.0) -> None:
    """Run ``check`` until it stops failing, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_restarted_server_is_reconnected_to_and_the_map_is_right_again(
    restartable: Restartable, pages: Pages
) -> None:
    node = restartable.node
    event = create_event(node, "Restart Night")
    buy_via_api(node, "early-bird", event, ["S-A-1", "S-A-2"])
    dithered = hold_via_api(node, "ditherer", event, ["S-B-1"])

    page = pages.open(event_url(node, event), "watcher")
    wait_seat_map(page, "S-A-1")
    expect(element(page, "connection-state")).to_have_text("connected")
    eventually(lambda: page_matches_api(page, node, event))
    assert api_seats(node, event)["S-A-1"] == "sold"
    record_connection_states(page)
    pages.snap(page, "before-restart")

    node.stop()
    # The page says at once that it lost the connection and is getting it back.
    page.wait_for_function("() => window.__connectionStates.includes('reconnecting')")
    pages.snap(page, "server-down")

    node = restartable.restart_stopped()
    # While the page may still be away: someone buys, and the ditherer lets go of a seat.
    buy_via_api(node, "late-comer", event, ["S-B-5"])
    status, _ = api(node, "DELETE", f"/api/holds/{dithered}", token=node.token("ditherer"))
    assert status in (200, 204), status

    expect(element(page, "connection-state")).to_have_text("connected", timeout=RECONNECT_MS)
    states = connection_states(page)
    assert "reconnecting" in states, states
    assert "disconnected" not in states, states  # only a page that stopped trying says that
    assert states[-1] == "connected", states
    eventually(lambda: page_matches_api(page, node, event))
    pages.snap(page, "after-restart")
    seats = api_seats(node, event)
    assert (seats["S-A-1"], seats["S-B-5"], seats["S-B-1"]) == ("sold", "sold", "available")
