"""The door on a phone: the scanner (``/scan``) asks before it signs out, says in plain words why
there is no camera and offers to try again, keeps the verdict in view with the phone on its side,
and takes a scanner link opened on the open page; the admin console's list of panels brings Door
check-in into view in one tap."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    PHONE,
    WAIT_MS,
    Pages,
    admin_token,
    buy_via_api,
    create_event,
    element,
)
from tests.conftest import ServerProcess
from tests.conftest import rest as api

#: The same phone held sideways.
LANDSCAPE: dict[str, Any] = {**PHONE, "viewport": {"width": 740, "height": 360}}

#: A browser whose camera is blocked at first and then, asked again, not found.
CAMERA_REFUSED = """
window.__cameraAsks = 0;
navigator.mediaDevices.getUserMedia = async () => {
  window.__cameraAsks += 1;
  throw new DOMException('Permission denied',
                         window.__cameraAsks === 1 ? 'NotAllowedError' : 'NotFoundError');
};
"""

#: A browser whose camera films a white wall (a canvas): video, and no code in it.
CAMERA_WALL = """
navigator.mediaDevices.getUserMedia = async () => {
  const canvas = document.createElement('canvas');
  canvas.width = 320;
  canvas.height = 240;
  const context = canvas.getContext('2d');
  context.fillStyle = '#fff';
  context.fillRect(0, 0, 320, 240);
  return canvas.captureStream(5);
};
"""


def scanner_token(node: ServerProcess, gate: str, event_id: int) -> str:
    body = {"device": f"phone-{time.time_ns()}", "gate": gate, "event_id": event_id}
    status, scanner = api(node, "POST", "/api/admin/scanners", body, token=admin_token(node))
    assert status == 201, (status, scanner)
    return str(scanner["token"])


def ticket_codes(node: ServerProcess, event_id: int, seats: list[str]) -> list[str]:
    order = buy_via_api(node, f"fan-{time.time_ns()}", event_id, seats)
    return [t["code"] for t in order["tickets"]]


def open_scanner(pages: Pages, url: str, profile: dict[str, Any], camera: str) -> Page:
    """The scanner at ``url`` with the camera ``camera`` stands in for, the page up once it has
    its check-in list (a code typed earlier would go nowhere)."""
    context = pages.browser.new_context(**profile)
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(camera)
    pages.contexts.append(context)
    page = context.new_page()
    pages.pages.append(("door", page))
    page.goto(url)
    expect(element(page, "scan-list")).to_contain_text("tickets cached")
    return page


def check_code(page: Page, code: str) -> None:
    element(page, "manual-code").fill(code)
    element(page, "manual-submit").click()


def in_viewport(page: Page, test_id: str) -> None:
    """The whole of ``test_id``'s element is on screen, as the window is scrolled now."""
    box = element(page, test_id).bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], (test_id, box, size)
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], (test_id, box, size)


