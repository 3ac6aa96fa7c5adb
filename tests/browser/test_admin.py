"""The admin console in the browser: an announcement sent to everyone reaches audience pages."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import expect

from tests.browser.conftest import Pages, admin_token, create_event, element, event_url, numbers_in
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
