"""What the UI tells and where it leaves the user: a ticket that fits a phone, keyboard focus
that follows what happens (a new page, a hold, a failed payment), an e-mail field that says
what is wrong with it, an admission a screen reader announces, a sale that opens or is paused
while the page is open, the admin console's field errors and audit log, and a door scanner
that can be set up again."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    BUYER_EMAIL,
    Pages,
    admin_console,
    admin_token,
    api,
    create_event,
    element,
    event_url,
    hold_seats,
    pay,
    ticket_codes,
    wait_seat_map,
)
from tests.conftest import ServerProcess

#: What the waiting room says at admission (with a typographic apostrophe, U+2019).
YOUR_TURN = "It\u2019s your turn!"
#: The phone the order page must fit (CSS px), as in conftest.PHONE.
PHONE_WIDTH, PHONE_HEIGHT = 390, 844


def focused_text(page: Page) -> str:
    return str(page.evaluate("() => (document.activeElement?.textContent ?? '').trim()"))


def hold_the_first_seat(page: Page) -> None:
    """Pick the map's first seat from the keyboard and hold it: the sale takes holds."""
    element(page, "seat-map").focus()
    page.keyboard.press("Home")
    page.keyboard.press("Enter")
    element(page, "hold-button").click()
    expect(page.get_by_text("Your seats are held")).to_be_visible()


def test_the_ticket_fits_a_phone_screen(ui_server: ServerProcess, pages: Pages) -> None:
    event = create_event(ui_server, "Phone Ticket Night")
    page = pages.open(event_url(ui_server, event), "buyer")
    hold_seats(page, ["S-A-1"])
    pay(page, "tok_visa")
    assert ticket_codes(page)
    page.set_viewport_size({"width": PHONE_WIDTH, "height": PHONE_HEIGHT})
    # Nothing sticks out sideways: the page is as wide as the phone, no horizontal scrolling.
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"the order page is {width} px wide on a {PHONE_WIDTH} px phone"
    pages.snap(page, "order-on-phone", full_page=False)


