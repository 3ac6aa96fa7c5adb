"""The tickets PDF prints an event's words as they are written, in any script DejaVu covers."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pypdf
import pytest

from booking.catalog import EventInfo
from booking.orders import IssuedTicket, Order
from server import ticket_pdf

WHEN = datetime(2026, 12, 6, 20, tzinfo=UTC)


def event(name: str, venue: str) -> EventInfo:
    return EventInfo(1, name, venue, WHEN, WHEN, WHEN, "on_sale", False, 10, 100, 300, 4)


ORDER = Order(
    "ord-1", "paid", 1, 8400, "EUR", WHEN,
    (IssuedTicket("CODE-A", "S-A-1", "valid"), IssuedTicket("CODE-B", "S-A-2", "valid")),
)  # fmt: skip


def pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def test_latin_text_prints_with_its_accents() -> None:
    printed = pages(ticket_pdf.render(ORDER, event("Fête de la musique", "Zürich Halle")))
    assert len(printed) == 2
    assert all("Fête de la musique" in page and "Zürich Halle" in page for page in printed)


@pytest.mark.skipif(not ticket_pdf.DEJAVU.exists(), reason="DejaVu Sans is not installed")
def test_greek_and_cyrillic_text_prints_in_dejavu() -> None:
    printed = pages(ticket_pdf.render(ORDER, event("Лебединое озеро", "Θέατρο Ηρώδου")))
    assert all("Лебединое озеро" in page and "Θέατρο Ηρώδου" in page for page in printed)
