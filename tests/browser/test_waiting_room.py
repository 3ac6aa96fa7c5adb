"""The waiting room in the browser: the second user waits with a position and gets in when the
admin lets more shoppers in, then can hold seats."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import (
    Pages,
    admin_token,
    api,
    api_seats,
    create_event,
    element,
    event_url,
    hold_seats,
    numbers_in,
)
from tests.conftest import ServerProcess


def test_the_second_user_waits_then_is_admitted_and_can_hold(
    ui_server: ServerProcess, pages: Pages
) -> None:
    # One shopper at a time, and a new admission only every 100 s: whoever comes second waits.
    event = create_event(
        ui_server, "Queue Night", waiting_room=True, admission_rate=0.01, max_active_shoppers=1
    )
    alice = pages.open(event_url(ui_server, event), "alice")
    element(alice, "join-queue").click()
    expect(element(alice, "queue-state")).to_have_text("admitted")
    pages.snap(alice, "alice-admitted")

    bob = pages.open(event_url(ui_server, event), "bob")
    element(bob, "join-queue").click()
    expect(element(bob, "queue-state")).to_have_text("waiting")
    position = element(bob, "queue-position")
    expect(position).to_have_text(re.compile(r"\d"))
    assert 1 in numbers_in(position.inner_text()), position.inner_text()  # next in line
    pages.snap(bob, "bob-waiting")

    # The admin lets more shoppers in, faster: Bob is admitted without doing anything.
    status, body = api(
        ui_server, "PATCH", f"/api/admin/events/{event}",
        {"admission_rate": 50, "max_active_shoppers": 10}, token=admin_token(ui_server),
    )  # fmt: skip
    assert status == 200, (status, body)
    expect(element(bob, "queue-state")).to_have_text("admitted")
    pages.snap(bob, "bob-admitted")

    hold_seats(bob, ["S-B-4"])
    pages.snap(bob, "bob-holding")
    assert api_seats(ui_server, event)["S-B-4"] == "held"


def test_joining_solves_the_proof_of_work_in_a_worker_with_progress(
    ui_server: ServerProcess, pages: Pages
) -> None:
    # 2^16 tries on average: long enough to see the progress bar, short for a test.
    event = create_event(ui_server, "Costly Night", waiting_room=True, pow_difficulty=16)
    carol = pages.open(event_url(ui_server, event), "carol")
    # The search can be lucky and end within a frame or two, so the bar is watched from the
    # page itself rather than polled for: did it ever appear?
    carol.evaluate("""() => {
        window.sawProgress = false;
        new MutationObserver(() => {
            if (document.querySelector('[data-testid="pow-progress"]')) window.sawProgress = true;
        }).observe(document.body, { childList: true, subtree: true });
    }""")
    element(carol, "join-queue").click()
    pages.snap(carol, "carol-proving")
    expect(element(carol, "queue-state")).to_have_text("admitted")
    assert carol.evaluate("() => window.sawProgress"), "no progress bar while proving"
    expect(element(carol, "pow-progress")).to_have_count(0)


def test_a_user_in_line_is_told_when_every_seat_is_held(
    ui_server: ServerProcess, pages: Pages
) -> None:
    # Ten seats, one buyer may hold them all: once Dan holds them, Erin waits for a sale that
    # is paused (every seat held, some may come back) and keeps her place.
    event = create_event(ui_server, "Tiny Room", waiting_room=True, max_seats_per_user=10)
    dan = pages.open(event_url(ui_server, event), "dan")
    element(dan, "join-queue").click()
    expect(element(dan, "queue-state")).to_have_text("admitted")
    hold_seats(dan, [f"S-{row}-{n}" for row in "AB" for n in range(1, 6)])

    erin = pages.open(event_url(ui_server, event), "erin")
    element(erin, "join-queue").click()
    expect(element(erin, "queue-state")).to_have_text("paused")
    expect(element(erin, "queue-sale")).to_contain_text("Every seat is held")
    expect(element(erin, "queue-position")).to_have_text(re.compile(r"1"))
    expect(element(erin, "join-queue")).to_have_count(0)  # still in line: nothing to join
    pages.snap(erin, "erin-paused")
