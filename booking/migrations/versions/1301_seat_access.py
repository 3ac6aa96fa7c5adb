"""seats carry an accessibility attribute: a wheelchair space or a companion seat

Revision ID: 1301
Revises: 1101
Create Date: 2026-12-14 10:00:00

Issue 13: best available keeps wheelchair spaces and their companion seats for those who ask
for them. NULL is an ordinary seat.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "1301"
down_revision: str | None = "1101"


def upgrade() -> None:
    with op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("access", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("seats", schema=None) as batch_op:
        batch_op.drop_column("access")
