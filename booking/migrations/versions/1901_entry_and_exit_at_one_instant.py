"""redemptions: an entry and an exit at one gate at one instant are two redemptions

Revision ID: 1901
Revises: 1801
Create Date: 2026-12-07 10:30:00

The unique key (code, gate, at) made the second of such a pair look like the first uploaded
again, and it was dropped: a lost exit kept its holder inside (their re-entry refused), a lost
entry left the ticket unused (a second holder let in, and no conflict recorded). The key now
includes the direction. A downgrade fails while the table holds such a pair.
"""

from alembic import op

revision: str = "1901"
down_revision: str | None = "1801"


def _key(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    with op.batch_alter_table("redemptions") as batch:
        batch.drop_constraint(f"uq_redemptions_{'_'.join(old)}", type_="unique")
        batch.create_unique_constraint(f"uq_redemptions_{'_'.join(new)}", list(new))


def upgrade() -> None:
    _key(("code", "gate", "at"), ("code", "gate", "at", "exit"))


def downgrade() -> None:
    _key(("code", "gate", "at", "exit"), ("code", "gate", "at"))
