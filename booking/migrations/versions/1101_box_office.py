"""box office: customers and sign-in, the outbox, refunds, the audit log, refund policies

Revision ID: 1101
Revises: 0003
Create Date: 2026-12-10 09:00:00

Orders keep the e-mail address their confirmation goes to; events get a refund policy (existing
events: buyers may cancel until 24 hours before the start).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "1101"
down_revision: str | None = "0003"

UTC = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("refund_cutoff_hours", sa.Integer(), nullable=True))
    op.execute("UPDATE events SET refund_cutoff_hours = 24")
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("email", sa.String(254), nullable=True))
        batch.create_index("ix_orders_user_id", ["user_id"])
        batch.create_index("ix_orders_email", ["email"])
    op.create_table(
        "customers",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("tokens_revoked_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("signed_in_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.UniqueConstraint("email", name="uq_customers_email"),
    )
    op.create_index("ix_customers_tokens_revoked_at", "customers", ["tokens_revoked_at"])
    op.create_table(
        "sign_ins",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("link_hash", sa.String(64), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("used_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sign_ins"),
        sa.UniqueConstraint("link_hash", name="uq_sign_ins_link_hash"),
    )
    op.create_index("ix_sign_ins_email_created_at", "sign_ins", ["email", "created_at"])
    op.create_table(
        "outbox",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ref", sa.String(64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.String(191), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
    )
    op.create_index("ix_outbox_sent_at_next_attempt_at", "outbox", ["sent_at", "next_attempt_at"])
    op.create_index("ix_outbox_ref", "outbox", ["ref"])
    op.create_table(
        "refunds",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("order_id", sa.String(40), nullable=False),
        sa.Column("payment_id", sa.String(40), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_refunds_order_id_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_refunds"),
        sa.UniqueConstraint("order_id", name="uq_refunds_order_id"),
    )
    op.create_index("ix_refunds_status_next_attempt_at", "refunds", ["status", "next_attempt_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(48), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_target", "audit_log", ["target"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("refunds")
    op.drop_table("outbox")
    op.drop_table("sign_ins")
    op.drop_table("customers")
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_email")
        batch.drop_index("ix_orders_user_id")
        batch.drop_column("email")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("refund_cutoff_hours")
