"""The admin console in the browser: an announcement sent to everyone reaches audience pages;
the order desk closes an order's file at each new search; the audit log says what a change
changed, to the second; a refusal is said in the form's words and leaves the setting in force
in its box; the stats table scrolls in its panel; times name their zone; closing a sale asks
first; a refund that went through shows no earlier error."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    DESKTOP,
    SERVER_FLAGS,
    Pages,
    admin_console,
    admin_token,
    buy_via_api,
    create_event,
    element,
    event_url,
    numbers_in,
)
from tests.conftest import ServerProcess, free_port, rest


def test_an_announcement_to_everyone_reaches_the_audience(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Announcement Night")
    # Two people in the audience: one on the event list, one on an event's page.
    on_list = pages.open(ui_server.http_url + "/", "audience-list")
    on_event = pages.open(event_url(ui_server, event), "audience-event")
    for page in (on_list, on_event):
        expect(element(page, "connection-state")).to_have_text("connected")

    admin = pages.open(ui_server.http_url + "/admin", "admin")
    element(admin, "admin-token").fill(admin_token(ui_server))
    element(admin, "admin-login").click()
    # The console counts the live connections: at least the two audience pages.
    connections = element(admin, "stats-connections")
    expect(connections).to_have_text(re.compile(r"\d"))
    expect(connections).not_to_have_text(re.compile(r"^\D*[01]\D*$"))
    assert max(numbers_in(connections.inner_text())) >= 2, connections.inner_text()
    pages.snap(admin, "admin-console")

    text = f"Doors open at 19:00 - {uuid.uuid4().hex[:8]}"
    element(admin, "broadcast-text").fill(text)
    element(admin, "broadcast-event").select_option("")
    element(admin, "broadcast-send").click()

    for page in (on_list, on_event):
        expect(element(page, "announcement")).to_contain_text(text)
    pages.snap(on_list, "audience-list-announcement")
    pages.snap(on_event, "audience-event-announcement")


def test_the_console_charts_the_waiting_rooms_and_shows_the_admission_rate(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Charted Night", waiting_room=True,
                         admission_mode="adaptive", admission_rate=20,
                         admission_rate_min=2, admission_rate_max=40)  # fmt: skip
    admin = pages.open(ui_server.http_url + "/admin", "admin-charts")
    element(admin, "admin-token").fill(admin_token(ui_server))
    element(admin, "admin-login").click()
    # Pictures, not tables: uPlot draws on canvases.
    for chart in ("chart-waiting", "chart-admissions", "chart-abandonment",
                  "chart-time-to-admission"):  # fmt: skip
        expect(element(admin, chart).locator("canvas")).to_have_count(1)
    # The stats table says the rate now and why.
    rate = element(admin, f"stats-rate-{event}")
    expect(rate).to_contain_text("/s")
    expect(rate).to_contain_text(re.compile(r"start|within budget|at maximum|over|budget"))
    pages.snap(admin, "admin-queue-charts")


def test_the_create_form_sets_the_waiting_room_mode_and_proof_of_work(
    ui_server: ServerProcess, pages: Pages
) -> None:
    admin = pages.open(ui_server.http_url + "/admin", "admin-create-adaptive")
    element(admin, "admin-token").fill(admin_token(ui_server))
    element(admin, "admin-login").click()
    name = f"Adaptive Night {uuid.uuid4().hex[:6]}"
    element(admin, "event-name").fill(name)
    element(admin, "event-venue").fill("Hall")
    element(admin, "create-waiting-room").check()
    element(admin, "create-admission-mode").select_option("adaptive")
    element(admin, "create-admission-rate-min").fill("3")
    element(admin, "create-admission-rate-max").fill("60")
    element(admin, "create-pow-difficulty").fill("12")
    element(admin, "create-event").click()
    result = element(admin, "create-result")
    expect(result).to_contain_text(name)
    event_id = numbers_in(result.inner_text())[0]
    status, event = rest(ui_server, "GET", f"/api/events/{event_id}")
    assert status == 200, event
    assert (event["admission_mode"], event["admission_rate_min"], event["admission_rate_max"],
            event["pow_difficulty"]) == ("adaptive", 3, 60, 12)  # fmt: skip
    pages.snap(admin, "admin-create-adaptive")


def test_a_new_order_desk_search_closes_the_order_file_open_before(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Desk Search Night")
    tag = uuid.uuid4().hex[:8]
    alone, twice = f"alone.{tag}@example.com", f"twice.{tag}@example.com"
    first = buy_via_api(ui_server, "fan-alone", event, ["S-A-1"], alone)["order_id"]
    both = [buy_via_api(ui_server, "fan-twice", event, [seat], twice)["order_id"]
            for seat in ("S-A-2", "S-A-3")]  # fmt: skip
    admin = admin_console(ui_server, pages, "desk")
    desk = admin.get_by_role("region", name="Order desk")
    query, file = element(admin, "desk-query"), element(admin, "order-file")

    def search(text: str) -> None:
        query.fill(text)
        element(admin, "desk-search").click()

    search(alone)  # one order: its file opens, with the buttons that act on it
    expect(file).to_contain_text(first)
    expect(element(admin, "desk-cancel")).to_be_visible()

    # Nothing found: no order's file (nor its Cancel and Resend buttons) is left under it.
    search(f"nobody.{tag}@example.com")
    expect(desk.get_by_text("No order matches.")).to_be_visible()
    expect(file).to_have_count(0)
    expect(element(admin, "desk-cancel")).to_have_count(0)
    expect(element(admin, "desk-resend")).to_have_count(0)
    pages.snap(admin, "desk-no-match")

    # Several found: a list to choose from, and still no file until one is chosen.
    search(alone)
    expect(file).to_contain_text(first)
    search(twice)
    for order_id in both:
        expect(element(admin, f"desk-result-{order_id}")).to_be_visible()
    expect(file).to_have_count(0)
    element(admin, f"desk-result-{both[1]}").click()
    expect(file).to_contain_text(both[1])
    expect(file).to_contain_text(twice)


def test_the_audit_log_says_what_an_event_change_changed_to_the_second(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Audit Details Night")
    admin = admin_console(ui_server, pages, "audit")
    status, body = rest(ui_server, "PATCH", f"/api/admin/events/{event}",
                        {"status": "paused", "admission_rate": 5},
                        token=admin_token(ui_server))  # fmt: skip
    assert status == 200, (status, body)
    status, log = rest(ui_server, "GET", f"/api/admin/audit?target=event:{event}",
                       token=admin_token(ui_server))  # fmt: skip
    assert status == 200 and log[0]["action"] == "event.update", (status, log)
    at = log[0]["at"]

    element(admin, "audit-refresh").click()
    on_event = admin.get_by_text(f"event:{event}", exact=True)
    row = element(admin, "audit-entry").filter(has=on_event).filter(has_text="event.update")
    expect(row).to_have_count(1)
    # What changed, in words (the API's details), not a bare "event.update".
    expect(row).to_contain_text("status: paused")
    expect(row).to_contain_text("admission_rate: 5")
    # When, to the second: the entry's own time, as the browser's clock reads it.
    seconds = admin.evaluate(
        "at => new Date(at).toLocaleTimeString('en-GB', {hour: '2-digit', minute: '2-digit', "
        "second: '2-digit'})",
        at,
    )
    expect(row.locator("time")).to_have_attribute("datetime", at)
    expect(row.locator("time")).to_contain_text(str(seconds))
    # The event's creation shows what it was created as.
    created = element(admin, "audit-entry").filter(has=on_event).filter(has_text="event.create")
    expect(created).to_contain_text("name: Audit Details Night")
    pages.snap(admin, "audit-details")


def signed_in(node: ServerProcess, pages: Pages, name: str, profile: dict[str, Any]) -> Page:
    """The console at ``/admin`` in a browser of ``profile`` (window size, time zone)."""
    admin = pages.open(node.http_url + "/admin", name, profile)
    element(admin, "admin-token").fill(admin_token(node))
    element(admin, "admin-login").click()
    return admin


def test_a_refusal_is_said_in_the_forms_words_and_the_box_keeps_the_setting_in_force(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Refused Pacing Night", waiting_room=True,
                         admission_rate=20)  # fmt: skip
    admin = admin_console(ui_server, pages, "refusals")
    row = element(admin, f"admin-event-{event}")
    rate = element(admin, f"admission-rate-{event}")
    expect(rate).to_have_value("20")
    rate.fill("20000")  # the server allows 10,000 a second
    element(admin, f"save-pacing-{event}").click()
    alert = row.get_by_role("alert")
    # The form's label and the limit in words, not the API's field name or its phrasing.
    expect(alert).to_contain_text("Admissions / s must be at most 10,000.")
    expect(alert).to_contain_text("Not saved")
    expect(alert).not_to_contain_text("admission_rate")
    # The box shows the rate in force again, not the refused one.
    expect(rate).to_have_value("20")
    status, body = rest(ui_server, "GET", f"/api/admin/events/{event}",
                        token=admin_token(ui_server))  # fmt: skip
    assert status == 200 and body["admission_rate"] == 20, (status, body)
    pages.snap(admin, "pacing-refused")

    # The create form: a price over the server's limit is named by its tier, in euros.
    element(admin, "event-name").fill(f"Priced Night {uuid.uuid4().hex[:6]}")
    element(admin, "event-venue").fill("Hall")
    admin.get_by_label("Price (EUR)").first.fill("200000")
    element(admin, "create-event").click()
    error = element(admin, "error-message")
    expect(error).to_contain_text("Price (EUR) of tier Premium must be at most €100,000.")
    expect(error).not_to_contain_text("price_cents")
    expect(error).not_to_contain_text("10000000")


def test_the_stats_table_scrolls_in_its_panel_on_a_narrow_window(
    ui_server: ServerProcess, pages: Pages
) -> None:
    event = create_event(ui_server, "Philharmonic Winter Gala with Special Guests " * 2,
                         waiting_room=True, admission_mode="adaptive")  # fmt: skip
    window = {"viewport": {"width": 1100, "height": 900}}
    admin = signed_in(ui_server, pages, "narrow-stats", window)
    expect(element(admin, f"stats-rate-{event}")).to_be_attached()
    table = admin.get_by_role("region", name="Per event")
    for width in (1100, 800, 390):
        admin.set_viewport_size({"width": width, "height": 900})
        # The page itself never scrolls sideways: the table does, inside its panel …
        fits = admin.evaluate(
            """() => {
                 const wrap = document.querySelector('[role=region][aria-label="Per event"]');
                 const card = wrap.closest('.card').getBoundingClientRect();
                 const box = wrap.getBoundingClientRect();
                 return {page: document.documentElement.scrollWidth <= window.innerWidth,
                         inCard: box.left >= card.left && box.right <= card.right,
                         inWindow: card.right <= window.innerWidth};
               }"""
        )
        assert fits == {"page": True, "inCard": True, "inWindow": True}, (width, fits)
        # … and scrolled to its end, the last column is in view.
        table.evaluate("wrap => { wrap.scrollLeft = wrap.scrollWidth; }")
        last = admin.get_by_role("columnheader", name="Admitting")
        box, shown = last.bounding_box(), table.bounding_box()
        assert box is not None and shown is not None
        left, right = shown["x"], shown["x"] + shown["width"]
        assert left <= box["x"] and box["x"] + box["width"] <= right + 1, (width, box, shown)
    pages.snap(admin, "stats-narrow")


def test_console_times_name_their_time_zone(ui_server: ServerProcess, pages: Pages) -> None:
    event = create_event(ui_server, "Zoned Night", starts_at="2031-01-15T19:00:00Z",
                         timezone="Europe/Berlin")  # fmt: skip
    admin = signed_in(ui_server, pages, "zones", {**DESKTOP, "timezone_id": "Europe/Berlin"})
    row = element(admin, f"admin-event-{event}")
    # 19:00 UTC is 20:00 in Berlin in January: the row says so, and in which zone (the event's;
    # test_time_zones.py has an operator in another zone than the venue).
    expect(row).to_contain_text("Wed, 15 Jan 2031, 20:00 CET")
    expect(row).to_contain_text(re.compile(r"sale \w{3}, \d+ \w{3} \d{4}, \d\d:\d\d CES?T → "))
    # The create form's local times say which zone they are typed in.
    expect(admin.get_by_label(re.compile(r"^Starts \(CES?T\)$"))).to_be_visible()


def test_closing_a_sale_asks_first_naming_the_event(ui_server: ServerProcess, pages: Pages) -> None:
    name = f"Closing Night {uuid.uuid4().hex[:6]}"
    event = create_event(ui_server, name)
    admin = admin_console(ui_server, pages, "close")
    close = element(admin, f"status-closed-{event}")
    status = element(admin, f"admin-event-status-{event}")
    dialog = element(admin, f"confirm-close-{event}")

    def on_server() -> str:
        code, body = rest(ui_server, "GET", f"/api/admin/events/{event}",
                          token=admin_token(ui_server))  # fmt: skip
        assert code == 200, (code, body)
        return str(body["status"])

    close.click()  # one click only asks
    expect(admin.get_by_role("alertdialog", name=f"Close the sale of {name}?")).to_be_visible()
    expect(dialog).to_contain_text(name)
    expect(element(admin, f"confirm-close-no-{event}")).to_be_focused()  # the safe answer
    pages.snap(admin, "close-confirm")
    assert on_server() == "on_sale"
    admin.keyboard.press("Escape")  # changed their mind
    expect(dialog).to_have_count(0)
    expect(close).to_be_focused()
    expect(status).to_have_text("on sale")
    assert on_server() == "on_sale"

    close.click()
    element(admin, f"confirm-close-yes-{event}").click()
    expect(status).to_have_text("closed")
    expect(dialog).to_have_count(0)
    assert on_server() == "closed"


@pytest.fixture
def refund_outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A node whose test gateway fails the first refund (it succeeds when retried)."""
    node = ServerProcess(free_port(), free_port(), tmp_path_factory.mktemp("refund-outage"),
                         {**SERVER_FLAGS, "fault_refund_failures": 1})  # fmt: skip
    node.start()
    yield node
    node.stop()


