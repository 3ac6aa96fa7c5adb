"""An order's tickets as a PDF (``GET /api/orders/{id}/tickets.pdf`` and the confirmation
e-mail's attachment): one A5-landscape page per ticket with the event, venue, date, seat,
price tier, order id and the ticket's QR code.

Drawn with fpdf2; the QR code is segno's PNG of the ticket code, which stays an opaque string
here (whatever signs it). Text is real text (tests read it back).

Text that Latin-1 can write is set in the PDF's built-in Helvetica. Other text (an event named
in Greek or Cyrillic) is set in DejaVu Sans, when it is installed (Debian's
``fonts-dejavu-core``); without it, characters outside Latin-1 are replaced (``?``), since a
PDF's core fonts have no others. The choice is per document and for speed: embedding DejaVu
parses the font and subsets it into every PDF, about 85 % of a confirmation e-mail's cost (140
ms of CPU on a small machine, against 20 ms with Helvetica), and the e-mails are rendered while
the sale runs.
"""

from __future__ import annotations

import functools
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import segno
from fpdf import FPDF

from booking.catalog import EventInfo, local_time
from booking.orders import Order

#: Where Debian (and most Linux distributions) keep DejaVu Sans.
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DEJAVU_BOLD = DEJAVU.with_name("DejaVuSans-Bold.ttf")


@functools.lru_cache(maxsize=64)
def qr_png(code: str, scale: int = 6) -> bytes:
    """A ticket code's QR code as PNG (the e-mail's inline images, the PDF's pictures).

    Kept for the last few codes: a confirmation e-mail draws each code twice, inline and in
    its PDF, and each drawing is about 10 ms of CPU."""
    out = io.BytesIO()
    segno.make(code, error="m").save(out, kind="png", scale=scale, border=2)
    return out.getvalue()


@dataclass(frozen=True, slots=True)
class SeatLine:
    """One ticket in words, as the PDF and the e-mails print it."""

    code: str
    seat_id: str
    words: str  # "Section S, row A, seat 3"
    tier: str  # "Main, 42.00 EUR"
    status: str


def money(cents: int, currency: str) -> str:
    return f"{cents // 100}.{cents % 100:02d} {currency}"


def seat_lines(order: Order, event: EventInfo) -> list[SeatLine]:
    lines = []
    for ticket in order.tickets:
        place = event.seats.get(ticket.seat_id)
        if place is None:
            words, tier = ticket.seat_id, ""
        else:
            section, row, number, tier_id = place
            words = f"Section {section}, row {row}, seat {number}"
            t = event.tiers.get(tier_id)
            tier = "" if t is None else f"{t.name}, {money(t.price_cents, t.currency)}"
        lines.append(SeatLine(ticket.code, ticket.seat_id, words, tier, ticket.status))
    return lines


def when(event: EventInfo) -> str:
    """The start as the venue's clocks show it, with the zone ("Saturday 06 June 2026, 20:00
    CEST")."""
    return local_time(event, event.starts_at).strftime("%A %d %B %Y, %H:%M %Z")


def _latin1(text: str) -> bool:
    """Whether the core fonts can write ``text`` as it is."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


class _Document(FPDF):
    def __init__(self, *, unicode: bool) -> None:
        """``unicode``: the text needs more than Latin-1 (embed DejaVu Sans, if installed)."""
        super().__init__(orientation="landscape", unit="mm", format=(148, 210))  # A5
        self.set_auto_page_break(False)
        self.set_creator("Concert-Hub")
        if unicode and DEJAVU.exists() and DEJAVU_BOLD.exists():
            self.add_font("body", "", str(DEJAVU))
            self.add_font("body", "B", str(DEJAVU_BOLD))
            self.body_font = "body"
            self.unicode = True
        else:
            self.body_font = "helvetica"
            self.unicode = False

    def text_of(self, value: str) -> str:
        if self.unicode:
            return value
        folded = unicodedata.normalize("NFKC", value)
        return folded.encode("latin-1", "replace").decode("latin-1")

    def say(self, value: str, size: float, *, bold: bool = False, height: float = 7) -> None:
        self.set_font(self.body_font, "B" if bold else "", size)
        self.cell(0, height, self.text_of(value), new_x="LMARGIN", new_y="NEXT")


def render(order: Order, event: EventInfo) -> bytes:
    """The order's tickets, one page each."""
    seats = seat_lines(order, event)
    # Everything printed that is not our own (ASCII) wording.
    printed = [event.name, event.venue, order.id, *(f"{s.words} {s.tier} {s.code}" for s in seats)]
    pdf = _Document(unicode=not _latin1(" ".join(printed)))
    pdf.set_title(pdf.text_of(f"Tickets: {event.name}"))
    for seat in seats:
        pdf.add_page()
        pdf.set_xy(12, 12)
        pdf.say(event.name, 20, bold=True, height=10)
        pdf.say(event.venue, 13)
        pdf.say(when(event), 13)
        pdf.ln(4)
        pdf.say(seat.words, 16, bold=True, height=9)
        if seat.tier:
            pdf.say(f"Price tier: {seat.tier}", 12)
        pdf.say(f"Order {order.id}", 11)
        if seat.status != "valid":
            pdf.say("VOID: this ticket was cancelled", 14, bold=True)
        pdf.ln(2)
        pdf.set_font(pdf.body_font, "", 6)
        pdf.set_xy(12, 118)
        pdf.multi_cell(120, 3, pdf.text_of(f"Ticket code: {seat.code}"))
        pdf.image(io.BytesIO(qr_png(seat.code)), x=148, y=40, w=50, h=50)
        pdf.set_xy(148, 92)
        pdf.set_font(pdf.body_font, "", 8)
        pdf.cell(50, 5, "Show this code at the door", align="C")
    return bytes(pdf.output())
