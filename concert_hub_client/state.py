"""The SDK's sans-I/O parts: what a subscription remembers to resume, a seat map's state, the
``/app`` replies and their errors. No asyncio here; :mod:`concert_hub_client.sdk` drives them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

#: SUBSCRIBE headers the server reads to resume (README, "Live seat map" and "/user/ replay").
RESUME_SEQ = "resume-seq"
RESUME_AFTER = "resume-after"
#: ``resume-after`` of a user queue on which nothing was received yet: replay all kept.
EVERYTHING_KEPT = "*"


def seats_destination(event_id: int) -> str:
    return f"/topic/events/{event_id}/seats"


def is_user_queue(destination: str) -> bool:
    return destination.startswith("/user/queue/")


@dataclass
class ResumePoint:
    """What one subscription has seen, to subscribe again after a reconnect without a gap."""

    destination: str
    #: The message-id of the last MESSAGE received (user queues resume after it).
    last_message_id: str | None = None
    #: Whether the subscription was ever made (only then is there anything to resume).
    subscribed: bool = False

    def headers(self, seat_seq: int | None = None) -> list[tuple[str, str]]:
        """The resume headers of the next SUBSCRIBE: none the first time."""
        if not self.subscribed:
            return []
        if seat_seq is not None:
            return [(RESUME_SEQ, str(seat_seq))] if seat_seq >= 0 else []
        if is_user_queue(self.destination):
            return [(RESUME_AFTER, self.last_message_id or EVERYTHING_KEPT)]
        return []


class Applied(Enum):
    SNAPSHOT = "snapshot"
    DELTA = "delta"
    #: Already in the map (a seq at or before the current one): ignored.
    STALE = "stale"
    #: A seq gap: the map is no longer right; subscribe again for a snapshot.
    GAP = "gap"


@dataclass
class SeatMapState:
    """One event's seat map as the seat-map MESSAGEs build it (README, "Live seat map")."""

    event_id: int
    seq: int = -1
    statuses: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.seq >= 0

    def apply(self, body: bytes | str | dict[str, Any]) -> Applied:
        message = json.loads(body) if isinstance(body, bytes | str) else body
        kind, seq = message.get("type"), int(message["seq"])
        if kind == "snapshot":
            self.statuses = {seat: status for seat, status in message["seats"]}
            self.seq = seq
            return Applied.SNAPSHOT
        if kind != "delta":
            raise ValueError(f"not a seat-map message: {message!r}")
        since = message.get("since")
        if since is not None:
            if since != self.seq:
                return Applied.GAP
        elif self.seq >= 0 and seq <= self.seq:
            return Applied.STALE
        elif seq != self.seq + 1 or self.seq < 0:
            return Applied.GAP
        self.statuses.update({seat: status for seat, status in message["changes"]})
        self.seq = seq
        return Applied.DELTA

    def forget(self) -> None:
        """After a gap: the next SUBSCRIBE carries no resume-seq and gets a snapshot."""
        self.seq = -1


class CommandError(Exception):
    """An ``/app`` command failed: the body of its ``/user/queue/errors`` reply (the REST
    problem's ``status``, ``kind`` and ``detail``)."""

    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.status = int(reply.get("status", 0))
        self.kind = str(reply.get("kind", "error"))
        self.detail = str(reply.get("detail", ""))
        super().__init__(f"{self.status} {self.kind}: {self.detail}")


@dataclass(frozen=True)
class Hold:
    hold_id: str
    event_id: int
    seats: list[str]
    status: str
    expires_at: str
    amount_cents: int
    currency: str

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> Hold:
        return cls(
            hold_id=reply["hold_id"], event_id=int(reply["event_id"]), seats=list(reply["seats"]),
            status=reply["status"], expires_at=reply["expires_at"],
            amount_cents=int(reply["amount_cents"]), currency=reply["currency"],
        )  # fmt: skip


@dataclass(frozen=True)
class QueuePosition:
    event_id: int
    state: str
    position: int | None
    ahead: int | None
    waiting_total: int | None
    eta_seconds: float | None
    admission_token: str | None = None
    expires_at: str | None = None

    @classmethod
    def from_reply(cls, reply: dict[str, Any]) -> QueuePosition:
        return cls(
            event_id=int(reply["event_id"]), state=reply["state"], position=reply.get("position"),
            ahead=reply.get("ahead"), waiting_total=reply.get("waiting_total"),
            eta_seconds=reply.get("eta_seconds"), admission_token=reply.get("admission_token"),
            expires_at=reply.get("expires_at"),
        )  # fmt: skip


def parse_reply(body: bytes) -> dict[str, Any]:
    reply = json.loads(body)
    if not isinstance(reply, dict):
        raise ValueError(f"not a command reply: {reply!r}")
    return reply
