"""Small things found in use: a friendly page for links that lead nowhere, and a favicon that
loads."""

from __future__ import annotations

import urllib.request

from playwright.sync_api import expect

from tests.browser.conftest import Pages, element
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
