"""The box office against a real node and a real SMTP server (aiosmtpd), on SQLite and MariaDB:
order e-mails with QR codes and the PDF, links that work when followed, e-mail sign-in,
self-service cancel under the refund policy, refunds retried until they succeed, the staff's
order desk and its audit log, drafts hidden from the public, and bad input refused with nothing
sent."""

from __future__ import annotations

import io
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pypdf
import pytest

from tests.conftest import ServerProcess, free_port, migrated_database_url_for
from tests.server.stomp_clients import raw_peer, unique
from tests.server.test_rest_api import Api, assert_problem, iso, traceback_free
from tests.smtp import MailCatcher, mail

__all__ = ["mail"]  # the fixture, imported for this module

VISA = {"method": "card", "token": "tok_visa"}
PNG = b"\x89PNG\r\n\x1a\n"
#: Generous limits: these tests make many requests from one IP.
OPEN_LIMITS = {
    "rest_rate_per_ip": 100000,
    "rest_rate_per_user": 100000,
    "guest_rate_per_ip": 100000,
    "sign_in_rate_per_ip": 100000,
}


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def office(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mail: MailCatcher
) -> Iterator[ServerProcess]:
    """A node per backend sending its mail to the module's SMTP server."""
    workdir = tmp_path_factory.mktemp(f"office-{request.param}")
    for url in migrated_database_url_for(request.param, workdir):
        node = ServerProcess(
            free_port(), free_port(), workdir,
            {"database_url": url, **OPEN_LIMITS, **mail.flags()},
        )  # fmt: skip
        node.start()
        try:
            yield node
        finally:
            node.stop()


@pytest.fixture
def api(office: ServerProcess) -> Iterator[Api]:
    yield from traceback_free(office)


def address(prefix: str = "fan") -> str:
    return f"{unique(prefix).lower()}@example.com"


def guest(api: Api) -> str:
    reply = api.post("/api/auth/guest")
    assert reply.status == 201, reply
    return str(reply.json()["token"])


def event(api: Api, **overrides: Any) -> dict[str, Any]:
    return api.create_event(**overrides)


def buy(api: Api, event_id: int, token: str, seats: list[str], email: str | None) -> dict[str, Any]:
    hold = api.hold(event_id, token, seats)
    assert hold.status == 201, hold
    body: dict[str, Any] = {"payment": VISA}
    if email is not None:
        body["email"] = email
    reply = api.post(
        f"/api/holds/{hold.json()['hold_id']}/checkout", body, token=token,
        headers={"Idempotency-Key": unique("key")},
    )  # fmt: skip
    assert reply.status == 201, reply
    return dict(reply.json())


def order_key(link: str) -> tuple[str, str]:
    """The order id and key of an e-mailed order link (``…/#/orders/ID?key=KEY``)."""
    fragment = urllib.parse.urlsplit(link).fragment
    match = re.fullmatch(r"/orders/([^?]+)\?key=(.+)", fragment)
    assert match, link
    return match[1], urllib.parse.unquote(match[2])


