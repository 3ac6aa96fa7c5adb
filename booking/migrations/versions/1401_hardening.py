"""holds know their checkout claim and their client; per-holder lock rows

Revision ID: 1401
Revises: 1301
Create Date: 2026-12-06 04:00:00

Issue 14 (hardening): a checkout claims its hold (``checkout_until``) before it charges, so
concurrent checkouts of one hold charge once; a hold records the client IP and the verified
e-mail address that placed it, for the caps on seats held at once per client; and
``hold_locks`` serialises the holds of one holder, so the per-user limit is race-free.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "1401"
down_revision: str | None = "1301"

UTC = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checkout_until", UTC, nullable=True))
        batch_op.add_column(sa.Column("client_ip", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("holder_email", sa.String(length=254), nullable=True))
        batch_op.create_index(
            "ix_holds_event_id_client_ip_status", ["event_id", "client_ip", "status"]
        )
        batch_op.create_index(
            "ix_holds_event_id_holder_email_status", ["event_id", "holder_email", "status"]
        )
    op.create_table(
        "hold_locks",
        sa.Column("event_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("subject", sa.String(length=320), nullable=False),
        sa.Column("touched_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("event_id", "subject", name="pk_hold_locks"),
    )
    op.create_index("ix_hold_locks_touched_at", "hold_locks", ["touched_at"])


def downgrade() -> None:
    op.drop_index("ix_hold_locks_touched_at", table_name="hold_locks")
    op.drop_table("hold_locks")
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index("ix_holds_event_id_holder_email_status")
        batch_op.drop_index("ix_holds_event_id_client_ip_status")
        batch_op.drop_column("holder_email")
        batch_op.drop_column("client_ip")
        batch_op.drop_column("checkout_until")
