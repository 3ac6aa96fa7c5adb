"""Time in the booking core: naive UTC in the database, aware UTC at the edges."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as the naive UTC datetime every table stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_db(value: datetime) -> datetime:
    """An aware or naive-UTC datetime as naive UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def iso(value: datetime) -> str:
    """A stored naive-UTC datetime as RFC 3339 with ``Z``."""
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def from_unix(seconds: float) -> datetime:
    """Unix time as the naive UTC datetime every table stores."""
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
