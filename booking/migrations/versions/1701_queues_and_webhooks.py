"""point-to-point queues on a single node; webhook endpoints of integration events

Revision ID: 1701
Revises: 1501
Create Date: 2026-12-17 09:00:00

Issue 17: ``/queue/{name}`` messages are kept in ``queue_messages`` until acknowledged (single
node; a cluster keeps them in Redis streams), and admins register webhook endpoints that
integration events (order paid, cancelled, refunded, hold expired) are posted to.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "1701"
down_revision: str | None = "1501"

UTC = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BODY = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "queue_messages",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("queue", sa.String(128), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("body", BODY, nullable=False),
        sa.Column("dedupe_key", sa.String(191), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_queue_messages"),
        sa.UniqueConstraint("dedupe_key", name="uq_queue_messages_dedupe_key"),
    )
    op.create_index("ix_queue_messages_queue_id", "queue_messages", ["queue", "id"])
    op.create_table(
        "webhooks",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("events", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhooks"),
    )


def downgrade() -> None:
    op.drop_table("webhooks")
    op.drop_index("ix_queue_messages_queue_id", table_name="queue_messages")
    op.drop_table("queue_messages")
