"""The demo event seeded by ``concert-hub serve --demo`` into an empty database.

About 2,000 seats in three sections and three price tiers, on sale now for a month, behind a
waiting room (two admissions a second, at most 50 shoppers at once); wheelchair spaces with a
companion seat beside each at the ends of the stalls' back row and the circle's front row.
"""

from __future__ import annotations

from datetime import timedelta

from booking.catalog import EventSpec
from booking.clock import utcnow
from booking.layout import LayoutSpec, SectionSpec, TierSpec


def demo_event() -> EventSpec:
    now = utcnow().replace(microsecond=0)
    return EventSpec(
        name="Concert-Hub Live: Demo Night",
        venue="Grand Hall",
        starts_at=now + timedelta(days=30),
        sale_opens_at=now - timedelta(hours=1),
        sale_closes_at=now + timedelta(days=29),
        status="on_sale",
        # SPEC §1: the demo sale has its waiting room on, paced so a visitor is admitted
        # within seconds when alone and queues visibly when many arrive at once.
        waiting_room=True,
        admission_rate=2.0,
        max_active_shoppers=50,
        layout=LayoutSpec(
            tiers=[
                TierSpec(name="Premium", price_cents=12000),
                TierSpec(name="Standard", price_cents=7500),
                TierSpec(name="Value", price_cents=3900),
            ],
            sections=[
                SectionSpec(
                    name="STALLS",
                    rows=20,
                    seats_per_row=50,
                    tier="Standard",
                    row_tiers={r: "Premium" for r in "ABCDE"},
                ),
                SectionSpec(name="CIRCLE", rows=10, seats_per_row=40, tier="Standard"),
                SectionSpec(name="BALCONY", rows=12, seats_per_row=50, tier="Value"),
            ],
            accessible=["STALLS-T-1", "STALLS-T-50", "CIRCLE-A-1", "CIRCLE-A-40"],
            companion=["STALLS-T-2", "STALLS-T-49", "CIRCLE-A-2", "CIRCLE-A-39"],
        ),
    )
