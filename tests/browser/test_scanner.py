"""The door scanner page (``/scan``) in Chromium with a fake camera that films a real ticket's
QR code: the first scan admits, the next says already used, and with the network cut the page
still admits from its cached check-in list and syncs when the network is back; a token the
server refuses keeps the scans queued offline for the next token, and a token bound to an event
decides the event at every sign-in."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import segno
from playwright.sync_api import Browser, Page, Playwright, Request, expect

from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    WAIT_MS,
    Pages,
    admin_token,
    buy_via_api,
    create_event,
    element,
)
from tests.conftest import ServerProcess
from tests.conftest import rest as api

WIDTH, HEIGHT = 640, 480


def render_y4m(code: str, path: Path, frames: int = 5) -> Path:
    """A Y4M video (4:2:0, grey) of ``code``'s QR code, black on white, centred."""
    qr = segno.make(code, error="m")
    scale = max(1, min(WIDTH, HEIGHT) // (qr.symbol_size(scale=1, border=4)[0]))
    rows = [bytes(0 if dark else 255 for dark in row)
            for row in qr.matrix_iter(scale=scale, border=4)]  # fmt: skip
    top, left = (HEIGHT - len(rows)) // 2, (WIDTH - len(rows[0])) // 2
    luma = bytearray(b"\xff" * (WIDTH * HEIGHT))
    for y, row in enumerate(rows):
        start = (top + y) * WIDTH + left
        luma[start : start + len(row)] = row
    chroma = b"\x80" * (WIDTH // 2 * HEIGHT // 2)
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + bytes(luma) + chroma + chroma)
    return path


def render_blank(path: Path, frames: int = 5) -> Path:
    """A Y4M video of a white wall: no QR code for a decoder of the page's own to find."""
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        frame = b"\xff" * (WIDTH * HEIGHT) + b"\x80" * (WIDTH * HEIGHT // 2)
        for _ in range(frames):
            out.write(b"FRAME\n" + frame)
    return path


#: A stand-in for the browser's BarcodeDetector (Chromium on Linux has none) that "sees"
#: ``CODE`` in every video frame and counts its calls.
BARCODE_DETECTOR_SHIM = """
window.__detections = 0;
window.BarcodeDetector = class {
  constructor(options) { this.formats = options.formats; }
  static async getSupportedFormats() { return ['qr_code', 'ean_13']; }
  async detect(source) {
    window.__detections += 1;
    return source instanceof HTMLVideoElement ? [{ rawValue: CODE, format: 'qr_code' }] : [];
  }
};
"""


def buy_codes(node: ServerProcess, event_id: int, seats: list[str]) -> list[str]:
    order = buy_via_api(node, f"fan-{time.time_ns()}", event_id, seats)
    by_seat = {t["seat_id"]: t["code"] for t in order["tickets"]}
    return [by_seat[s] for s in seats]


def new_scanner(node: ServerProcess, gate: str, event_id: int) -> tuple[str, str]:
    """A scanner for ``gate`` bound to ``event_id``: its id (to revoke it) and its token."""
    body = {"device": f"dev-{time.time_ns()}", "gate": gate, "event_id": event_id}
    status, scanner = api(node, "POST", "/api/admin/scanners", body, token=admin_token(node))
    assert status == 201, (status, scanner)
    return str(scanner["id"]), str(scanner["token"])


def mint_scanner(node: ServerProcess, gate: str, event_id: int) -> str:
    return new_scanner(node, gate, event_id)[1]


def enter_code(page: Page, code: str) -> None:
    """Type a ticket code into the scanner page and check it."""
    page.get_by_test_id("manual-code").fill(code)
    page.get_by_test_id("manual-submit").click()


@pytest.fixture
def camera_browser(playwright: Playwright, tmp_path: Path) -> Iterator[tuple[Browser, Path]]:
    """A Chromium whose camera films ``tmp_path / "camera.y4m"`` (written before the page
    asks for the camera)."""
    video = tmp_path / "camera.y4m"
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    assert CHROMIUM.exists()
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
    try:
        yield browser, video
    finally:
        browser.close()


def test_the_scanner_page_admits_once_and_keeps_working_offline(
    ui_server: ServerProcess, camera_browser: tuple[Browser, Path]
) -> None:
    browser, video = camera_browser
    node = ui_server
    event_id = create_event(node, "Door Night")
    filmed, typed = buy_codes(node, event_id, ["S-A-1", "S-A-2"])
    render_y4m(filmed, video)
    token = mint_scanner(node, "Door 1", event_id)

    context = browser.new_context(**DESKTOP)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{node.http_url}/scan#token={token}")
        result = page.get_by_test_id("scan-result")
        expect(result).to_have_attribute("data-reason", "admitted", timeout=WAIT_MS)
        expect(result).to_contain_text("Admitted")
        expect(result).to_contain_text("S row A seat 1")
        assert "token" not in page.url  # the token left the address bar (and the history)

        page.reload()  # the camera still films the same ticket: a second scan
        expect(result).to_have_attribute("data-reason", "already_used", timeout=WAIT_MS)
        expect(result).to_contain_text("Already used")
        expect(result).to_contain_text("Door 1")

        expect(page.get_by_test_id("scan-list")).to_contain_text("2 tickets cached")
        assert page.evaluate("navigator.serviceWorker.ready.then(r => r.active !== null)")
        context.set_offline(True)
        # the page opens without a network (its service worker), with the list it cached: the
        # filmed ticket is known as used
        page.reload()
        expect(page.get_by_test_id("scan-status")).to_have_text("Offline")
        expect(page.get_by_test_id("scan-list")).to_contain_text("2 tickets cached")
        expect(result).to_have_attribute("data-reason", "already_used", timeout=WAIT_MS)
        expect(result).to_contain_text("checked offline")
        page.get_by_test_id("manual-code").fill(typed)
        page.get_by_test_id("manual-submit").click()
        expect(result).to_have_attribute("data-reason", "admitted")
        expect(result).to_contain_text("checked offline")
        expect(page.get_by_test_id("scan-queued")).to_have_text("1")
        # offline, the same ticket again is already used (from this scanner's own record)
        page.get_by_test_id("manual-code").fill(typed)
        page.get_by_test_id("manual-submit").click()
        expect(result).to_have_attribute("data-reason", "already_used")
        expect(page.get_by_test_id("scan-queued")).to_have_text("1")

        context.set_offline(False)
        expect(page.get_by_test_id("scan-queued")).to_have_text("0", timeout=WAIT_MS)
        expect(page.get_by_test_id("scan-status")).to_have_text("Online")
        # the server has the offline redemption: another gate is told it was used at Door 1
        other = mint_scanner(node, "Door 2", event_id)
        status, answer = api(node, "POST", "/api/checkin", {"code": typed}, token=other)
        assert status == 409, (status, answer)  # a refusal (SPEC §5)
        assert (answer["result"], answer["used_gate"]) == ("already_used", "Door 1")
        assert errors == []
    finally:
        context.close()


def test_the_admin_console_shows_checkin_progress_and_conflicts(
    ui_server: ServerProcess, pages: Pages
) -> None:
    node = ui_server
    event_id = create_event(node, "Conflict Night")
    first, second = buy_codes(node, event_id, ["S-B-1", "S-B-2"])
    admin = pages.open(node.http_url + "/admin", "admin")
    element(admin, "admin-token").fill(admin_token(node))
    element(admin, "admin-login").click()
    element(admin, "checkin-event").fill(str(event_id))
    element(admin, "checkin-event").press("Enter")
    expect(element(admin, "checkin-progress")).to_contain_text("0 of 2 scanned")

    online = mint_scanner(node, "North", event_id)
    status, answer = api(node, "POST", "/api/checkin", {"code": first}, token=online)
    assert (status, answer["result"]) == (200, "admitted")
    # an offline scanner let the same ticket in a minute earlier, and syncs now
    earlier = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    offline = mint_scanner(node, "South", event_id)
    status, synced = api(node, "POST", f"/api/checkin/events/{event_id}/sync",
                         {"redemptions": [{"code": first, "at": earlier},
                                          {"code": second, "at": earlier}]},
                         token=offline)  # fmt: skip
    assert status == 200, (status, synced)

    expect(element(admin, "checkin-progress")).to_contain_text("2 of 2 scanned")
    expect(element(admin, "checkin-gates")).to_contain_text("South: 2")
    expect(element(admin, "checkin-gates")).to_contain_text("North: 1")
    conflicts = element(admin, "checkin-conflicts")
    expect(conflicts).to_contain_text("Seat S-B-1: South")
    expect(conflicts).to_contain_text("then North")
    pages.snap(admin, "checkin-panel")


def test_the_scanner_page_uses_the_browsers_barcode_detector_where_present(
    ui_server: ServerProcess, camera_browser: tuple[Browser, Path]
) -> None:
    browser, video = camera_browser
    node = ui_server
    event_id = create_event(node, "Detector Night")
    (code,) = buy_codes(node, event_id, ["S-B-1"])
    render_blank(video)  # only the detector can find the code
    token = mint_scanner(node, "Door 3", event_id)

    context = browser.new_context(**DESKTOP)
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(BARCODE_DETECTOR_SHIM.replace("CODE", json.dumps(code)))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{node.http_url}/scan#token={token}")
        expect(page.get_by_test_id("scan-camera")).to_contain_text("BarcodeDetector")
        result = page.get_by_test_id("scan-result")
        expect(result).to_have_attribute("data-reason", "admitted", timeout=WAIT_MS)
        expect(result).to_contain_text("S row B seat 1")
        assert page.evaluate("window.__detections") >= 1
        status, answer = api(node, "POST", "/api/checkin", {"code": code}, token=token)
        assert status == 409 and answer["result"] == "already_used", (status, answer)
        assert errors == []
    finally:
        context.close()


def test_a_ticket_voided_while_the_scanner_was_offline_is_reported_at_sync(
    ui_server: ServerProcess, camera_browser: tuple[Browser, Path]
) -> None:
    browser, video = camera_browser
    node = ui_server
    event_id = create_event(node, "Void Night")
    user = f"fan-{time.time_ns()}"
    order = buy_via_api(node, user, event_id, ["S-A-3"])
    (code,) = [t["code"] for t in order["tickets"]]
    render_blank(video)
    token = mint_scanner(node, "Door 4", event_id)

    context = browser.new_context(**DESKTOP)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        page.goto(f"{node.http_url}/scan#token={token}")
        expect(page.get_by_test_id("scan-list")).to_contain_text("1 tickets cached")
        context.set_offline(True)
        page.get_by_test_id("manual-code").fill(code)
        page.get_by_test_id("manual-submit").click()
        result = page.get_by_test_id("scan-result")
        expect(result).to_have_attribute("data-reason", "admitted")
        expect(page.get_by_test_id("scan-queued")).to_have_text("1")
        # meanwhile the holder cancels the order
        status, body = api(node, "POST", f"/api/orders/{order['order_id']}/cancel",
                           token=node.token(user))  # fmt: skip
        assert status == 200, (status, body)
        context.set_offline(False)
        expect(page.get_by_test_id("scan-queued")).to_have_text("0", timeout=WAIT_MS)
        notice = page.get_by_test_id("scan-notice")
        expect(notice).to_contain_text("void")
        expect(notice).to_contain_text("S-A-3")
        status, progress = api(node, "GET", f"/api/admin/events/{event_id}/checkin",
                               token=admin_token(node))  # fmt: skip
        assert status == 200 and (progress["sold"], progress["scanned"]) == (0, 0), progress
    finally:
        context.close()


def test_exit_scans_work_offline_and_sync_in_order(
    ui_server: ServerProcess, camera_browser: tuple[Browser, Path]
) -> None:
    browser, video = camera_browser
    node = ui_server
    event_id = create_event(node, "Re-entry Night")
    admin = admin_token(node)
    status, _ = api(node, "PUT", f"/api/admin/events/{event_id}/checkin", {"reentry": True},
                    token=admin)  # fmt: skip
    assert status == 200
    (code,) = buy_codes(node, event_id, ["S-A-4"])
    render_blank(video)
    token = mint_scanner(node, "Door 5", event_id)

    context = browser.new_context(**DESKTOP)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()

    def enter(text: str) -> None:
        page.get_by_test_id("manual-code").fill(text)
        page.get_by_test_id("manual-submit").click()

    try:
        page.goto(f"{node.http_url}/scan#token={token}")
        result = page.get_by_test_id("scan-result")
        exit_mode = page.get_by_test_id("scan-exit")
        # The page is up once it has the list (a code entered before it runs goes nowhere).
        expect(page.get_by_test_id("scan-list")).to_contain_text("1 tickets cached")
        enter(code)  # online: in
        expect(result).to_have_attribute("data-reason", "admitted", timeout=WAIT_MS)
        context.set_offline(True)
        exit_mode.check()
        enter(code)  # offline: out
        expect(result).to_have_attribute("data-reason", "exited")
        expect(result).to_contain_text("checked offline")
        enter(code)  # out again: not inside
        expect(result).to_have_attribute("data-reason", "not_inside")
        exit_mode.uncheck()
        enter(code)  # offline: in again
        expect(result).to_have_attribute("data-reason", "admitted")
        expect(page.get_by_test_id("scan-queued")).to_have_text("2")
        enter(code)
        expect(result).to_have_attribute("data-reason", "already_used")

        context.set_offline(False)
        expect(page.get_by_test_id("scan-queued")).to_have_text("0", timeout=WAIT_MS)
        # the server replayed in, out, in: the holder is inside, no conflict
        other = mint_scanner(node, "Door 6", event_id)
        status, answer = api(node, "POST", "/api/checkin", {"code": code}, token=other)
        assert status == 409 and answer["result"] == "already_used", (status, answer)
        assert answer["used_gate"] == "Door 5"
        status, conflicts = api(node, "GET", f"/api/admin/events/{event_id}/checkin/conflicts",
                                token=admin)  # fmt: skip
        assert status == 200 and conflicts == [], conflicts
    finally:
        context.close()


def test_a_refused_token_keeps_the_offline_queue_for_the_next_token(
    ui_server: ServerProcess, pages: Pages
) -> None:
    node = ui_server
    event_id = create_event(node, "Revoked Night")
    codes = buy_codes(node, event_id, ["S-A-1", "S-A-2"])
    scanner_id, token = new_scanner(node, "Door 7", event_id)
    page = pages.open(f"{node.http_url}/scan#token={token}", "door")
    uploads: list[str] = []

    def count_upload(request: Request) -> None:
        if request.method == "POST" and request.url.endswith(f"/events/{event_id}/sync"):
            uploads.append(request.url)

    page.on("request", count_upload)
    expect(element(page, "scan-list")).to_contain_text("2 tickets cached")
    page.context.set_offline(True)
    result = element(page, "scan-result")
    for code in codes:
        enter_code(page, code)
        expect(result).to_have_attribute("data-reason", "admitted")
    expect(element(page, "scan-queued")).to_have_text("2")

    # The device is revoked while it is offline: its upload is refused (401) when back online.
    status, body = api(node, "POST", f"/api/admin/scanners/{scanner_id}/revoke",
                       token=admin_token(node))  # fmt: skip
    assert status == 200, (status, body)
    page.context.set_offline(False)
    error = element(page, "scan-error")
    expect(error).to_contain_text("no longer valid")  # in words, not the server's
    expect(error).to_contain_text("2 scans made offline are kept")
    expect(element(page, "scan-new-token")).to_be_visible()
    expect(element(page, "scan-queued")).to_have_text("2")
    # Nothing more is sent with the refused token (the page syncs every 5 s otherwise).
    assert uploads, "the page never tried to upload its queue"
    tried = len(uploads)
    page.wait_for_timeout(6_000)
    assert len(uploads) == tried, f"{len(uploads) - tried} more uploads with a refused token"
    pages.snap(page, "scanner-token-refused")

    # A new token for the same event: the queue kept offline uploads under it.
    _, fresh = new_scanner(node, "Door 8", event_id)
    element(page, "scan-new-token").click()
    element(page, "scan-token").fill(fresh)
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("heading", name=f"Gate Door 8 · event {event_id}")).to_be_visible()
    expect(element(page, "scan-queued")).to_have_text("0", timeout=WAIT_MS)
    expect(element(page, "scan-error")).to_have_count(0)
    status, progress = api(node, "GET", f"/api/admin/events/{event_id}/checkin",
                           token=admin_token(node))  # fmt: skip
    assert status == 200, (status, progress)
    assert (progress["scanned"], progress["by_gate"]) == (2, {"Door 8": 2}), progress
    other = mint_scanner(node, "Door 9", event_id)
    for code in codes:
        status, answer = api(node, "POST", "/api/checkin", {"code": code}, token=other)
        assert (status, answer["result"], answer["used_gate"]) == (409, "already_used", "Door 8")


def test_a_token_bound_to_an_event_decides_it_at_every_sign_in(
    ui_server: ServerProcess, pages: Pages
) -> None:
    node = ui_server
    first = create_event(node, "Bound Night")
    second = create_event(node, "Next Bound Night")
    (code,) = buy_codes(node, second, ["S-B-3"])
    _, token = new_scanner(node, "West", first)
    _, other = new_scanner(node, "West 2", second)
    page = pages.open(f"{node.http_url}/scan#token={token}", "door")
    expect(page.get_by_role("heading", name=f"Gate West · event {first}")).to_be_visible()
    expect(element(page, "scan-change-event")).to_have_count(0)  # the token decides it

    # Signed out, the next token is bound to another event: that event, without asking.
    element(page, "scan-sign-out").click()
    element(page, "scan-token").fill(other)
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("heading", name=f"Gate West 2 · event {second}")).to_be_visible()
    expect(element(page, "scan-event")).to_have_count(0)
    expect(element(page, "scan-list")).to_contain_text("1 tickets cached")
    enter_code(page, code)
    result = element(page, "scan-result")
    expect(result).to_have_attribute("data-reason", "admitted")
    expect(result).to_contain_text("S row B seat 3")
    page.reload()
    expect(page.get_by_role("heading", name=f"Gate West 2 · event {second}")).to_be_visible()
