"""The box office's e-mails, built with the standard library's :mod:`email` package: a plain
text part and an HTML part (``multipart/alternative``), the HTML's QR codes as inline images
(``multipart/related``), and the tickets' PDF attached.

Every header is set through :class:`~email.message.EmailMessage`, whose default policy refuses a
header value containing CR or LF: no input can add a header (the addresses were validated at the
edge too). The Message-ID is derived from the outbox message's dedupe key, so a copy sent again
after a crash is recognisably the same message.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

from booking.catalog import EventInfo
from booking.orders import Order
from server.ticket_pdf import SeatLine, money, qr_png, seat_lines, when


@dataclass(frozen=True, slots=True)
class Letter:
    """What every message shares: sender, recipient, identity."""

    sender: str
    to: str
    dedupe_key: str

    def start(self, subject: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = Address(addr_spec=self.to)
        # An event named before names were checked may hold a line break, which the header
        # refuses: every e-mail about it would fail for good. One line, whatever it holds.
        message["Subject"] = " ".join(subject.split())
        message["Date"] = formatdate(usegmt=True)
        digest = hashlib.sha256(self.dedupe_key.encode()).hexdigest()[:32]
        message["Message-ID"] = f"<{digest}@concert-hub>"
        return message


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html><body style="font-family:sans-serif;color:#222;max-width:36rem">'
        f'<h1 style="font-size:1.3rem">{html.escape(title)}</h1>{body}</body></html>'
    )


def sign_in(letter: Letter, link: str, code: str, minutes: int) -> EmailMessage:
    message = letter.start(f"Your Concert-Hub sign-in code: {code}")
    message.set_content(
        f"Sign in to Concert-Hub with this link (valid {minutes} minutes, once):\n\n"
        f"{link}\n\nor type this code on the sign-in page: {code}\n\n"
        "If you did not ask for this, ignore this e-mail: nothing happens without the link or "
        "the code.\n"
    )
    message.add_alternative(
        _page(
            "Sign in to Concert-Hub",
            f'<p><a href="{html.escape(link)}">Sign in</a> (valid {minutes} minutes, once)</p>'
            f'<p>or type this code on the sign-in page: <strong style="font-size:1.4rem;'
            f'letter-spacing:.2em">{html.escape(code)}</strong></p>'
            "<p>If you did not ask for this, ignore this e-mail.</p>",
        ),
        subtype="html",
    )
    return message


def _ticket_rows(lines: list[SeatLine], with_qr: bool) -> str:
    rows = []
    for n, seat in enumerate(lines):
        qr = f'<img src="cid:qr{n}@concert-hub" alt="QR code" width="180" height="180">'
        rows.append(
            '<tr><td style="padding:.5rem">'
            f"<strong>{html.escape(seat.words)}</strong><br>{html.escape(seat.tier)}<br>"
            f'<code style="font-size:9px;word-break:break-all">{html.escape(seat.code)}</code>'
            f"</td><td>{qr if with_qr else ''}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def order_confirmation(
    letter: Letter, order: Order, event: EventInfo, order_link: str, pdf: bytes
) -> EmailMessage:
    lines = seat_lines(order, event)
    total = money(order.amount_cents, order.currency)
    message = letter.start(f"Your tickets for {event.name} (order {order.id})")
    text_lines = "\n".join(f"- {s.words} ({s.tier})\n  ticket code: {s.code}" for s in lines)
    message.set_content(
        f"Thank you for your order {order.id}.\n\n{event.name}\n{event.venue}\n{when(event)}\n\n"
        f"{text_lines}\n\nTotal paid: {total}\n\n"
        f"Your order, its tickets and cancellation: {order_link}\n"
        "The tickets are attached as a PDF; show the QR codes at the door.\n"
    )
    message.add_alternative(
        _page(
            f"Your tickets for {event.name}",
            f"<p>{html.escape(event.venue)}<br>{html.escape(when(event))}</p>"
            f"{_ticket_rows(lines, with_qr=True)}<p>Total paid: {html.escape(total)}</p>"
            f'<p><a href="{html.escape(order_link)}">Your order {html.escape(order.id)}</a>: '
            "tickets, PDF and cancellation.</p><p>Show the QR codes at the door.</p>",
        ),
        subtype="html",
    )
    page = message.get_body(("html",))
    assert isinstance(page, EmailMessage)
    for n, seat in enumerate(lines):
        page.add_related(
            qr_png(seat.code), "image", "png", cid=f"<qr{n}@concert-hub>",
            disposition="inline", filename=f"ticket-{seat.seat_id}.png",
        )  # fmt: skip
    message.add_attachment(
        pdf, maintype="application", subtype="pdf", filename=f"tickets-{order.id}.pdf"
    )
    return message


def order_cancelled(
    letter: Letter, order: Order, event: EventInfo, order_link: str
) -> EmailMessage:
    total = money(order.amount_cents, order.currency)
    refund = {
        "refunded": f"{total} was refunded to your card.",
        "manual": f"The box office refunds {total} to you directly.",
    }.get(order.refund or "", f"{total} is being refunded to your card.")
    seats = "\n".join(f"- {s.words}" for s in seat_lines(order, event))
    message = letter.start(f"Order {order.id} cancelled: {event.name}")
    message.set_content(
        f"Your order {order.id} for {event.name} ({when(event)}) is cancelled and its tickets "
        f"are void:\n{seats}\n\n{refund}\n\nThe order: {order_link}\n"
    )
    message.add_alternative(
        _page(
            f"Order {order.id} cancelled",
            f"<p>{html.escape(event.name)}, {html.escape(when(event))}: the order is cancelled "
            f"and its tickets are void.</p><p>{html.escape(refund)}</p>"
            f'<p><a href="{html.escape(order_link)}">The order</a></p>',
        ),
        subtype="html",
    )
    return message
