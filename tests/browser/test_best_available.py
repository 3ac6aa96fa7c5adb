"""Best available from a phone (390x844, touch) against a real node: the form asks, the server
picks and holds, the map shows the held seats as the buyer's own; the wheelchair choice appears
only where the layout marks wheelchair spaces and holds one with its companion seat; and when no
block is left the page says so in words. Screenshots under test-artifacts/browser/<test>/."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import (
    PHONE,
    Pages,
    api_seats,
    create_event,
    element,
    event_url,
    hold_via_api,
    wait_seat_map,
    wait_seat_status,
)
from tests.browser.test_seat_map import LAYOUT
from tests.conftest import ServerProcess

#: The seat-map test's three sections, with two wheelchair spaces and their companion seats at
#: the ends of the back row of the stalls.
ACCESSIBLE_LAYOUT: dict[str, Any] = {
    **LAYOUT,
    "accessible": ["STALLS-J-1", "STALLS-J-30"],
    "companion": ["STALLS-J-2", "STALLS-J-29"],
}


def mine(page: Any, seat_id: str) -> Any:
    return page.evaluate("seat => window.__concertHub.seatMap.mine(seat)", seat_id)


def test_best_available_from_a_phone(ui_server: ServerProcess, pages: Pages) -> None:
    event = create_event(ui_server, "Best Night", layout=ACCESSIBLE_LAYOUT)
    page = pages.open(event_url(ui_server, event), "phone", profile=PHONE)
    wait_seat_map(page, "STALLS-A-15")
    button = element(page, "best-button")
    button.scroll_into_view_if_needed()
    expect(element(page, "best-accessible")).to_be_visible()  # the layout marks some
    element(page, "best-count").select_option("2")
    expect(button).to_have_text("Find the best 2 seats")
    pages.snap(page, "phone-best-form", full_page=False)

    button.tap()
    expect(element(page, "hold-countdown")).to_be_visible()
    # The front row of the first section, its middle: seats 15 and 16 of 30.
    for seat in ("STALLS-A-15", "STALLS-A-16"):
        wait_seat_status(page, seat, "held")
        assert mine(page, seat) == "held"
    assert {s: api_seats(ui_server, event)[s] for s in ("STALLS-A-15", "STALLS-A-16")} == {
        "STALLS-A-15": "held",
        "STALLS-A-16": "held",
    }
    expect(element(page, "bar-summary")).to_contain_text("2 seats held")
    pages.snap(page, "phone-best-held", full_page=False)
    element(page, "seat-map").scroll_into_view_if_needed()
    pages.snap(page, "phone-best-on-the-map", full_page=False)

    # A wheelchair user on another phone: a wheelchair space and its companion seat.
    other = pages.open(event_url(ui_server, event), "wheelchair", profile=PHONE)
    wait_seat_map(other, "STALLS-J-1")
    element(other, "best-accessible").check()
    element(other, "best-count").select_option("2")
    element(other, "best-section").select_option("STALLS")
    element(other, "best-button").tap()
    expect(element(other, "hold-countdown")).to_be_visible()
    for seat in ("STALLS-J-1", "STALLS-J-2"):
        wait_seat_status(other, seat, "held")
        assert mine(other, seat) == "held"
    pages.snap(other, "phone-wheelchair-held", full_page=False)

    # Everyone's map shows both holds.
    desktop = pages.open(event_url(ui_server, event), "desktop")
    for seat in ("STALLS-A-15", "STALLS-A-16", "STALLS-J-1", "STALLS-J-2"):
        wait_seat_status(desktop, seat, "held")
    pages.snap(desktop, "desktop-after-best-available")


def test_no_block_left_is_said_in_words_and_the_wheelchair_choice_is_not_offered(
    ui_server: ServerProcess, pages: Pages
) -> None:
    # One section S of 2 rows x 5, no marked seats; every other seat goes to someone else.
    event = create_event(ui_server, "Nearly Gone")
    hold_via_api(ui_server, "early-1", event, ["S-A-1", "S-A-3", "S-A-5"])
    hold_via_api(ui_server, "early-2", event, ["S-B-2", "S-B-4"])
    page = pages.open(event_url(ui_server, event), "phone", profile=PHONE)
    wait_seat_map(page, "S-A-1")
    expect(element(page, "best-accessible")).to_have_count(0)
    element(page, "best-count").select_option("2")
    button = element(page, "best-button")
    button.scroll_into_view_if_needed()
    button.tap()
    expect(element(page, "error-message")).to_have_text(
        "No 2 seats side by side are left. Try fewer seats, or pick seats on the map."
    )
    expect(element(page, "hold-countdown")).to_have_count(0)
    pages.snap(page, "phone-no-block", full_page=False)
    # A single seat is still there: the first section's front row first.
    element(page, "best-count").select_option("1")
    button.tap()
    expect(element(page, "hold-countdown")).to_be_visible()
    wait_seat_status(page, "S-A-2", "held")
    assert mine(page, "S-A-2") == "held"
