"""orders and tickets: a corrected e-mail address cuts the old one off

Revision ID: 2101
Revises: 2001
Create Date: 2026-12-07 17:00:00

When the order desk resends an order to a corrected address, the mistyped address already holds
the order's link and its tickets. ``orders.link_nonce`` renews the link key (NULL: the key every
order had before, derived from the order id alone, so the links already sent keep opening), and
``tickets.replaced_by`` names the ticket that replaced a void one: the order shows its current
tickets, while the old code stays on record as void for the door and its scanners.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "2101"
down_revision: str | None = "2001"


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("link_nonce", sa.String(32), nullable=True))
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("replaced_by", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("replaced_by")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("link_nonce")
