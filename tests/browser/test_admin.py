"""The admin console in the browser: an announcement sent to everyone reaches audience pages;
the order desk closes an order's file at each new search; the audit log says what a change
changed, to the second."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import expect

from tests.browser.conftest import (
    Pages,
    admin_console,
    admin_token,
    buy_via_api,
    create_event,
    element,
    event_url,
    numbers_in,
)
from tests.conftest import ServerProcess, rest


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
