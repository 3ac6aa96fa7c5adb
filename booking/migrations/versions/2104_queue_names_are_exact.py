"""queue_messages: a queue's name is compared exactly, case included

Revision ID: 2104
Revises: 2103
Create Date: 2026-12-07 18:10:00

Queue names are case-sensitive everywhere else (the broker's memory, Redis streams, as in
RabbitMQ), but MariaDB's default collation compared ``queue_messages.queue`` without case: the
messages of ``/queue/Integration.orders`` were loaded into ``/queue/integration.orders`` when a
node read its queues back, so a publisher could put events into the box office's queue. The
column now has a binary collation on MySQL/MariaDB; SQLite compared exactly already.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "2104"
down_revision: str | None = "2103"


def _collate(collation: str | None) -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    op.alter_column(
        "queue_messages", "queue", existing_type=sa.String(128), existing_nullable=False,
        type_=mysql.VARCHAR(128, collation=collation),
    )  # fmt: skip


def upgrade() -> None:
    _collate("utf8mb4_bin")


def downgrade() -> None:
    _collate(None)
