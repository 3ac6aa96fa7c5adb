"""Small things found in use: a friendly page for links that lead nowhere, a favicon that
loads, and the pages a visitor lands on first passing the accessibility audit."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, PHONE, Pages, create_event, element
from tests.conftest import ServerProcess


def test_unknown_pages_and_events_get_a_friendly_way_back(
    ui_server: ServerProcess, pages: Pages
) -> None:
    page = pages.open(f"{ui_server.http_url}/#/no/such/page", "lost")
    not_found = element(page, "not-found")
    expect(not_found).to_contain_text("Page not found")
    expect(not_found).to_contain_text("/no/such/page")
    pages.snap(page, "unknown-page")

    page.goto(f"{ui_server.http_url}/#/events/987654")
    expect(element(page, "not-found")).to_contain_text("Event not found")
    pages.snap(page, "unknown-event")
    page.get_by_role("link", name="See all events").click()
    expect(page).to_have_url(f"{ui_server.http_url}/#/")
    expect(element(page, "not-found")).to_have_count(0)


def test_both_pages_have_a_favicon_that_loads(ui_server: ServerProcess, pages: Pages) -> None:
    for path in ("/", "/admin"):
        page = pages.open(f"{ui_server.http_url}{path}", path.strip("/") or "app")
        href = page.locator('link[rel="icon"]').get_attribute("href")
        assert href and href.startswith("/assets/"), (path, href)  # a file the node serves
        with urllib.request.urlopen(f"{ui_server.http_url}{href}", timeout=5) as answer:
            assert answer.status == 200
            assert answer.headers.get_content_type() == "image/svg+xml"
            assert b"<svg" in answer.read()
    # what browsers fetch by themselves on pages that link no icon (the API's JSON, /api/docs)
    with urllib.request.urlopen(f"{ui_server.http_url}/favicon.ico", timeout=5) as answer:
        assert answer.status == 200
        assert answer.headers.get_content_type() == "image/svg+xml"
        assert b"<svg" in answer.read()


def test_a_link_without_the_hash_gets_a_page_with_the_way_back(
    ui_server: ServerProcess, pages: Pages
) -> None:
    page = pages.open(f"{ui_server.http_url}/events/987654", "no-hash")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    pages.snap(page, "server-not-found")
    page.get_by_role("link", name="/#/events/987654").click()
    expect(element(page, "not-found")).to_contain_text("Event not found")


@pytest.mark.parametrize("profile", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_first_pages_a_visitor_lands_on_pass_the_accessibility_audit(
    ui_server: ServerProcess, pages: Pages, profile: dict[str, object]
) -> None:
    """The pages other tests pass through without a snap: the list of events, sign-in, my
    tickets with none, the console's and the scanner's token forms (``snap`` audits each)."""
    create_event(ui_server, "Audit Night")
    landings: dict[str, Callable[[Page], None]] = {
        "/#/": lambda page: expect(page.get_by_text("Audit Night").first).to_be_visible(),
        "/#/signin": lambda page: expect(element(page, "signin-email")).to_be_visible(),
        "/#/tickets": lambda page: expect(
            page.get_by_role("heading", name="My tickets")
        ).to_be_visible(),
        "/admin": lambda page: expect(element(page, "admin-token")).to_be_visible(),
        "/scan": lambda page: expect(element(page, "scan-token")).to_be_visible(),
    }
    for path, shown in landings.items():
        name = path.strip("/#") or "events"
        page = pages.open(f"{ui_server.http_url}{path}", name, profile)
        shown(page)
        pages.snap(page, f"landing-{name}")