def pdf_text(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def wait_until(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def order_file(api: Api, order_id: str) -> dict[str, Any]:
    reply = api.get(f"/api/admin/orders/{order_id}", token=api.admin())
    assert reply.status == 200, reply
    return dict(reply.json())


# -- the confirmation e-mail -------------------------------------------------------------------


def test_a_paid_order_is_emailed_with_qr_codes_the_pdf_and_a_link_that_works(
    api: Api, mail: MailCatcher
) -> None:
    shown = event(api, name=unique("Mail Night"))
    to = address()
    order = buy(api, shown["id"], guest(api), ["A-A-1", "A-A-2"], to.upper())
    assert order["email"] == to  # stored lower-cased

    (letter,) = mail.wait_for(to)
    assert letter.recipients == [to]
    assert order["order_id"] in letter.subject and shown["name"] in letter.subject
    text = letter.text()
    for ticket in order["tickets"]:
        assert ticket["code"] in text
    assert "Section A, row A, seat 1" in text and "Front" in text
    # Each ticket's QR code is an inline PNG the HTML part shows.
    images = letter.parts("image/png")
    assert len(images) == 2
    for image in images:
        assert image.get_content().startswith(PNG)
        assert f"cid:{image['Content-ID'].strip('<>')}" in letter.html()
        assert image.get_content_disposition() == "inline"  # shown in the HTML, not a file
    # The PDF: one page per ticket, its text readable.
    (attached,) = letter.parts("application/pdf")
    assert attached.get_filename() == f"tickets-{order['order_id']}.pdf"
    pages = pdf_text(attached.get_content())
    assert len(pages) == 2
    for page, seat in zip(pages, ("seat 1", "seat 2"), strict=True):
        assert shown["name"] in page and "Test Hall" in page and seat in page
        assert order["order_id"] in page and "Front" in page

    # The link opens the order, its PDF and nothing else, without signing in.
    (link,) = [u for u in letter.links() if "/#/orders/" in u]
    assert link.startswith(api.server.http_url)
    order_id, key = order_key(link)
    assert order_id == order["order_id"]
    seen = api.get(f"/api/orders/{order_id}", headers={"X-Order-Key": key})
    assert seen.status == 200 and seen.json()["order_id"] == order_id, seen
    pdf = api.get(f"/api/orders/{order_id}/tickets.pdf", headers={"X-Order-Key": key})
    assert pdf.status == 200 and pdf.content_type == "application/pdf", pdf
    assert len(pdf_text(pdf.body)) == 2
    other = buy(api, shown["id"], api.server.token(unique("scripted")), ["A-B-1"], None)
    assert_problem(api.get(f"/api/orders/{other['order_id']}", headers={"X-Order-Key": key}), 404)
    assert_problem(api.get(f"/api/orders/{order_id}"), 401, "unauthorized")

    # The order desk shows the delivery as sent.
    (delivery,) = order_file(api, order_id)["deliveries"]
    assert delivery["kind"] == "order_confirmation" and delivery["recipient"] == to
    wait_until(lambda: order_file(api, order_id)["deliveries"][0]["status"] == "sent", "sent")


def test_smtp_down_at_checkout_the_order_is_paid_and_mailed_once_smtp_is_back(
    api: Api, mail: MailCatcher
) -> None:
    shown = event(api)
    to = address("outage")
    mail.stop()
    try:
        order = buy(api, shown["id"], guest(api), ["B-A-1"], to)
        assert order["status"] == "paid"
        # The sender tried, failed and keeps the message for later.
        delivery = wait_until(
            lambda: next(
                (d for d in order_file(api, order["order_id"])["deliveries"] if d["attempts"]),
                None,
            ),
            "a failed delivery attempt",
        )
        assert delivery["status"] == "retrying" and delivery["last_error"]
    finally:
        mail.start()
    mail.wait_for(to)
    wait_until(
        lambda: order_file(api, order["order_id"])["deliveries"][0]["status"] == "sent",
        "the delivery marked sent",
    )
    # Exactly once: let the sender poll a few more times, then count.
    polls = 5
    time.sleep(polls * 0.2)
    assert len(mail.to(to)) == 1


# -- e-mail sign-in ----------------------------------------------------------------------------


def sign_in_mail(mail: MailCatcher, to: str, count: int) -> tuple[str, str]:
    """The link secret and the code of the ``count``-th sign-in e-mail to ``to``."""
    letter = mail.wait_for(to, count)[count - 1]
    (link,) = [u for u in letter.links() if "/#/signin/" in u]
    code = re.search(r"\b(\d{6})\b", letter.subject)
    assert code, letter.subject
    assert code[1] in letter.text()
    return link.rsplit("/", 1)[1], code[1]


def test_sign_in_by_link_shows_the_orders_bought_for_the_address_on_any_device(
    api: Api, mail: MailCatcher
) -> None:
    shown = event(api)
    to = address("signin")
    bought = buy(api, shown["id"], guest(api), ["A-C-1"], to)
    mail.wait_for(to)  # the confirmation

    asked = api.post("/api/auth/email", {"email": to})
    assert asked.status == 202, asked
    secret, _code = sign_in_mail(mail, to, 2)
    signed = api.post("/api/auth/email/token", {"link": secret})
    assert signed.status == 201, signed
    customer = signed.json()
    assert customer["email"] == to and customer["role"] == "user"
    token = customer["token"]
    mine = api.get("/api/orders", token=token)
    assert mine.status == 200, mine
    assert [o["order_id"] for o in mine.json()] == [bought["order_id"]]
    assert api.get(f"/api/orders/{bought['order_id']}", token=token).status == 200
    pdf = api.get(f"/api/orders/{bought['order_id']}/tickets.pdf", token=token)
    assert pdf.status == 200 and pdf.body.startswith(b"%PDF"), pdf

    # Single use: neither the link nor its code works again.
    assert_problem(api.post("/api/auth/email/token", {"link": secret}), 400, "sign_in_failed")
    assert_problem(
        api.post("/api/auth/email/token", {"email": to, "code": _code}), 400, "sign_in_failed"
    )
    # Checkout while signed in: the address defaults to the customer's own.
    again = buy(api, shown["id"], token, ["A-C-2"], None)
    assert again["email"] == to
    assert len(api.get("/api/orders", token=token).json()) == 2

    # Signing out everywhere ends this token on REST and on STOMP.
    with raw_peer(api.server, "tcp") as peer:
        assert peer.connect(token=token).command == "CONNECTED"
    assert api.post("/api/auth/revoke", token=token).status == 204
    assert_problem(api.get("/api/orders", token=token), 401, "unauthorized")
    with raw_peer(api.server, "tcp") as peer:
        refused = peer.connect(token=token)
        assert refused.command == "ERROR" and refused.get("message") == "authentication failed"


def test_sign_in_by_code_and_wrong_codes_are_limited(api: Api, mail: MailCatcher) -> None:
    to = address("code")
    assert api.post("/api/auth/email", {"email": to}).status == 202
    secret, code = sign_in_mail(mail, to, 1)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(4):
        assert_problem(
            api.post("/api/auth/email/token", {"email": to, "code": wrong}), 400, "sign_in_failed"
        )
    # The fifth wrong code kills the request: the right code no longer works either.
    last = api.post("/api/auth/email/token", {"email": to, "code": wrong})
    assert "too many" in assert_problem(last, 400, "sign_in_failed")["detail"]
    assert_problem(
        api.post("/api/auth/email/token", {"email": to, "code": code}), 400, "sign_in_failed"
    )
    # Its link still signs in: whoever typed the wrong codes (anyone who knows the address)
    # cannot lock its owner out of the e-mail they received.
    assert api.post("/api/auth/email/token", {"link": secret}).status == 201
    # A new request works with its own code.
    assert api.post("/api/auth/email", {"email": to}).status == 202
    _secret, fresh = sign_in_mail(mail, to, 2)
    signed = api.post("/api/auth/email/token", {"email": to.upper(), "code": fresh})
    assert signed.status == 201, signed


def test_the_code_of_an_earlier_e_mail_works_and_wrong_codes_count_against_all(
    api: Api, mail: MailCatcher
) -> None:
    """Two e-mails asked for: the first one's code signs in (it was refused, and counted as a
    wrong code against the second); five wrong codes kill both, not only the newest."""
    to = address("twice")
    for _ in range(2):
        assert api.post("/api/auth/email", {"email": to}).status == 202
    _secret, first = sign_in_mail(mail, to, 1)
    sign_in_mail(mail, to, 2)  # both e-mails are out
    assert api.post("/api/auth/email/token", {"email": to, "code": first}).status == 201

    other = address("guess")
    for _ in range(2):
        assert api.post("/api/auth/email", {"email": other}).status == 202
    codes = {sign_in_mail(mail, other, n)[1] for n in (1, 2)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in codes)
    for _ in range(5):
        refused = api.post("/api/auth/email/token", {"email": other, "code": wrong})
        assert_problem(refused, 400, "sign_in_failed")
    assert "too many" in refused.json()["detail"]
    for code in codes:
        dead = api.post("/api/auth/email/token", {"email": other, "code": code})
        assert_problem(dead, 400, "sign_in_failed")


def test_sign_in_answers_the_same_for_known_and_unknown_addresses(
    api: Api, mail: MailCatcher
) -> None:
    shown = event(api)
    known = address("known")
    buy(api, shown["id"], guest(api), ["B-B-1"], known)
    mail.wait_for(known)
    unknown = address("nobody")
    answers = [api.post("/api/auth/email", {"email": to}) for to in (known, unknown)]
    assert [(a.status, a.content_type, a.body) for a in answers] == [
        (answers[0].status, answers[0].content_type, answers[0].body)
    ] * 2
    assert answers[0].status == 202
    # Both get the same kind of e-mail (an unknown address can sign in too; it has no orders).
    for to, count in ((known, 2), (unknown, 1)):
        letter = mail.wait_for(to, count)[count - 1]
        assert "sign-in code" in letter.subject
    wrong = {"code": "000000"}
    problems = [
        api.post("/api/auth/email/token", {"email": to, **wrong}).json() for to in (known, unknown)
    ]
    assert problems[0] == problems[1]


def test_tickets_and_e_mails_give_the_start_on_the_venue_s_clocks(
    api: Api, mail: MailCatcher
) -> None:
    """A concert at 20:00 in Berlin (18:00 UTC in summer) reads 20:00 CEST, not 18:00 UTC."""
    shown = event(api, timezone="Europe/Berlin", starts_at="2027-06-05T18:00:00Z")
    assert shown["timezone"] == "Europe/Berlin" and shown["starts_at"] == "2027-06-05T18:00:00Z"
    to = address("berlin")
    order = buy(api, shown["id"], guest(api), ["A-A-5"], to)
    (letter,) = mail.wait_for(to)
    start = "Saturday 05 June 2027, 20:00 CEST"
    assert start in letter.text() and start in letter.html()
    (page,) = pdf_text(letter.parts("application/pdf")[0].get_content())
    assert start in page and "UTC" not in page
    api.post(
        f"/api/orders/{order['order_id']}/cancel", {"reason": "test"}, token=api.admin()
    )  # fmt: skip
    cancelled = mail.wait_for(to, 2)[1]
    assert start in cancelled.text()


# -- cancelling and refunds ----------------------------------------------------------------


def test_cancel_within_the_policy_by_the_emailed_link(api: Api, mail: MailCatcher) -> None:
    shown = event(api)
    to = address("cancel")
    order = buy(api, shown["id"], guest(api), ["A-D-1", "A-D-2"], to)
    assert order["cancellable_until"] is not None
    (letter,) = mail.wait_for(to)
    (link,) = [u for u in letter.links() if "/#/orders/" in u]
    order_id, key = order_key(link)
    reply = api.post(f"/api/orders/{order_id}/cancel", headers={"X-Order-Key": key})
    assert reply.status == 200, reply
    cancelled = reply.json()
    assert cancelled["status"] == "cancelled" and cancelled["refund"] == "refunded"
    assert {t["status"] for t in cancelled["tickets"]} == {"void"}
    seats = api.seats(shown["id"])
    assert seats["A-D-1"] == seats["A-D-2"] == "available"
    for ticket in order["tickets"]:
        code = urllib.parse.quote(ticket["code"], safe="")
        assert api.get(f"/api/tickets/{code}").json()["valid"] is False
    assert_problem(
        api.get(f"/api/orders/{order_id}/tickets.pdf", headers={"X-Order-Key": key}), 409
    )
    cancel_mail = mail.wait_for(to, 2)[1]
    assert "cancelled" in cancel_mail.subject and "refunded" in cancel_mail.text()
    file = order_file(api, order_id)
    assert [p["status"] for p in file["payments"]] == ["refunded"]
    assert file["refund"]["status"] == "refunded"
    assert file["audit"] == []  # the buyer's own cancel is not a staff action


def test_cancel_after_the_deadline_is_refused_and_staff_override_is_audited(
    api: Api, mail: MailCatcher
) -> None:
    soon = datetime.now(UTC) + timedelta(hours=2)
    shown = event(api, starts_at=iso(soon), sale_closes_at=iso(soon - timedelta(minutes=30)))
    assert shown["refund_cutoff_hours"] == 24
    token = guest(api)
    order = buy(api, shown["id"], token, ["A-E-1"], address("late"))
    problem = assert_problem(
        api.post(f"/api/orders/{order['order_id']}/cancel", token=token), 409, "refund_closed"
    )
    assert (
        "closed" in problem["detail"] and problem["cancellable_until"] == order["cancellable_until"]
    )
    assert api.seats(shown["id"])["A-E-1"] == "sold"

    admin = api.admin()
    for blank in ({}, {"reason": "   "}):  # a refund must say why
        path = f"/api/admin/orders/{order['order_id']}/cancel"
        assert_problem(api.post(path, blank, token=admin), 422)
    reason = "the artist is ill; full refund agreed by phone"
    staff = api.post(
        f"/api/admin/orders/{order['order_id']}/cancel", {"reason": reason}, token=admin
    )
    assert staff.status == 200 and staff.json()["status"] == "cancelled", staff
    assert api.seats(shown["id"])["A-E-1"] == "available"
    (entry,) = order_file(api, order["order_id"])["audit"]
    assert (entry["actor"], entry["action"], entry["reason"]) == ("admin", "order.cancel", reason)
    assert entry["details"]["seats"] == ["A-E-1"]
    log = api.get("/api/admin/audit", token=admin).json()
    assert any(e["target"] == order["order_id"] for e in log)


def test_an_event_without_refunds_refuses_buyers_but_not_staff(api: Api) -> None:
    shown = event(api, refund_cutoff_hours=None)
    assert shown["refund_cutoff_hours"] is None
    token = guest(api)
    order = buy(api, shown["id"], token, ["B-C-1"], address("norefund"))
    assert order["cancellable_until"] is None
    assert_problem(
        api.post(f"/api/orders/{order['order_id']}/cancel", token=token), 409, "refund_closed"
    )
    # Admins change the policy (audited), and then the buyer may cancel.
    admin = api.admin()
    patched = api.call(
        "PATCH", f"/api/admin/events/{shown['id']}", {"refund_cutoff_hours": 48}, token=admin
    )
    assert patched.status == 200 and patched.json()["refund_cutoff_hours"] == 48, patched
    # Saved again as it is, or with nothing in it: no change, so nothing to audit.
    for same in ({"refund_cutoff_hours": 48, "status": "on_sale"}, {}):
        again = api.call("PATCH", f"/api/admin/events/{shown['id']}", same, token=admin)
        assert again.status == 200, again
    audit = api.get(f"/api/admin/audit?target=event:{shown['id']}", token=admin).json()
    assert [e["details"] for e in audit if e["action"] == "event.update"] == [
        {"refund_cutoff_hours": 48}
    ]
    reply = api.post(f"/api/orders/{order['order_id']}/cancel", token=token)
    assert reply.status == 200, reply


def test_a_failing_refund_is_retried_until_it_succeeds(
    migrated_database: str, tmp_path: Any, mail: MailCatcher
) -> None:
    node = ServerProcess(
        free_port(), free_port(), tmp_path,
        {"database_url": migrated_database, **OPEN_LIMITS, **mail.flags(),
         "fault_refund_failures": 3},
    )  # fmt: skip
    node.start()
    try:
        api = Api(node)
        shown = event(api)
        to = address("refund")
        order = buy(api, shown["id"], guest(api), ["A-A-3"], to)
        reply = api.post(
            f"/api/orders/{order['order_id']}/cancel", {"reason": "changed my mind"},
            token=guest(api),
        )  # fmt: skip
        assert_problem(reply, 404)  # another guest: not theirs
        (confirmation,) = mail.wait_for(to)
        _, key = order_key(next(u for u in confirmation.links() if "/#/orders/" in u))
        reply = api.post(f"/api/orders/{order['order_id']}/cancel", headers={"X-Order-Key": key})
        assert reply.status == 200, reply
        assert reply.json()["refund"] == "pending"  # the gateway failed: never "charged"
        file = order_file(api, order["order_id"])
        assert [p["status"] for p in file["payments"]] == ["refund_pending"]
        assert file["refund"]["attempts"] == 1 and "injected" in file["refund"]["last_error"]
        assert api.seats(shown["id"])["A-A-3"] == "available"  # seats free at once anyway
        done = wait_until(
            lambda: order_file(api, order["order_id"])["refund"]["status"] == "refunded",
            "the refund to succeed",
            timeout=60,
        )
        assert done
        file = order_file(api, order["order_id"])
        assert file["refund"]["attempts"] == 4
        assert [p["status"] for p in file["payments"]] == ["refunded"]
        seen = api.get(f"/api/orders/{order['order_id']}", headers={"X-Order-Key": key})
        assert seen.json()["refund"] == "refunded"
        assert "Traceback" not in node.log()
    finally:
        node.stop()


def test_staff_take_over_a_refund_that_keeps_failing(
    migrated_database: str, tmp_path: Any, mail: MailCatcher
) -> None:
    node = ServerProcess(
        free_port(), free_port(), tmp_path,
        {"database_url": migrated_database, **OPEN_LIMITS, **mail.flags(),
         "fault_refund_failures": 1_000_000},
    )  # fmt: skip
    node.start()
    try:
        api = Api(node)
        shown = event(api)
        token = guest(api)
        order = buy(api, shown["id"], token, ["A-A-4"], address("manual"))
        assert api.post(f"/api/orders/{order['order_id']}/cancel", token=token).status == 200
        wait_until(lambda: order_file(api, order["order_id"])["refund"]["attempts"] >= 2, "a retry")
        path = f"/api/admin/orders/{order['order_id']}/refund/manual"
        reply = api.post(path, {"reason": "refunded by bank transfer"}, token=api.admin())
        assert reply.status == 200 and reply.json()["status"] == "manual", reply
        file = order_file(api, order["order_id"])
        assert [p["status"] for p in file["payments"]] == ["refund_manual"]
        assert [e["action"] for e in file["audit"]] == ["refund.manual"]
        assert api.get(f"/api/orders/{order['order_id']}", token=token).json()["refund"] == (
            "manual"
        )
        assert_problem(api.post(path, {"reason": "again"}, token=api.admin()), 409)
    finally:
        node.stop()


# -- the order desk ----------------------------------------------------------------------------


def test_the_order_desk_finds_orders_and_resends_confirmations(api: Api, mail: MailCatcher) -> None:
    shown = event(api)
    to = address("desk")
    order = buy(api, shown["id"], guest(api), ["B-D-1", "B-D-2"], to)
    mail.wait_for(to)
    admin = api.admin()
    code = order["tickets"][0]["code"]
    for query in (to, to.upper(), order["order_id"], code, "B-D-2"):
        params = urllib.parse.urlencode({"q": query, "event_id": shown["id"]})
        found = api.get(f"/api/admin/orders?{params}", token=admin)
        assert found.status == 200, found
        assert [o["order_id"] for o in found.json()] == [order["order_id"]], query
    assert_problem(api.get("/api/admin/orders", token=admin), 422, "validation")
    assert_problem(api.get("/api/admin/orders?q=x", token=guest(api)), 403, "not_admin")

    moved = address("moved")
    reply = api.post(
        f"/api/admin/orders/{order['order_id']}/resend",
        {"reason": "customer's new address", "email": moved}, token=admin,
    )  # fmt: skip
    assert reply.status == 202 and reply.json()["email"] == moved, reply
    (again,) = mail.wait_for(moved)
    assert order["order_id"] in again.subject and again.parts("application/pdf")
    file = order_file(api, order["order_id"])
    assert [d["recipient"] for d in file["deliveries"]] == [to, moved]
    (entry,) = file["audit"]
    assert entry["action"] == "order.resend"
    assert entry["details"] == {"email": moved, "previous_email": to, "tickets_reissued": 2}
    # a cancelled order's tickets are void: they are not sent again as if they were valid
    path = f"/api/admin/orders/{order['order_id']}/cancel"
    assert api.post(path, {"reason": "test"}, token=admin).status == 200
    resent = api.post(f"/api/admin/orders/{order['order_id']}/resend", {"reason": "again"},
                      token=admin)  # fmt: skip
    assert_problem(resent, 409, "conflict")


def test_a_corrected_address_cuts_the_mistyped_one_off(api: Api, mail: MailCatcher) -> None:
    """The mistyped address got the order's link and its tickets: once the desk resends to the
    corrected one, that link opens nothing and those tickets are void; the corrected address
    gets new ones, and mail still queued for the old address is not sent there."""
    shown = event(api)
    typo, fixed = address("typo"), address("fixed")
    order = buy(api, shown["id"], guest(api), ["B-E-1", "B-E-2"], typo)
    (letter,) = mail.wait_for(typo)
    order_id, old_key = order_key(next(u for u in letter.links() if "/#/orders/" in u))
    old_codes = [t["code"] for t in order["tickets"]]
    # Something else for the old address is still queued when the address is corrected.
    mail.refusing.add(typo)
    admin = api.admin()
    resent = api.post(f"/api/admin/orders/{order_id}/resend", {"reason": "again"}, token=admin)
    assert resent.status == 202, resent
    wait_until(
        lambda: order_file(api, order_id)["deliveries"][-1]["status"] == "retrying",
        "the second e-mail to the old address to fail once",
    )

    reply = api.post(
        f"/api/admin/orders/{order_id}/resend",
        {"reason": "the buyer mistyped the address", "email": fixed}, token=admin,
    )  # fmt: skip
    assert reply.status == 202, reply
    new_codes = [t["code"] for t in reply.json()["tickets"]]
    assert len(new_codes) == 2 and not set(new_codes) & set(old_codes)
    assert [t["seat_id"] for t in reply.json()["tickets"]] == ["B-E-1", "B-E-2"]
    assert {t["status"] for t in reply.json()["tickets"]} == {"valid"}

    # the old link and the old tickets are dead; the new ones work
    for path in (f"/api/orders/{order_id}", f"/api/orders/{order_id}/tickets.pdf"):
        assert_problem(api.get(path, headers={"X-Order-Key": old_key}), 404, "not_found")
    for code in old_codes:
        checked = api.get(f"/api/tickets/{urllib.parse.quote(code, safe='')}").json()
        assert checked["valid"] is False and checked["status"] == "void"
    (letter,) = mail.wait_for(fixed)
    _, new_key = order_key(next(u for u in letter.links() if "/#/orders/" in u))
    seen = api.get(f"/api/orders/{order_id}", headers={"X-Order-Key": new_key})
    assert seen.status == 200 and [t["code"] for t in seen.json()["tickets"]] == new_codes
    pdf = api.get(f"/api/orders/{order_id}/tickets.pdf", headers={"X-Order-Key": new_key})
    printed = ["".join(page.split()) for page in pdf_text(pdf.body)]  # a code wraps
    assert [[code in page for code in new_codes + old_codes] for page in printed] == [
        [True, False, False, False],
        [False, True, False, False],
    ]
    for code in new_codes:
        assert api.get(f"/api/tickets/{urllib.parse.quote(code, safe='')}").json()["valid"]

    # the queued message to the old address is dropped, not sent with the new tickets
    mail.refusing.discard(typo)
    skipped = wait_until(
        lambda: [d for d in order_file(api, order_id)["deliveries"] if d["status"] == "skipped"],
        "the queued e-mail to the old address to be skipped",
    )
    assert [(d["recipient"], d["sent_at"]) for d in skipped] == [(typo, None)]
    assert fixed in skipped[0]["skipped"]
    assert len(mail.to(typo)) == 1  # only the first confirmation, before the correction


# -- drafts and bad input ----------------------------------------------------------------------


def test_drafts_are_for_admins_only(api: Api) -> None:
    draft = event(api, status="draft", name=unique("Draft"))
    assert draft["id"] not in [e["id"] for e in api.get("/api/events").json()]
    assert_problem(api.get(f"/api/events/{draft['id']}"), 404, "not_found")
    assert_problem(api.get(f"/api/events/{draft['id']}/seats"), 404, "not_found")
    admin = api.admin()
    assert draft["id"] in [e["id"] for e in api.get("/api/admin/events", token=admin).json()]
    assert api.get(f"/api/admin/events/{draft['id']}", token=admin).status == 200
    with raw_peer(api.server, "tcp") as peer:
        peer.connect(token=api.server.token(unique("peek")))
        peer.send("SUBSCRIBE", [("id", "1"), ("destination", f"/topic/events/{draft['id']}/seats")])
        assert peer.expect_error().message == "unknown event"
    # its announcements and queue figures too; an admin may follow them
    for topic in ("announcements", "queue"):
        subscribe = [("id", "1"), ("receipt", "r"),
                     ("destination", f"/topic/events/{draft['id']}/{topic}")]  # fmt: skip
        with raw_peer(api.server, "tcp") as peer:
            peer.connect(token=api.server.token(unique("peek")))
            peer.send("SUBSCRIBE", subscribe)
            assert peer.expect_error().message == "unknown event", topic
        with raw_peer(api.server, "tcp") as peer:
            peer.connect(token=admin)
            peer.send("SUBSCRIBE", subscribe)
            assert peer.read_until("RECEIPT").get("receipt-id") == "r", topic


BAD_ADDRESSES = [
    "not-an-address",
    "two@@example.com",
    "ada@example.com\r\nBcc: eve@example.com",
    "ada@example.com\nBcc: eve@example.com",
    "Eve <eve@example.com>",
    "eve@example.com, ada@example.com",
    "a" * 250 + "@example.com",
    "",
    "müller@example.com",  # a non-ASCII local part needs SMTPUTF8: its e-mail could not go
]


@pytest.mark.parametrize("bad", BAD_ADDRESSES)
def test_bad_addresses_are_refused_and_nothing_is_sent(
    api: Api, mail: MailCatcher, bad: str
) -> None:
    before = len(mail.received)
    assert_problem(api.post("/api/auth/email", {"email": bad}), 422, "validation")
    shown = event(api)
    token = guest(api)
    hold = api.hold(shown["id"], token, ["A-A-5"])
    reply = api.post(
        f"/api/holds/{hold.json()['hold_id']}/checkout", {"payment": VISA, "email": bad},
        token=token, headers={"Idempotency-Key": unique("key")},
    )  # fmt: skip
    assert_problem(reply, 422, "validation")
    assert api.seats(shown["id"])["A-A-5"] == "held"  # nothing was bought
    resend = api.post(
        "/api/admin/orders/ord_x/resend", {"reason": "r", "email": bad}, token=api.admin()
    )
    assert_problem(resend, 422, "validation")
    time.sleep(0.5)  # a few sender polls
    # Nothing went to any address the bad one holds. (Not a count of all mail: the catcher is
    # shared, and another test's e-mail may arrive meanwhile.)
    leaked = [
        r for r in mail.received[before:]
        if any(rcpt in bad or (bad and bad in rcpt) for rcpt in r.recipients)
    ]  # fmt: skip
    assert leaked == []


def test_oversized_and_malformed_sign_in_bodies_are_problems(api: Api) -> None:
    cases: list[tuple[Any, int]] = [
        ({"email": "ada@example.com", "extra": 1}, 422),
        ({"link": "x" * 65}, 422),
        ({"link": "../../etc/passwd"}, 422),
        ({"email": "ada@example.com", "code": "12345"}, 422),
        ({"email": "ada@example.com", "code": "1234567"}, 422),
        ({"link": "a" * 32, "email": "ada@example.com", "code": "123456"}, 422),
        ({}, 422),
    ]
    for body, status in cases:
        assert_problem(api.post("/api/auth/email/token", body), status)
    raw = api.call("POST", "/api/auth/email", data=b'{"email": ')
    assert_problem(raw, 400, "bad_request")
    huge = api.call("POST", "/api/auth/email", data=json.dumps({"email": "a" * 2_000_000}).encode())
    assert_problem(huge, 413, "too_large")
    # A guest must give an address to check out.
    shown = event(api)
    token = guest(api)
    hold = api.hold(shown["id"], token, ["B-E-1"]).json()
    reply = api.post(
        f"/api/holds/{hold['hold_id']}/checkout", {"payment": VISA}, token=token,
        headers={"Idempotency-Key": unique("key")},
    )  # fmt: skip
    assert assert_problem(reply, 422, "validation")["errors"][0]["loc"] == ["email"]


def test_sign_in_requests_are_limited_per_client_ip(make_server: Any) -> None:
    node = make_server(sign_in_rate_per_ip=0.01)
    api = Api(node)
    assert api.post("/api/auth/email", {"email": address("ip")}).status == 202
    limited = api.post("/api/auth/email", {"email": address("ip")})
    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1
