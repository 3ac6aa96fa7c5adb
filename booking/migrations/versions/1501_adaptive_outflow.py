"""events carry an admission mode (fixed or adaptive), its bounds, and a proof-of-work cost

Revision ID: 1501
Revises: 1201
Create Date: 2026-12-06 05:00:00

Issue 15: in adaptive mode the waiting room's admission rate follows the booking core's health
(additive increase, multiplicative decrease) between an admin's minimum and maximum; joining
the queue may cost a proof of work of ``pow_difficulty`` leading zero bits (0: none).
"""

import sqlalchemy as sa
from alembic import op

revision: str = "1501"
down_revision: str | None = "1201"


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "admission_mode", sa.String(length=16), nullable=False, server_default="fixed"
            )
        )
        batch_op.add_column(
            sa.Column("admission_rate_min", sa.Float(), nullable=False, server_default="1")
        )
        batch_op.add_column(
            sa.Column("admission_rate_max", sa.Float(), nullable=False, server_default="100")
        )
        batch_op.add_column(
            sa.Column("pow_difficulty", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("pow_difficulty")
        batch_op.drop_column("admission_rate_max")
        batch_op.drop_column("admission_rate_min")
        batch_op.drop_column("admission_mode")
