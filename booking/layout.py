"""Venue layouts: sections of rows of seats with price tiers, and the seat ids they produce.

A seat id is ``SECTION-ROW-NUMBER`` (``A-C-12``), readable on a ticket and stable for an event.
Sections are listed from the stage outwards and rows from the front (row A): best available
ranks seats in that order. A seat may be marked as a wheelchair space (``accessible``) or as a
companion seat beside one (``companion``), never both.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, replace
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

#: The highest seat price (100,000.00): a hold of 100 such seats still fits its INT amount.
MAX_PRICE_CENTS = 10_000_000

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: str) -> str:
    """Text printed on tickets and written into e-mail headers (an event's name and venue, a
    tier's name): no line break or other control character. An event named with a CR LF was
    taken, and then no e-mail about it could be sent: the buyers never got their tickets."""
    if _CONTROL.search(text):
        raise ValueError("must not contain line breaks or other control characters")
    return text


#: One line of text an admin names something with (see :func:`printable`).
Printable = Annotated[str, AfterValidator(printable)]


class _Spec(BaseModel):
    """A part of a layout an admin sends: a misspelt member (``acessible``) is refused, not
    dropped (the event would be made without what it meant)."""

    model_config = ConfigDict(extra="forbid")


class TierSpec(_Spec):
    name: Printable = Field(min_length=1, max_length=64)
    price_cents: int = Field(ge=0, le=MAX_PRICE_CENTS)
    currency: str = Field(
        default="EUR", pattern=r"^[A-Z]{3}$", description="an ISO 4217 code, e.g. EUR"
    )


class SectionSpec(_Spec):
    name: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9]+$")
    rows: int = Field(ge=1, le=200)
    seats_per_row: int = Field(ge=1, le=500)
    tier: str = Field(description="name of the price tier of every seat in the section")
    #: Optional tier per row (row label → tier name), overriding ``tier``.
    row_tiers: dict[str, str] = Field(default_factory=dict)


#: Most seats one list of seat attributes may name (a layout's or an admin's change).
MAX_MARKED = 10_000
SeatIds = Annotated[list[str], Field(max_length=MAX_MARKED)]


class LayoutSpec(_Spec):
    tiers: list[TierSpec] = Field(min_length=1)
    sections: list[SectionSpec] = Field(min_length=1, description="from the stage outwards")
    accessible: SeatIds = Field(default_factory=list, description="seat ids of wheelchair spaces")
    companion: SeatIds = Field(
        default_factory=list, description="seat ids of companion seats, beside wheelchair spaces"
    )

    @field_validator("tiers", "sections")
    @classmethod
    def _unique_names(
        cls, specs: list[TierSpec] | list[SectionSpec], info: ValidationInfo
    ) -> list[TierSpec] | list[SectionSpec]:
        """Seats and rows refer to tiers and sections by name: a name may stand once."""
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"{str(info.field_name).removesuffix('s')} names must be unique")
        return specs

    def seat_count(self) -> int:
        return sum(s.rows * s.seats_per_row for s in self.sections)


@dataclass(frozen=True, slots=True)
class SeatSpec:
    seat_id: str
    section: str
    row: str
    number: int
    tier: str
    #: ``""``, ``"accessible"`` or ``"companion"``.
    access: str = ""


def row_label(index: int) -> str:
    """0 → A … 25 → Z, 26 → AA: theatre row letters."""
    letters = string.ascii_uppercase
    label = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        label = letters[rem] + label
    return label


def access_of(accessible: list[str], companion: list[str], known: Container[str]) -> dict[str, str]:
    """seat id → ``"accessible"`` or ``"companion"`` for the seats the lists mark; a seat that
    does not exist or is named twice (in one list or in both) is a :class:`ValueError`."""
    repeated = sorted(seat for seat, n in Counter([*accessible, *companion]).items() if n > 1)
    access = dict.fromkeys(accessible, "accessible")
    both = sorted(set(companion) & access.keys())
    if both:
        raise ValueError(f"seats both accessible and companion: {', '.join(both[:20])}")
    if repeated:
        raise ValueError(f"seats named twice: {', '.join(repeated[:20])}")
    access.update(dict.fromkeys(companion, "companion"))
    unknown = [s for s in access if s not in known]
    if unknown:
        raise ValueError(f"unknown seats: {', '.join(unknown[:20])}")
    return access


def expand(layout: LayoutSpec) -> list[SeatSpec]:
    tiers = {t.name for t in layout.tiers}
    out = []
    for section in layout.sections:
        for r in range(section.rows):
            row = row_label(r)
            tier = section.row_tiers.get(row, section.tier)
            if tier not in tiers:
                raise ValueError(f"section {section.name} row {row}: unknown tier {tier!r}")
            for n in range(1, section.seats_per_row + 1):
                out.append(SeatSpec(f"{section.name}-{row}-{n}", section.name, row, n, tier))
    access = access_of(layout.accessible, layout.companion, {s.seat_id for s in out})
    if access:
        out = [replace(s, access=access.get(s.seat_id, "")) for s in out]
    return out
