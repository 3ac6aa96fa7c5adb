"""door check-in: exit scans on record (``redemptions.exit``), so offline exits merge in order

Revision ID: 1202
Revises: 1701
Create Date: 2026-12-06 08:00:00

Issue 12: an exit scan made offline is uploaded like an entry; the server replays a ticket's
entries and exits in time order, so it keeps every exit (online ones too) beside the entries.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "1202"
down_revision: str | None = "1701"


def upgrade() -> None:
    with op.batch_alter_table("redemptions") as batch:
        batch.add_column(sa.Column("exit", sa.Boolean(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("redemptions") as batch:
        batch.drop_column("exit")
