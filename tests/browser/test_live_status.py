"""Honest live status: the badge says "reconnecting" within two heart-beat intervals of a network
that silently stopped forwarding, the map comes back by itself with the truth (a picked seat that
was sold meanwhile is dropped, named in words), and a request that got no answer never stands
beside a "connected" badge; its error goes away by itself once the connection is back."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    SERVER_FLAGS,
    Pages,
    buy_via_api,
    click_seat,
    connection_states,
    create_event,
    element,
    event_url,
    record_connection_states,
    wait_seat_map,
    wait_seat_status,
)
from tests.conftest import ServerProcess, free_port
from tests.server.stomp_clients import metric_sum

#: The node's heart-beat offer in these tests (the UI asks for 1 s, so the server's offer rules).
HEARTBEAT_MS = 2_000
#: stompjs backs off between attempts; a held handshake completes once the network flows again.
RECONNECT_MS = 30_000


class StallingProxy:
    """A TCP proxy in front of a node that can stop forwarding without closing anything.

    While stalled it neither reads nor writes, in either direction, and closes nothing: to the
    browser and to the server it looks like a network that silently drops every packet (a phone
    between cells, a NAT that forgot the connection). A chunk read just before the stall is held
    back too. New connections are accepted and connected upstream, but carry nothing until the
    network flows again, when everything held goes through in order.
    """

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.flowing = threading.Event()
        self.flowing.set()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self.flowing.wait()
                data = src.recv(65536)
                self.flowing.wait()
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
        except OSError:
            return

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()
        self.flowing.set()


@pytest.fixture
def beating_node(tmp_path: Path) -> Iterator[ServerProcess]:
    flags = dict(SERVER_FLAGS, heartbeat_ms=f"{HEARTBEAT_MS},{HEARTBEAT_MS}")
    node = ServerProcess(free_port(), free_port(), tmp_path, flags)
    node.start()
    yield node
    node.stop()


@pytest.fixture
def proxy(beating_node: ServerProcess) -> Iterator[StallingProxy]:
    stalling = StallingProxy(beating_node.http_port)
    yield stalling
    stalling.close()


def test_a_silent_network_drop_shows_reconnecting_within_two_heartbeats_and_the_map_recovers(
    beating_node: ServerProcess, proxy: StallingProxy, pages: Pages
) -> None:
    event = create_event(beating_node, "Tunnel Night")
    page = pages.open(f"http://127.0.0.1:{proxy.port}/#/events/{event}", "commuter")
    wait_seat_map(page, "S-A-3")
    expect(element(page, "connection-state")).to_have_text("connected")
    click_seat(page, "S-A-3")
    page.wait_for_function("() => window.__concertHub.seatMap.selected().includes('S-A-3')")
    record_connection_states(page)

    proxy.stall()
    stalled_at = time.monotonic()
    # Issue 13: "reconnecting" within 2 heart-beat intervals of silence. The silence began at
    # the latest when the proxy stalled, so this bound is the promise or stricter.
    # (Polled inside the page every 50 ms: expect()'s own back-off would add up to a second.)
    page.wait_for_function(
        """() => document.querySelector('[data-testid="connection-state"]')
                   .textContent.trim() === 'reconnecting'""",
        timeout=2 * HEARTBEAT_MS,
        polling=50,
    )
    noticed_s = time.monotonic() - stalled_at
    assert "connected" not in connection_states(page)[1:], connection_states(page)
    pages.snap(page, "silent-drop")

    # While the page is cut off, someone else buys the seat it picked.
    buy_via_api(beating_node, "rival", event, ["S-A-3"])
    proxy.resume()

    expect(element(page, "connection-state")).to_have_text("connected", timeout=RECONNECT_MS)
    # The map subscribed again: its fresh snapshot shows the sale, and the pick is gone, with a
    # message that names the seat in words.
    wait_seat_status(page, "S-A-3", "sold")
    error = element(page, "error-message")
    expect(error).to_have_text("S row A seat 3 was just taken — please pick another seat.")
    assert page.evaluate("() => window.__concertHub.seatMap.selected()") == []
    # It resumed: the changes since its last seq came as one delta, not a whole new snapshot.
    assert metric_sum(beating_node, "concert_hub_seatmap_resumes", answer="delta") >= 1
    pages.snap(page, "back-and-told")
    print(f"reconnecting shown {noticed_s:.2f} s after the network stalled")


RECORD_BADGE_AND_ERROR = """() => {
    const seen = window.__badgeAndError = [];
    const text = sel => {
        const el = document.querySelector(sel);
        return el ? el.textContent.trim() : null;
    };
    const read = () => {
        const pair = [text('[data-testid="connection-state"]'),
                      text('[data-testid="error-message"]')];
        const last = seen[seen.length - 1];
        if (!last || last[0] !== pair[0] || last[1] !== pair[1]) seen.push(pair);
    };
    read();
    new MutationObserver(read).observe(document.body,
        {subtree: true, childList: true, characterData: true});
}"""


def contradictions(page: Page) -> list[list[str | None]]:
    """Every moment the page showed "connected" beside an error about not reaching the server."""
    pairs = page.evaluate("() => window.__badgeAndError")
    return [
        p
        for p in pairs
        if p[0] == "connected" and p[1] and ("reach the server" in p[1] or "offline" in p[1])
    ]


def live_page_with_a_pick(pages: Pages, url: str, seat: str) -> Page:
    """A buyer's page, connected, with ``seat`` picked, recording what the badge and the error
    line show from now on."""
    page = pages.open(url, "buyer")
    wait_seat_map(page, seat)
    expect(element(page, "connection-state")).to_have_text("connected")
    click_seat(page, seat)
    page.evaluate(RECORD_BADGE_AND_ERROR)
    record_connection_states(page)
    return page


def test_a_request_without_an_answer_takes_the_badge_off_connected_and_its_error_clears_itself(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Flaky Wifi Night")
    page = live_page_with_a_pick(pages, event_url(ui_server, event), "S-B-2")

    # The hold request gets no answer at all (the WebSocket itself is untouched). The error
    # may be on screen only for a moment (it clears itself once the page finds the server
    # again), so the page records every text it shows rather than the test polling for it.
    page.evaluate(
        """() => {
            window.__errorsShown = [];
            new MutationObserver(() => {
                const shown = document.querySelector('[data-testid="error-message"]');
                if (shown) window.__errorsShown.push(shown.textContent);
            }).observe(document.body, {subtree: true, childList: true, characterData: true});
        }"""
    )
    page.route("**/api/events/*/holds", lambda route: route.abort("connectionfailed"))
    element(page, "hold-button").click()
    page.wait_for_function(
        "() => window.__errorsShown.some(text => text.includes('reach the server'))",
        timeout=10_000,
    )
    page.unroute("**/api/events/*/holds")

    # The page checked its connection, found the server again, and the error went by itself.
    expect(element(page, "connection-state")).to_have_text("connected")
    expect(element(page, "error-message")).to_have_count(0)
    expect(page.get_by_text("The connection is back. Please try again.")).to_be_visible()
    states = connection_states(page)
    assert states[0] == "connected" and "reconnecting" in states, states
    assert contradictions(page) == []
    pages.snap(page, "error-cleared")

    # And trying again works.
    element(page, "hold-button").click()
    expect(element(page, "hold-countdown")).to_be_visible()


def test_offline_the_badge_and_a_failed_request_agree_and_online_clears_the_error(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Airplane Mode Night")
    page = live_page_with_a_pick(pages, event_url(ui_server, event), "S-A-5")

    page.context.set_offline(True)
    expect(element(page, "connection-state")).to_have_text("offline")
    element(page, "hold-button").click()
    expect(element(page, "error-message")).to_contain_text("offline")
    expect(element(page, "connection-state")).to_have_text("offline")
    pages.snap(page, "offline")

    page.context.set_offline(False)
    expect(element(page, "connection-state")).to_have_text("connected", timeout=RECONNECT_MS)
    expect(element(page, "error-message")).to_have_count(0)
    assert contradictions(page) == []
    element(page, "hold-button").click()
    expect(element(page, "hold-countdown")).to_be_visible()
