#!/usr/bin/env python3
"""A box-office integration on the Python SDK: consume ``/queue/integration.orders``.

Each order event (paid, cancelled, refunded …) is handled by its event id, kept in a small
SQLite file, then ACKed; an event recorded before (a redelivery after a crash between recording
and ACK, say) is ACKed without being handled again. The SDK reconnects by itself;
unacknowledged messages come back from the queue, marked ``redelivered``.

The id is recorded in the same SQLite transaction as the handling, committed only once the
handler returned (:meth:`Seen.handle_once`): a handler that fails (or a crash while it runs)
records nothing and ACKs nothing, so the event comes again and is handled again; it is never
lost. What the handler writes to that same database (``seen.db``) commits or rolls back with the
record: that effect is exactly once. An effect elsewhere (this script's printed line, an ERP
call) is at least once: a crash after the handler but before the commit repeats it on the
redelivery, which is why such a handler should be idempotent (the event id makes a good
idempotency key). Recording first instead would lose the event whenever the handler fails.

    .venv/bin/python scripts/box_office_consumer.py --url ws://127.0.0.1:8080/ws \\
        --token "$(.venv/bin/concert-hub token --user box-office --role integration)"

(from the repository root, where scripts/serve keeps the node's secret)

Here "handling" prints one JSON line per new event; replace :func:`handle` with the real work
(update the ERP, print the will-call list …).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
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
        with self.db:
            self.db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)")

    def handle_once(self, key: str, handler: Callable[[], None]) -> bool:
        """Run ``handler`` unless ``key`` was handled before, and record ``key`` in the same
        transaction: committed when the handler returns, rolled back (nothing recorded) when it
        raises. Whether it ran."""
        with self.db:  # one transaction: COMMIT on return, ROLLBACK on an exception
            cursor = self.db.execute("INSERT OR IGNORE INTO seen (id) VALUES (?)", (key,))
            if cursor.rowcount != 1:
                return False
            handler()
        return True


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
            if seen.handle_once(key, functools.partial(on_event, key, body)):
                new += 1
            await client.ack(message)  # after the commit: a crash before it only repeats the ACK
            settled += 1
            if limit is not None and settled >= limit:
                break
    return new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", action="append", required=True, help="a node's ws://…/ws "
                        "(repeat for the nodes of a cluster)")  # fmt: skip
    parser.add_argument("--token", required=True,
                        help="a token of role integration (or admin)")  # fmt: skip
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
    except KeyboardInterrupt:
        # Ctrl-C is how a consumer in a terminal is stopped: what was handled is committed and
        # the unacknowledged messages go back to the queue, so there is nothing to report.
        sys.exit(130)


if __name__ == "__main__":
    main()
