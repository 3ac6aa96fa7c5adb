"""idempotency outcomes are stored as domain data, not as REST bodies

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 09:00:00

A stored checkout outcome used to be the REST response (``{"ok", "body"}``), which froze the
REST shape into the database. It is now the domain outcome: ``{"order": Order.record()}`` or
``{"error": BookingError.record()}`` (see :mod:`booking.checkout`). Existing rows are converted
both ways.
"""

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"

_KEYS = sa.table(
    "idempotency_keys",
    sa.column("user_id", sa.String),
    sa.column("key", sa.String),
    sa.column("status", sa.String),
    sa.column("response_body", sa.Text),
)


def _to_domain(stored: dict[str, Any]) -> dict[str, Any]:
    body = stored["body"]
    if stored["ok"]:
        order = {name: body[name] for name in ("status", "event_id", "amount_cents", "currency",
                                               "created_at")}  # fmt: skip
        order["id"] = body["order_id"]
        order["tickets"] = [[t["code"], t["seat_id"], t["status"]] for t in body["tickets"]]
        return {"order": order}
    extra = {k: v for k, v in body.items() if k not in ("kind", "detail")}
    return {"error": {"kind": body["kind"], "detail": body["detail"], "extra": extra}}


def _to_rest(stored: dict[str, Any]) -> dict[str, Any]:
    if "order" in stored:
        order = dict(stored["order"])
        order["order_id"] = order.pop("id")
        order["tickets"] = [
            {"code": c, "seat_id": s, "status": st} for c, s, st in order["tickets"]
        ]
        return {"ok": True, "body": order}
    error = stored["error"]
    return {"ok": False, "body": {"kind": error["kind"], "detail": error["detail"],
                                  **error["extra"]}}  # fmt: skip


def _convert(change: Callable[[dict[str, Any]], dict[str, Any]], source_key: str) -> None:
    bind = op.get_bind()
    done = bind.execute(
        sa.select(_KEYS.c.user_id, _KEYS.c.key, _KEYS.c.response_body).where(
            _KEYS.c.status == "done", _KEYS.c.response_body.is_not(None)
        )
    ).all()
    for user_id, key, text in done:
        stored = json.loads(text)
        if source_key not in stored:
            continue  # already in the target shape
        bind.execute(
            sa.update(_KEYS)
            .where(_KEYS.c.user_id == user_id, _KEYS.c.key == key)
            .values(response_body=json.dumps(change(stored)))
        )


def upgrade() -> None:
    _convert(_to_domain, "ok")


def downgrade() -> None:
    _convert(_to_rest, "order")
    _convert(_to_rest, "error")
