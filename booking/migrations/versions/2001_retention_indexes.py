"""retention: indexes the sweeps that forget old idempotency keys, sign-ins and sent mail use

Revision ID: 2001
Revises: 1901
Create Date: 2026-12-07 12:00:00

Idempotency keys, sign-in requests and sent outbox messages were kept forever; a periodic sweep
(``booking.retention``) now deletes them after their retention, oldest first, in batches. Each
sweep reads one index range: ``idempotency_keys`` by ``created_at``, ``sign_ins`` by
``expires_at``, and ``outbox`` by ``(ref, sent_at)`` (only messages without a ``ref`` go: an
order's e-mails and a webhook's deliveries are kept for the order desk and the delivery log);
``holds`` by ``(status, expires_at)`` (an index it had), keeping those a payment names
(``payments.hold_id``).
"""

from alembic import op

revision: str = "2001"
down_revision: str | None = "1901"

INDEXES = (
    ("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"]),
    ("ix_sign_ins_expires_at", "sign_ins", ["expires_at"]),
    ("ix_outbox_ref_sent_at", "outbox", ["ref", "sent_at"]),
    ("ix_payments_hold_id", "payments", ["hold_id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
