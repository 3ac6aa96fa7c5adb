"""The audience app in a phone's hand: a page that fits the screen after a rotation and at 320 px,
with a map that leaves room to scroll; what a tap on the sticky bar causes (a refused hold, a
seat taken live) said right above the bar; the waiting room's news in the bar; taps that pick
only seats big enough to hit, named in the bar; and "Checkout" from the bar landing on the
payment form below the top bar, ready for the e-mail address. Screenshots under
test-artifacts/browser/<test>/."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import (
    PHONE,
    Pages,
    admin_token,
    api,
    create_event,
    element,
    event_url,
    hold_via_api,
    map_centre,
    map_view,
    seat_point,
    wait_seat_map,
)
from tests.browser.test_seat_map import LAYOUT
from tests.conftest import ServerProcess

#: A phone on its side, the smallest phone still sold, and a small tablet on its side (narrow
#: enough for the sticky bar, tall enough for a top bar that sticks, too low for the payment
#: form to fit under it).
LANDSCAPE: dict[str, Any] = {**PHONE, "viewport": {"width": 844, "height": 390}}
SMALL_PHONE: dict[str, Any] = {**PHONE, "viewport": {"width": 320, "height": 658}}
TABLET: dict[str, Any] = {**PHONE, "viewport": {"width": 820, "height": 600}}


def assert_fits(page: Page, width: int) -> None:
    """Once the map has fitted the window: nothing sticks out sideways, and the bar's button is
    on screen."""
    page.wait_for_function(
        "w => window.innerWidth === w && document.scrollingElement.scrollWidth <= w", arg=width
    )
    button = element(page, "bar-action").bounding_box()
    assert button is not None
    assert button["x"] >= 0 and button["x"] + button["width"] <= width, button
    canvas = element(page, "seat-map").bounding_box()
    assert canvas is not None and canvas["x"] + canvas["width"] <= width, canvas


def assert_above_the_bar(page: Page, testid: str) -> None:
    """``testid`` is in the window, clear of the sticky bar under it."""
    box = element(page, testid).bounding_box()
    bar = element(page, "sticky-bar").bounding_box()
    assert box is not None and bar is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= bar["y"], (box, bar)


def seat_on_screen(page: Page, seat: str) -> tuple[float, float]:
    """Where ``seat`` is drawn now (viewport coordinates), without moving the map."""
    where = page.evaluate("seat => window.__concertHub.seatMap.seatOnScreen(seat)", seat)
    assert where is not None, f"{seat} is not on screen"
    return where["x"], where["y"]


def wait_scrolled(page: Page) -> None:
    """Until the window stops scrolling (a smooth scroll has ended)."""
    page.evaluate(
        """async () => {
             const frame = () => new Promise(r => requestAnimationFrame(() => r()));
             let last = NaN;
             while (last !== window.scrollY) {
               last = window.scrollY;
               await frame();
               await frame();
             }
           }"""
    )


def test_the_event_page_fits_after_a_rotation_and_at_320_px(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Rotating Night", layout=LAYOUT, waiting_room=True)
    page = pages.open(event_url(ui_server, event), "landscape", profile=LANDSCAPE)
    wait_seat_map(page, "STALLS-A-1")
    expect(element(page, "bar-action")).to_have_text("Join the queue")
    # On its side: the top bar scrolls away, and the map leaves a good third of the room
    # between the bars to scroll the page from (the map takes every touch).
    assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).position") == "static"
    bar = element(page, "sticky-bar").bounding_box()
    assert bar is not None
    assert map_view(page)["height"] <= 0.65 * bar["y"], (map_view(page), bar)
    pages.snap(page, "landscape", full_page=False)

    page.set_viewport_size({"width": 390, "height": 844})  # turned upright
    assert_fits(page, 390)
    page.set_viewport_size({"width": 412, "height": 839})
    assert_fits(page, 412)
    page.set_viewport_size({"width": 360, "height": 740})
    assert_fits(page, 360)

    small = pages.open(event_url(ui_server, event), "320", profile=SMALL_PHONE)
    wait_seat_map(small, "STALLS-A-1")
    assert_fits(small, 320)
    topbar = small.locator(".topbar").bounding_box()
    assert topbar is not None and topbar["height"] < 110, topbar  # two lines, not three
    pages.snap(small, "320", full_page=False)


def test_what_a_tap_causes_is_said_above_the_bar_and_picks_are_named(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Thumb Night", layout=LAYOUT)
    page = pages.open(event_url(ui_server, event), "phone", profile=PHONE)
    wait_seat_map(page, "STALLS-E-15")
    seat = "STALLS-E-15"

    # Seats under 24 px are too small for a finger: a tap zooms in about it, the next picks it.
    # (The zoom level is said once the map comes to rest.)
    element(page, "zoom-out").tap()
    expect(element(page, "zoom-level")).to_have_text("67%")  # seats 16 px apart
    map_centre(page)
    page.touchscreen.tap(*seat_on_screen(page, seat))
    expect(element(page, "zoom-level")).to_have_text("100%")  # 24 px
    assert page.evaluate("() => window.__concertHub.seatMap.selected()") == []
    page.touchscreen.tap(*seat_on_screen(page, seat))
    expect(element(page, "bar-summary")).to_contain_text("Stalls row E seat 15")

    # Someone else takes it: said where the user is, not in the sidebar below the map.
    hold_via_api(ui_server, "quicker", event, [seat])
    expect(element(page, "error-message")).to_contain_text("Stalls row E seat 15 was just taken")
    assert_above_the_bar(page, "error-message")

    # A hold the server refuses (the seat went between the last update and the tap).
    other = "STALLS-F-20"
    page.touchscreen.tap(*seat_point(page, other))
    expect(element(page, "bar-summary")).to_contain_text("Stalls row F seat 20")

    def refuse(route: Route) -> None:
        problem = {"status": 409, "kind": "conflict", "title": "Seats not available",
                   "detail": "seats already taken", "conflicts": [other]}  # fmt: skip
        route.fulfill(status=409, content_type="application/problem+json", body=json.dumps(problem))

    page.route(f"**/api/events/{event}/holds", refuse)
    element(page, "bar-action").tap()
    expect(element(page, "error-message")).to_contain_text("Stalls row F seat 20 was just taken")
    assert_above_the_bar(page, "error-message")
    pages.snap(page, "refused-hold", full_page=False)


def test_the_waiting_room_speaks_in_the_bar(ui_server: ServerProcess, pages: Pages) -> None:
    event = create_event(
        ui_server, "Queue Night", waiting_room=True, admission_rate=0.01, max_active_shoppers=1
    )
    # Someone is first in line and takes the one shopper's place the sale allows.
    status, first = api(ui_server, "POST", f"/api/events/{event}/queue",
                        token=ui_server.token("first-in-line"))  # fmt: skip
    assert status in (200, 201), (status, first)

    page = pages.open(event_url(ui_server, event), "phone", profile=PHONE)
    element(page, "bar-action").tap()  # "Join the queue"
    expect(element(page, "bar-status")).to_have_text(re.compile(r"Number [12] in line"))
    expect(element(page, "bar-note")).to_contain_text("Estimated wait:")
    pages.snap(page, "waiting", full_page=False)

    status, body = api(
        ui_server, "PATCH", f"/api/admin/events/{event}",
        {"admission_rate": 50, "max_active_shoppers": 10}, token=admin_token(ui_server),
    )  # fmt: skip
    assert status == 200, (status, body)
    # Admitted while looking at the map: the bar says so, and until when.
    turn = re.compile(r"Your turn — hold seats by \d\d:\d\d")
    expect(element(page, "bar-note")).to_have_text(turn)
    expect(element(page, "bar-action")).to_have_text("Hold seat")
    expect(element(page, "bar-note")).to_be_in_viewport()
    pages.snap(page, "admitted", full_page=False)


def test_checkout_from_the_bar_lands_below_the_top_bar_ready_for_the_address(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Checkout Night", layout=LAYOUT)
    page = pages.open(event_url(ui_server, event), "tablet", profile=TABLET)
    assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).position") == "sticky"
    page.touchscreen.tap(*seat_point(page, "STALLS-C-10"))
    element(page, "bar-action").tap()
    expect(element(page, "hold-countdown")).to_be_visible()

    page.evaluate("() => window.scrollTo(0, 0)")  # back up at the map
    checkout = element(page, "bar-action")
    expect(checkout).to_have_text("Checkout")
    checkout.tap()
    email = element(page, "checkout-email")
    expect(email).to_be_focused()  # it is empty: that is what Pay waits for
    wait_scrolled(page)
    heading = page.get_by_role("heading", name="Your seats are held").bounding_box()
    topbar = page.locator(".topbar").bounding_box()
    assert heading is not None and topbar is not None
    below = heading["y"] - (topbar["y"] + topbar["height"])
    assert 0 <= below <= 40, (heading, topbar)  # just below the top bar, not under it
    # The keyboard is up: the bar steps aside; and Pay says why it waits.
    expect(element(page, "sticky-bar")).to_be_hidden()
    expect(element(page, "pay-button")).to_be_disabled()
    expect(element(page, "pay-button")).to_have_accessible_description(
        "Enter your e-mail address above to pay."
    )
    pages.snap(page, "checkout", full_page=False)
    email.fill("tablet@example.com")
    expect(element(page, "pay-why")).to_have_count(0)
    expect(element(page, "pay-button")).to_be_enabled()
