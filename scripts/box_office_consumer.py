#!/usr/bin/env python3
"""A box-office integration on the Python SDK: consume ``/queue/integration.orders``.

Each order event (paid, cancelled, refunded …) is handled once by its event id, kept in a small
SQLite file, then ACKed; an event seen before (a redelivery after a crash between handling and
ACK, say) is ACKed without being handled again, so the effect is exactly once. The SDK reconnects
by itself; unacknowledged messages come back from the queue, marked ``redelivered``.

    python scripts/box_office_consumer.py --url ws://127.0.0.1:8080/ws \\
        --token "$(concert-hub token --user box-office --role integration)"

Here "handling" prints one JSON line per new event; replace :func:`handle` with the real work
(update the ERP, print the will-call list …).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from concert_hub_client.sdk import ServerError, connect  # noqa: E402
from protocol.client import Message  # noqa: E402

QUEUE = "/queue/integration.orders"


def event_key(message: Message, body: dict[str, Any]) -> str:
    """The event's id: its ``event-id`` header, else the body's ``id``, else the message-id."""
    return str(message.get("event-id") or body.get("id") or message.message_id)


class Seen:
    """Event ids already handled, in SQLite (survives restarts of the integration)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)")

    def first_time(self, key: str) -> bool:
        with self.db:
            cursor = self.db.execute("INSERT OR IGNORE INTO seen (id) VALUES (?)", (key,))
        return cursor.rowcount == 1


def handle(key: str, body: dict[str, Any]) -> None:
    print(json.dumps({"event": key, **body}), flush=True)


async def consume(
    url: str | list[str],
    token: str,
    seen: Seen,
    *,
    on_event: Callable[[str, dict[str, Any]], None] = handle,
    limit: int | None = None,
    prefetch: int = 16,
    queue: str = QUEUE,
) -> int:
    """Handle events until ``limit`` messages were settled (forever without one); returns how
    many were new."""
    new = settled = 0
    async with connect(url, token=token) as client:
        orders = await client.subscribe(
            queue, ack="client-individual", headers=[("prefetch-count", str(prefetch))]
        )
        async for message in orders:
            body = json.loads(message.body or b"{}")
            key = event_key(message, body)
            if seen.first_time(key):
                on_event(key, body)
                new += 1
            await client.ack(message)
            settled += 1
            if limit is not None and settled >= limit:
                break
    return new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", action="append", required=True, help="a node's ws://…/ws "
                        "(repeat for the nodes of a cluster)")  # fmt: skip
    parser.add_argument("--token", required=True, help="a publisher or admin token")
    parser.add_argument("--seen", default="box-office-seen.sqlite", help="handled event ids")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many messages")
    parser.add_argument("--queue", default=QUEUE, help="the queue to consume (%(default)s)")
    args = parser.parse_args()
    try:
        asyncio.run(
            consume(args.url, args.token, Seen(args.seen), limit=args.limit, queue=args.queue)
        )
    except ServerError as exc:  # e.g. forbidden destination: a token without the role
        sys.exit(f"box_office_consumer: the server refused: {exc}")


if __name__ == "__main__":
    main()
