"""queue messages: SQLite never hands out a deleted message's id again (AUTOINCREMENT)

Revision ID: 1801
Revises: 1202
Create Date: 2026-12-07 03:00:00

A ``queue_messages`` row's id is its STOMP ``message-id`` and the root of its ack ids. Without
AUTOINCREMENT, SQLite gives the next row the id of the newest row once that row is deleted (an
acknowledged message), so a stale ACK could settle another message and a consumer could take a
new message for a duplicate. The SQLite table is rebuilt with AUTOINCREMENT, keeping its rows
and their ids; MariaDB's AUTO_INCREMENT already never goes back, so nothing changes there.
"""

from alembic import op

revision: str = "1801"
down_revision: str | None = "1202"


def _rebuild_queue_messages(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "queue_messages", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _rebuild_queue_messages(autoincrement=True)


def downgrade() -> None:
    _rebuild_queue_messages(autoincrement=False)
