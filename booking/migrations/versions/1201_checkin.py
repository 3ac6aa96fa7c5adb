"""door check-in: redemptions, scanners, Ed25519 ticket keys, per-event re-entry

Revision ID: 1201
Revises: 1401
Create Date: 2026-12-06 04:00:00

Issue 12: a ticket admits once (``tickets.admitted_at``, set by one conditional UPDATE), door
scanners hold revocable tokens, ticket codes are signed with rotating Ed25519 keys (longer codes:
``tickets.code`` grows to 255 characters).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "1201"
down_revision: str | None = "1401"

UTC = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.alter_column(
            "code", existing_type=sa.String(160), type_=sa.String(255), existing_nullable=False
        )
        batch.add_column(sa.Column("admitted_at", UTC, nullable=True))
        batch.add_column(sa.Column("admitted_gate", sa.String(64), nullable=True))
        batch.add_column(sa.Column("rearmed_at", UTC, nullable=True))
    op.create_table(
        "ticket_keys",
        sa.Column("kid", sa.String(16), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("retired_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("kid", name="pk_ticket_keys"),
    )
    op.create_table(
        "redemptions",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(255), nullable=False),
        sa.Column("gate", sa.String(64), nullable=False),
        sa.Column("device", sa.String(40), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name="fk_redemptions_event_id_events"),
        sa.PrimaryKeyConstraint("id", name="pk_redemptions"),
        sa.UniqueConstraint("code", "gate", "at", name="uq_redemptions_code_gate_at"),
    )
    op.create_index("ix_redemptions_event_id_at", "redemptions", ["event_id", "at"])
    op.create_table(
        "scanners",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("gate", sa.String(64), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name="fk_scanners_event_id_events"),
        sa.PrimaryKeyConstraint("id", name="pk_scanners"),
    )
    op.create_table(
        "checkin_settings",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("reentry", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name="fk_checkin_settings_event_id_events"
        ),
        sa.PrimaryKeyConstraint("event_id", name="pk_checkin_settings"),
    )


def downgrade() -> None:
    op.drop_table("checkin_settings")
    op.drop_table("scanners")
    op.drop_table("redemptions")
    op.drop_table("ticket_keys")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("rearmed_at")
        batch.drop_column("admitted_gate")
        batch.drop_column("admitted_at")
        batch.alter_column(
            "code", existing_type=sa.String(255), type_=sa.String(160), existing_nullable=False
        )
