"""The box office in the browser, with a real SMTP server: a guest buys with an e-mail address,
opens the e-mailed link in a fresh browser, sees the order, downloads the PDF and cancels it,
and another browser sees the seat free again; signing in by the e-mailed link shows the order
on another device; the admin console's order desk finds an order and cancels it with a reason
that the audit log shows."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pypdf
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    SERVER_FLAGS,
    Pages,
    admin_token,
    create_event,
    element,
    event_url,
    hold_seats,
    pay,
    ticket_codes,
    wait_seat_map,
    wait_seat_status,
)
from tests.conftest import ServerProcess, free_port
from tests.smtp import MailCatcher, mail

__all__ = ["mail"]  # the fixture, imported for this module


@pytest.fixture(scope="module")
def office_ui(
    tmp_path_factory: pytest.TempPathFactory, mail: MailCatcher
) -> Iterator[ServerProcess]:
    node = ServerProcess(
        free_port(), free_port(), tmp_path_factory.mktemp("office-ui"),
        {**SERVER_FLAGS, "sign_in_rate_per_ip": 100000, **mail.flags()},
    )  # fmt: skip
    node.start()
    yield node
    node.stop()


def link_in(mail: MailCatcher, to: str, part: str, count: int = 1) -> str:
    letter = mail.wait_for(to, count)[count - 1]
    (link,) = [u for u in letter.links() if part in u]
    return link


def test_a_guest_buys_opens_the_emailed_link_elsewhere_downloads_and_cancels(
    office_ui: ServerProcess, pages: Pages, mail: MailCatcher
) -> None:
    event = create_event(office_ui, "Box Office Night")
    seat = "S-A-4"
    to = "guest.buyer@example.com"
    buyer = pages.open(event_url(office_ui, event), "buyer")
    hold_seats(buyer, [seat])
    pay(buyer, "tok_visa", to)
    ticket_codes(buyer)
    pages.snap(buyer, "bought")

    # The e-mail's link, in a browser that has never seen this buyer.
    link = link_in(mail, to, "/#/orders/")
    elsewhere = pages.open(link, "elsewhere")
    expect(element(elsewhere, "order-title")).to_have_text("Your tickets")
    (code,) = ticket_codes(elsewhere)
    expect(element(elsewhere, f"ticket-{code}").get_by_test_id("ticket-qr")).to_be_visible()
    pages.snap(elsewhere, "order-from-the-email")

    with elsewhere.expect_download() as download:
        element(elsewhere, "download-pdf").click()
    path = download.value.path()
    assert download.value.suggested_filename.endswith(".pdf")
    (page_text,) = [p.extract_text() for p in pypdf.PdfReader(io.BytesIO(path.read_bytes())).pages]
    assert "Box Office Night" in page_text and "row A, seat 4" in page_text

    # A third browser watches the seat map while the order is cancelled.
    watcher = pages.open(event_url(office_ui, event), "watcher")
    assert wait_seat_map(watcher, seat) == "sold"
    element(elsewhere, "cancel-order").click()
    element(elsewhere, "confirm-cancel").click()
    expect(element(elsewhere, "order-cancelled")).to_be_visible()
    expect(element(elsewhere, "order-title")).to_have_text("Order cancelled")
    expect(element(elsewhere, "ticket-qr")).to_have_count(0)
    expect(element(elsewhere, "download-pdf")).to_have_count(0)
    expect(element(elsewhere, "ticket-status")).to_have_text(re.compile("void", re.I))
    pages.snap(elsewhere, "cancelled")
    wait_seat_status(watcher, seat, "available")
    pages.snap(watcher, "seat-free-again")
    cancelled = mail.wait_for(to, 2)[1]
    assert "cancelled" in cancelled.subject


def test_signing_in_by_the_emailed_link_shows_the_order_on_another_device(
    office_ui: ServerProcess, pages: Pages, mail: MailCatcher
) -> None:
    event = create_event(office_ui, "Sign-in Night")
    to = "returning.fan@example.com"
    buyer = pages.open(event_url(office_ui, event), "buyer")
    hold_seats(buyer, ["S-B-1"])
    pay(buyer, "tok_visa", to)
    (code,) = ticket_codes(buyer)
    mail.wait_for(to)

    phone = pages.open(office_ui.http_url + "/#/tickets", "phone")
    element(phone, "sign-in-link").click()
    element(phone, "signin-email").fill(to)
    element(phone, "signin-send").click()
    expect(element(phone, "signin-sent")).to_be_visible()
    # The link from the e-mail, opened in this browser: signed in, the order is listed.
    phone.goto(link_in(mail, to, "/#/signin/", count=2))
    expect(element(phone, "signed-in-email")).to_have_text(to)
    orders = element(phone, "order-list")
    expect(orders).to_contain_text("Sign-in Night")
    pages.snap(phone, "signed-in")
    orders.get_by_role("link").first.click()
    expect(element(phone, f"ticket-{code}")).to_be_visible()
    # Checkout there is pre-filled with the customer's address.
    phone.goto(event_url(office_ui, event))
    hold_seats(phone, ["S-B-2"])
    expect(element(phone, "checkout-email")).to_have_value(to)


def test_the_order_desk_cancels_with_a_reason_the_audit_log_shows(
    office_ui: ServerProcess, pages: Pages, mail: MailCatcher
) -> None:
    event = create_event(office_ui, "Desk Night")
    to = "desk.case@example.com"
    buyer = pages.open(event_url(office_ui, event), "buyer")
    hold_seats(buyer, ["S-A-5"])
    pay(buyer, "tok_visa", to)
    ticket_codes(buyer)

    admin = pages.open(office_ui.http_url + "/admin", "admin")
    element(admin, "admin-token").fill(admin_token(office_ui))
    element(admin, "admin-login").click()
    element(admin, "desk-query").fill(to)
    element(admin, "desk-search").click()
    expect(element(admin, "order-file-status")).to_have_text("paid")
    expect(element(admin, "delivery").first).to_contain_text(to)
    reason = "double booking, refund agreed"
    element(admin, "desk-cancel-reason").fill(reason)
    element(admin, "desk-cancel").click()
    expect(element(admin, "order-file-status")).to_have_text("cancelled")
    expect(element(admin, "refund-status")).to_contain_text("refunded")
    expect(element(admin, "audit-table").first).to_contain_text(reason)
    pages.snap(admin, "order-desk")
