"""events: the venue's time zone

Revision ID: 2103
Revises: 2102
Create Date: 2026-12-07 18:00:00

Tickets, e-mails and pages gave an event's start in UTC (the PDF printed "19:00 UTC" for a
concert at 20:00 in Berlin). An event now names its venue's time zone (an IANA name); the events
there were before get UTC, which is what they showed.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "2103"
down_revision: str | None = "2102"


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("timezone")