def test_a_refund_that_went_through_shows_no_earlier_error(
    refund_outage: ServerProcess, pages: Pages
) -> None:
    event = create_event(refund_outage, "Refund Outage Night")
    order = buy_via_api(refund_outage, "fan-refund", event, ["S-A-1"],
                        f"refund.{uuid.uuid4().hex[:8]}@example.com")["order_id"]  # fmt: skip
    token = admin_token(refund_outage)
    status, body = rest(refund_outage, "POST", f"/api/admin/orders/{order}/cancel",
                        {"reason": "gateway test"}, token=token)  # fmt: skip
    assert status == 200, (status, body)
    # The first attempt failed (the record keeps its error); the retry went through.
    deadline = time.monotonic() + 30
    while True:
        status, file = rest(refund_outage, "GET", f"/api/admin/orders/{order}", token=token)
        assert status == 200, (status, file)
        if file["refund"]["status"] == "refunded" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert file["refund"]["status"] == "refunded", file["refund"]
    assert file["refund"]["last_error"], file["refund"]  # what the console must not show now

    admin = admin_console(refund_outage, pages, "refund-desk")
    element(admin, "desk-query").fill(order)
    element(admin, "desk-search").click()
    refund = element(admin, "refund-status")
    expect(refund).to_contain_text("refunded")
    expect(refund).to_contain_text("2 attempts")
    expect(refund).not_to_contain_text("error")
    expect(refund).not_to_contain_text(file["refund"]["last_error"])
    pages.snap(admin, "refund-went-through")
