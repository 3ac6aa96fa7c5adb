"""booking core tables

Revision ID: 0001
Revises:
Create Date: 2026-11-24 06:52:31.946869
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql
from sqlalchemy.sql.schema import SchemaItem

revision: str = "0001"
down_revision: str | None = None

#: Naive UTC instants with microseconds (booking.schema.UTC as it was at this revision).
UTC = (
    sa.DateTime()
    .with_variant(mysql.DATETIME(fsp=6), "mariadb")
    .with_variant(mysql.DATETIME(fsp=6), "mysql")
)


ID = sa.String(length=40)
SEAT_ID = sa.String(length=32)
STATUS = sa.String(length=16)


def _create(name: str, *parts: SchemaItem) -> None:
    op.create_table(name, *parts)


def _event_id() -> sa.Column[int]:
    return sa.Column("event_id", sa.Integer(), nullable=False)


def _user_id() -> sa.Column[str]:
    return sa.Column("user_id", sa.String(length=128), nullable=False)


def _owned_by_user() -> tuple[sa.Column[str], sa.Column[int], sa.Column[str]]:
    return sa.Column("id", ID, nullable=False), _event_id(), _user_id()


def _money() -> tuple[sa.Column[int], sa.Column[str]]:
    return (
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
    )


def _of_event(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["event_id"], ["events.id"], name=op.f(f"fk_{table}_event_id_events")
    )


#: (table, index, columns) of every index this revision creates.
_INDEXES: tuple[tuple[str, str, list[str]], ...] = (
    ("payments", "ix_payments_status_updated_at", ["status", "updated_at"]),
    ("holds", "ix_holds_event_id_user_id_status", ["event_id", "user_id", "status"]),
    ("holds", "ix_holds_status_expires_at", ["status", "expires_at"]),
    ("orders", "ix_orders_event_id_user_id", ["event_id", "user_id"]),
    ("seats", "ix_seats_event_id_hold_expires_at", ["event_id", "hold_expires_at"]),
    ("seats", "ix_seats_hold_id", ["hold_id"]),
    ("tickets", "ix_tickets_event_id_user_id", ["event_id", "user_id"]),
    ("tickets", "ix_tickets_order_id", ["order_id"]),
)


def upgrade() -> None:
    _create(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("venue", sa.String(length=200), nullable=False),
        sa.Column("starts_at", UTC, nullable=False),
        sa.Column("sale_opens_at", UTC, nullable=False),
        sa.Column("sale_closes_at", UTC, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("waiting_room", sa.Boolean(), nullable=False),
        sa.Column("admission_rate", sa.Float(), nullable=False),
        sa.Column("max_active_shoppers", sa.Integer(), nullable=False),
        sa.Column("hold_ttl_s", sa.Integer(), nullable=False),
        sa.Column("max_seats_per_user", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    _create(
        "idempotency_keys",
        _user_id(),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotency_keys")),
    )
    _create(
        "payments",
        sa.Column("id", ID, nullable=False),
        _user_id(),
        sa.Column("hold_id", ID, nullable=False),
        sa.Column("order_id", ID, nullable=True),
        *_money(),
        sa.Column("provider", SEAT_ID, nullable=False),
        sa.Column("provider_ref", sa.String(length=128), nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
    )
    _create(
        "test_gateway_charges",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("payment_id", ID, nullable=False),
        *_money(),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_test_gateway_charges")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_test_gateway_charges_payment_id")),
    )
    _create(
        "holds",
        *_owned_by_user(),
        sa.Column("seat_ids", sa.Text(), nullable=False),
        sa.Column("seat_count", sa.Integer(), nullable=False),
        *_money(),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        _of_event("holds"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holds")),
    )
    _create(
        "orders",
        *_owned_by_user(),
        sa.Column("hold_id", ID, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        *_money(),
        sa.Column("payment_id", ID, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("cancelled_at", UTC, nullable=True),
        _of_event("orders"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("hold_id", name=op.f("uq_orders_hold_id")),
    )
    _create(
        "price_tiers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        _event_id(),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        _of_event("price_tiers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_tiers")),
        sa.UniqueConstraint("event_id", "name", name=op.f("uq_price_tiers_event_id_name")),
    )
    _create(
        "seats",
        _event_id(),
        sa.Column("seat_id", SEAT_ID, nullable=False),
        sa.Column("section", SEAT_ID, nullable=False),
        sa.Column("row", sa.String(length=8), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("tier_id", sa.Integer(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("hold_id", ID, nullable=True),
        sa.Column("hold_user", sa.String(length=128), nullable=True),
        sa.Column("hold_expires_at", UTC, nullable=True),
        sa.Column("order_id", ID, nullable=True),
        _of_event("seats"),
        sa.ForeignKeyConstraint(
            ["tier_id"], ["price_tiers.id"], name=op.f("fk_seats_tier_id_price_tiers")
        ),
        sa.PrimaryKeyConstraint("event_id", "seat_id", name=op.f("pk_seats")),
    )
    _create(
        "tickets",
        sa.Column("code", sa.String(length=160), nullable=False),
        sa.Column("order_id", ID, nullable=False),
        _event_id(),
        sa.Column("seat_id", SEAT_ID, nullable=False),
        _user_id(),
        sa.Column("active_seat_id", SEAT_ID, nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("issued_at", UTC, nullable=False),
        _of_event("tickets"),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_tickets_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_tickets")),
        sa.UniqueConstraint(
            "event_id", "active_seat_id", name=op.f("uq_tickets_event_id_active_seat_id")
        ),
    )
    for table, name, columns in _INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(name), columns, unique=False)


#: Tables as downgrade drops them: each before the tables its foreign keys point at.
_DROP_ORDER = (
    "tickets", "seats", "price_tiers", "orders", "holds", "test_gateway_charges", "payments",
    "idempotency_keys", "events",
)  # fmt: skip


def downgrade() -> None:
    # A table's indexes go with it. Dropping them first failed on MariaDB: an index that a
    # foreign key uses (ix_tickets_order_id) cannot be dropped while the key is there.
    for table in _DROP_ORDER:
        op.drop_table(table)
