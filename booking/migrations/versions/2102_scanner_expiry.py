"""scanners: when a scanner's token expires

Revision ID: 2102
Revises: 2101
Create Date: 2026-12-07 17:30:00

The token's expiry was only in the token and in the answer that minted it, so the list of
scanners could not say which devices still hold a working token. Scanners minted before this
revision have none on record (NULL).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "2102"
down_revision: str | None = "2101"

UTC = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("scanners") as batch:
        batch.add_column(sa.Column("expires_at", UTC, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scanners") as batch:
        batch.drop_column("expires_at")