def test_keyboard_focus_follows_the_page_hold_and_a_failed_payment(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Focus Night")
    page = pages.open(ui_server.http_url + "/", "keyboard")
    link = element(page, f"event-link-{event}")
    link.focus()
    page.keyboard.press("Enter")
    # A new page: focus is on its heading, which names it.
    expect(page.locator("h1")).to_have_text("Focus Night")
    expect(page.locator("h1")).to_be_focused()

    wait_seat_map(page, "S-A-1")
    element(page, "seat-map").focus()
    page.keyboard.press("Home")
    page.keyboard.press("Enter")
    element(page, "hold-button").focus()
    page.keyboard.press("Enter")
    element(page, "hold-countdown").wait_for(state="visible")
    # The payment panel replaced the Hold button: focus is on it, not back at the page's top.
    expect(page.get_by_role("heading", name="Your seats are held")).to_be_focused()

    page.keyboard.press("Tab")
    expect(element(page, "checkout-email")).to_be_focused()
    page.keyboard.type(BUYER_EMAIL)
    element(page, "card-select").select_option("tok_declined")
    element(page, "pay-button").focus()
    page.keyboard.press("Enter")
    expect(element(page, "error-message")).to_contain_text("declined")
    # The Pay button, disabled while it worked, has the focus again: Enter tries again.
    expect(element(page, "pay-button")).to_be_focused()
    pages.snap(page, "declined-focus")


def test_the_checkout_says_what_is_wrong_with_the_e_mail(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "E-mail Night")
    page = pages.open(event_url(ui_server, event), "buyer")
    hold_seats(page, ["S-A-2"])
    field = element(page, "checkout-email")
    field.fill("not-an-address")
    field.press("Tab")
    # Seen under the field, and read out with it (aria-describedby), and with the Pay button
    # that this keeps disabled.
    expect(page.get_by_text("Enter a valid e-mail address")).to_be_visible()
    expect(field).to_have_accessible_description(re.compile("Enter a valid e-mail address"))
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(element(page, "pay-button")).to_be_disabled()
    expect(element(page, "pay-button")).to_have_accessible_description(
        re.compile("Enter a valid e-mail address")
    )
    pages.snap(page, "bad-e-mail")
    field.fill("")
    expect(page.get_by_text("Enter the e-mail address your tickets")).to_be_visible()
    field.fill(BUYER_EMAIL)
    expect(page.get_by_text(re.compile("Enter (a valid|the) e-mail"))).to_have_count(0)
    expect(element(page, "pay-button")).to_be_enabled()


def test_the_admission_is_announced_by_the_live_region_that_gave_the_position(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(
        ui_server, "Announced Queue", waiting_room=True, admission_rate=0.01,
        max_active_shoppers=1,
    )  # fmt: skip
    alice = pages.open(event_url(ui_server, event), "alice")
    element(alice, "join-queue").click()
    expect(element(alice, "queue-state")).to_have_text("admitted")
    bob = pages.open(event_url(ui_server, event), "bob")
    element(bob, "join-queue").click()
    expect(element(bob, "queue-state")).to_have_text("waiting")
    # The live regions a screen reader is following while Bob waits.
    bob.evaluate(
        "() => { window.__regions = [...document.querySelectorAll('[aria-live]')]"
        ".filter(r => r.getAttribute('aria-live') !== 'off'); }"
    )
    status, body = api(
        ui_server, "PATCH", f"/api/admin/events/{event}",
        {"admission_rate": 50, "max_active_shoppers": 10}, token=admin_token(ui_server),
    )  # fmt: skip
    assert status == 200, (status, body)
    expect(bob.get_by_text(YOUR_TURN)).to_be_visible()
    announced = bob.evaluate(
        """() => window.__regions.filter(r => r.isConnected)
                   .map(r => r.textContent).join(' | ')"""
    )
    assert YOUR_TURN in announced, f"no live region announces the admission: {announced}"
    assert "admitted" in announced, announced
    pages.snap(bob, "admitted-announced")


def test_a_page_open_before_the_sale_opens_is_on_sale_at_the_opening_time(
    ui_server: ServerProcess, pages: Pages
) -> None:
    # Buyers sit on the page for the opening minute: it must turn at that minute, by itself.
    opens = datetime.now(UTC) + timedelta(seconds=6)
    event = create_event(ui_server, "Opening Night",
                         sale_opens_at=opens.isoformat().replace("+00:00", "Z"))  # fmt: skip
    page = pages.open(event_url(ui_server, event), "early-bird")
    expect(page.get_by_text(re.compile(r"^Sale opens "))).to_be_visible()
    wait_seat_map(page, "S-A-3")
    expect(page.get_by_text("This event is not on sale right now.")).to_be_visible()
    # No click, no reload, no push: the clock alone opens the sale on the page.
    expect(page.get_by_text("On sale", exact=True)).to_be_visible(timeout=30_000)
    expect(page.get_by_text("This event is not on sale right now.")).to_have_count(0)
    hold_the_first_seat(page)
    pages.snap(page, "opened")


def test_a_sale_paused_while_the_page_is_open_shows_as_paused(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Paused Night")
    page = pages.open(event_url(ui_server, event), "buyer")
    expect(page.get_by_text("On sale", exact=True)).to_be_visible()
    wait_seat_map(page, "S-A-3")
    status, body = api(ui_server, "PATCH", f"/api/admin/events/{event}", {"status": "paused"},
                       token=admin_token(ui_server))  # fmt: skip
    assert status == 200, (status, body)
    # The event's status topic tells the page at once: no click, no reload. Its badge and hint
    # say so instead of "On sale".
    expect(page.get_by_text("Sale paused", exact=True)).to_be_visible()
    expect(page.get_by_text("On sale", exact=True)).to_have_count(0)
    expect(page.get_by_text("This event is not on sale right now.")).to_be_visible()
    pages.snap(page, "paused")
    status, body = api(ui_server, "PATCH", f"/api/admin/events/{event}", {"status": "on_sale"},
                       token=admin_token(ui_server))  # fmt: skip
    assert status == 200, (status, body)
    expect(page.get_by_text("On sale", exact=True)).to_be_visible()
    hold_the_first_seat(page)


def test_the_console_names_the_field_a_change_got_wrong(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Field Error Night")
    admin = admin_console(ui_server, pages)
    row = element(admin, f"admin-event-{event}")
    rate = element(admin, f"admission-rate-{event}")
    rate.fill("")
    element(admin, f"save-pacing-{event}").click()
    expect(row.get_by_role("alert")).to_have_text("Admissions / s is required.")
    rate.fill("2")
    element(admin, f"max-shoppers-{event}").fill("2000000")  # the server allows 1,000,000
    element(admin, f"save-pacing-{event}").click()
    # The server's schema error, in the form's words: the box it is about and why.
    expect(row.get_by_role("alert")).to_contain_text("Max shoppers must be at most 1,000,000.")
    expect(row.get_by_role("alert")).not_to_contain_text("max_active_shoppers")
    pages.snap(admin, "field-error")

    # The create form stops at the server's limit instead of sending a name it refuses.
    element(admin, "event-name").fill("N" * 250)
    assert len(element(admin, "event-name").input_value()) == 200
    element(admin, "event-venue").fill("V" * 250)
    assert len(element(admin, "event-venue").input_value()) == 200


def test_the_audit_log_shows_the_consoles_own_event_changes(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Audited Night")
    admin = admin_console(ui_server, pages)
    entries = admin.get_by_test_id("audit-entry")
    element(admin, f"admin-event-{event}").wait_for()
    before = entries.count()
    element(admin, f"status-paused-{event}").click()
    expect(element(admin, f"admin-event-status-{event}")).to_have_text("paused")
    # The pause is in the log without reloading the page.
    expect(entries).to_have_count(before + 1)

    # A change made elsewhere (another admin, the API) shows with the log's Refresh button.
    status, body = api(ui_server, "PATCH", f"/api/admin/events/{event}", {"status": "on_sale"},
                       token=admin_token(ui_server))  # fmt: skip
    assert status == 200, (status, body)
    admin.get_by_test_id("audit-refresh").click()
    expect(entries).to_have_count(before + 2)
    pages.snap(admin, "audit-log")


def test_the_door_scanner_can_change_its_event_and_its_token(
    ui_server: ServerProcess, pages: Pages
) -> None:
    real = create_event(ui_server, "Door Change Night")
    body = {"device": f"dev-{time.time_ns()}", "gate": "East"}
    status, scanner = api(ui_server, "POST", "/api/admin/scanners", body,
                          token=admin_token(ui_server))  # fmt: skip
    assert status == 201, (status, scanner)
    page = pages.open(ui_server.http_url + "/scan", "door")
    element(page, "scan-token").fill("not-a-real-token")
    page.get_by_role("button", name="Start").click()
    # A mistyped event id is kept across reloads: the scanner offers to change it.
    element(page, "scan-event").fill("999999")
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_text("event 999999")).to_be_visible()
    expect(page.get_by_text("No gate")).to_be_visible()  # not "Gate ?"
    page.reload()
    expect(page.get_by_text("event 999999")).to_be_visible()
    page.get_by_role("button", name="Change event").click()
    element(page, "scan-event").fill(str(real))
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_text(f"event {real}")).to_be_visible()
    # The bad token is refused: the scanner says so and lets the staff enter another.
    expect(element(page, "scan-error")).to_contain_text("no longer valid")
    page.get_by_role("button", name="Sign out").click()
    element(page, "scan-token").wait_for()
    page.reload()
    element(page, "scan-token").fill(str(scanner["token"]))
    page.get_by_role("button", name="Start").click()
    # A token for no event in particular asks for the event again: none is kept.
    element(page, "scan-event").fill(str(real))
    page.get_by_role("button", name="Start").click()
    expect(element(page, "scan-list")).to_contain_text("tickets cached")
    expect(page.get_by_text("Gate East")).to_be_visible()
    pages.snap(page, "scanner-after-change")