def test_sign_out_asks_first_and_keeping_the_token_keeps_scanning(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event_id = create_event(ui_server, "Phone Door Night")
    (code,) = ticket_codes(ui_server, event_id, ["S-A-1"])
    url = f"{ui_server.http_url}/scan#token={scanner_token(ui_server, 'North', event_id)}"
    page = open_scanner(pages, url, PHONE, CAMERA_WALL)

    element(page, "scan-sign-out").click()
    question = element(page, "scan-sign-out-confirm")
    expect(question).to_contain_text("you will need a scanner token from an admin")
    expect(element(page, "scan-sign-out-no")).to_be_focused()  # the safe answer
    pages.snap(page, "sign-out-question", full_page=False)
    element(page, "scan-sign-out-no").click()
    expect(question).to_have_count(0)
    expect(element(page, "scan-sign-out")).to_be_focused()

    # Still signed in: the token still scans, after a reload too.
    page.reload()
    expect(element(page, "scan-list")).to_contain_text("1 tickets cached")
    check_code(page, code)
    expect(element(page, "scan-result")).to_have_attribute("data-reason", "admitted")

    # The question also takes the token for another gate, in place of this one.
    element(page, "scan-sign-out").click()
    element(page, "scan-token").fill(scanner_token(ui_server, "North 2", event_id))
    page.get_by_role("button", name="Start with this token").click()
    expect(page.get_by_role("heading", name=f"Gate North 2 · event {event_id}")).to_be_visible()
    expect(question).to_have_count(0)


def test_without_a_camera_the_scanner_says_why_and_puts_typing_first(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event_id = create_event(ui_server, "No Camera Night")
    url = f"{ui_server.http_url}/scan#token={scanner_token(ui_server, 'South', event_id)}"
    page = open_scanner(pages, url, PHONE, CAMERA_REFUSED)

    camera = element(page, "scan-camera")
    expect(camera).to_contain_text("Camera blocked: allow the camera for this site")
    expect(camera).to_contain_text("then tap Try camera again")
    expect(camera).not_to_contain_text("Permission denied")  # the browser's words
    expect(element(page, "scan-video")).to_be_hidden()  # no empty black box
    in_viewport(page, "manual-code")
    typing, answer = (element(page, t).bounding_box() for t in ("manual-code", "scan-result"))
    assert typing is not None and answer is not None and typing["y"] < answer["y"]
    pages.snap(page, "camera-blocked", full_page=False)

    page.get_by_role("button", name="Try camera again").click()
    expect(camera).to_contain_text("No camera found")
    assert page.evaluate("window.__cameraAsks") == 2


def test_on_its_side_the_phone_shows_the_verdict_beside_the_camera(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event_id = create_event(ui_server, "Landscape Night")
    (code,) = ticket_codes(ui_server, event_id, ["S-A-2"])
    url = f"{ui_server.http_url}/scan#token={scanner_token(ui_server, 'East', event_id)}"
    page = open_scanner(pages, url, LANDSCAPE, CAMERA_WALL)
    expect(element(page, "scan-camera")).to_contain_text("scanning")
    expect(element(page, "scan-video")).to_be_visible()

    check_code(page, code)
    expect(element(page, "scan-result")).to_have_attribute("data-reason", "admitted")
    in_viewport(page, "scan-result")
    in_viewport(page, "manual-code")
    pages.snap(page, "landscape-admitted", full_page=False)


def test_a_scanner_link_opened_on_the_open_page_is_taken(
    ui_server: ServerProcess, pages: Pages
) -> None:
    first = create_event(ui_server, "Early Show")
    second = create_event(ui_server, "Late Show")
    (code,) = ticket_codes(ui_server, second, ["S-B-1"])
    base = f"{ui_server.http_url}/scan"
    page = open_scanner(
        pages, f"{base}#token={scanner_token(ui_server, 'West', first)}", PHONE, CAMERA_WALL
    )
    expect(page.get_by_role("heading", name=f"Gate West · event {first}")).to_be_visible()

    # The admin sends a link for the late show's gate; the door phone opens it on the same page.
    page.goto(f"{base}#token={scanner_token(ui_server, 'West 2', second)}")
    expect(page.get_by_role("heading", name=f"Gate West 2 · event {second}")).to_be_visible()
    assert "token" not in page.url
    expect(element(page, "scan-list")).to_contain_text("1 tickets cached")
    check_code(page, code)
    expect(element(page, "scan-result")).to_have_attribute("data-reason", "admitted")


def test_on_a_phone_the_console_lists_its_panels_first(
    ui_server: ServerProcess, pages: Pages
) -> None:
    create_event(ui_server, "Console Night")
    admin = pages.open(ui_server.http_url + "/admin", "admin", profile=PHONE)
    element(admin, "admin-token").fill(admin_token(ui_server))
    element(admin, "admin-login").click()

    # The per-event figures scroll sideways under the event's name, and say so.
    stats = admin.get_by_role("region", name="Live statistics")
    expect(stats.get_by_text("Scroll sideways for more columns")).to_be_visible()
    panels = admin.get_by_role("navigation", name="Panels")
    in_viewport(admin, "panel-link-door-checkin")
    pages.snap(admin, "console-panels", full_page=False)

    panels.get_by_role("link", name="Door check-in").click()
    heading = admin.get_by_role("heading", name="Door check-in")
    expect(heading).to_be_focused()  # keyboard and screen readers go on from there
    expect(element(admin, "checkin-panel")).to_be_in_viewport()
    # not under the sticky top bar
    bar, title = admin.locator(".topbar").bounding_box(), heading.bounding_box()
    assert bar is not None and title is not None and title["y"] >= bar["y"] + bar["height"]
    element(admin, "checkin-event").fill("1")
    pages.snap(admin, "console-door-checkin", full_page=False)
