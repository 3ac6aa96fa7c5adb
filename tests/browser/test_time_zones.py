"""An event's times on its venue's clock: a buyer in London reads a Berlin concert in Berlin time,
naming the zone (event list, event page, "Sale opens …", order page, My tickets), and the
console creates an event from wall-clock times typed in the zone chosen for it, summer and
winter each with their own offset, whatever zone the operator's browser sits in."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import (
    DESKTOP,
    Pages,
    admin_token,
    create_event,
    element,
    hold_seats,
    numbers_in,
    pay,
    ticket_codes,
    wait_seat_map,
)
from tests.conftest import ServerProcess, rest

#: A buyer in London (UTC+0 in winter, +1 in summer), an operator in New York.
LONDON: dict[str, Any] = {**DESKTOP, "timezone_id": "Europe/London"}
NEW_YORK: dict[str, Any] = {**DESKTOP, "timezone_id": "America/New_York"}
#: Any time of day in a Berlin zone (CET in winter, CEST in summer).
BERLIN_TIME = r"\w{3}, \d{1,2} \w{3} \d{4}, \d\d:\d\d CES?T"


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def test_a_buyer_in_london_reads_a_berlin_concert_in_berlin_time(
    ui_server: ServerProcess, pages: Pages
) -> None:
    # 17:00 UTC on 7 June 2031 is 19:00 CEST in Berlin (18:00 BST in London); cancellations
    # close 48 hours before, 19:00 CEST on the 5th.
    name = f"Berlin Night {uuid.uuid4().hex[:6]}"
    event = create_event(ui_server, name, timezone="Europe/Berlin",
                         starts_at="2031-06-07T17:00:00Z", refund_cutoff_hours=48)  # fmt: skip
    # A sale opening on 15 January 2031 at 09:00 UTC: 10:00 CET.
    later = create_event(ui_server, f"Later Night {uuid.uuid4().hex[:6]}", timezone="Europe/Berlin",
                         starts_at="2031-06-08T17:00:00Z", sale_opens_at="2031-01-15T09:00:00Z",
                         sale_closes_at="2031-06-08T16:00:00Z")  # fmt: skip
    status, body = rest(ui_server, "GET", f"/api/events/{event}")
    assert status == 200 and body["timezone"] == "Europe/Berlin", (status, body)

    page = pages.open(ui_server.http_url + "/", "london-buyer", LONDON)
    expect(element(page, f"event-link-{event}")).to_contain_text("Sat, 7 Jun 2031, 19:00 CEST")
    expect(element(page, f"event-link-{later}")).to_contain_text(
        "Sale opens Wed, 15 Jan 2031, 10:00 CET"
    )
    pages.snap(page, "event-list")

    element(page, f"event-link-{event}").click()
    expect(page.get_by_text("Browser Hall · Sat, 7 Jun 2031, 19:00 CEST")).to_be_visible()
    assert wait_seat_map(page, "S-A-1") == "available"
    hold_seats(page, ["S-A-1"])
    pay(page, "tok_visa")
    ticket_codes(page)
    expect(element(page, "order-event-start")).to_have_text("Sat, 7 Jun 2031, 19:00 CEST")
    summary = page.locator(".order__summary")
    expect(summary).to_contain_text(re.compile(rf"paid {BERLIN_TIME}"))
    expect(element(page, "cancel-section")).to_contain_text(
        "You can cancel until Thu, 5 Jun 2031, 19:00 CEST"
    )
    pages.snap(page, "order")

    page.goto(ui_server.http_url + "/#/tickets")
    expect(element(page, "order-list")).to_contain_text(name)
    expect(element(page, "order-list")).to_contain_text(re.compile(rf"bought {BERLIN_TIME}"))


def test_the_console_creates_an_event_from_times_on_the_venues_clock(
    ui_server: ServerProcess, pages: Pages
) -> None:
    admin = pages.open(ui_server.http_url + "/admin", "operator", NEW_YORK)
    element(admin, "admin-token").fill(admin_token(ui_server))
    element(admin, "admin-login").click()

    # The browser's zone by default, its times labelled with its name.
    zone = element(admin, "event-timezone")
    expect(zone).to_have_value("America/New_York")
    expect(admin.get_by_label(re.compile(r"^Starts \(GMT-[45]\)$"))).to_be_visible()

    name = f"Form Night {uuid.uuid4().hex[:6]}"
    element(admin, "event-name").fill(name)
    element(admin, "event-venue").fill("Philharmonie")
    zone.select_option("Europe/Berlin")
    # A summer start and close (CEST, UTC+2) and a winter opening (CET, UTC+1).
    element(admin, "event-starts").fill("2031-06-07T19:00")
    element(admin, "event-sale-opens").fill("2031-01-15T10:00")
    element(admin, "event-sale-closes").fill("2031-06-07T18:00")
    expect(admin.get_by_label("Starts (CEST)")).to_be_visible()
    expect(admin.get_by_label("Sale opens (CET)")).to_be_visible()
    pages.snap(admin, "create-form")
    element(admin, "create-event").click()
    result = element(admin, "create-result")
    expect(result).to_contain_text(name)
    event_id = numbers_in(result.inner_text())[0]

    status, event = rest(ui_server, "GET", f"/api/admin/events/{event_id}",
                         token=admin_token(ui_server))  # fmt: skip
    assert status == 200, (status, event)
    assert event["timezone"] == "Europe/Berlin"
    assert instant(event["starts_at"]) == datetime(2031, 6, 7, 17, 0, tzinfo=UTC)
    assert instant(event["sale_opens_at"]) == datetime(2031, 1, 15, 9, 0, tzinfo=UTC)
    assert instant(event["sale_closes_at"]) == datetime(2031, 6, 7, 16, 0, tzinfo=UTC)

    # The events panel shows the event on its own clock, not the operator's (13:00 GMT-4).
    row = element(admin, f"admin-event-{event_id}")
    expect(row).to_contain_text("Philharmonie · Sat, 7 Jun 2031, 19:00 CEST")
    expect(element(admin, f"admin-event-zone-{event_id}")).to_have_text("(Europe/Berlin)")
    expect(row).to_contain_text("sale Wed, 15 Jan 2031, 10:00 CET → Sat, 7 Jun 2031, 18:00 CEST")
    # The form keeps the zone for the next event.
    expect(zone).to_have_value("Europe/Berlin")
    pages.snap(admin, "created")
