"""The runnable SDK example, ``scripts/box_office_consumer.py``: each order event handled once.

Only the server publishes to ``/queue/integration.orders``: one test feeds messages of the same
shape (an ``event-id`` header and a JSON body with ``id``), duplicates among them, through a
queue of its own; another has the example hear a real order paid, cancelled and refunded, with a
token of role ``integration``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from concert_hub_client.sdk import connect
from tests.cluster.conftest import buy, create_event, hold
from tests.conftest import ServerProcess, rest
from tests.server.stomp_clients import unique

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "box_office_consumer.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("box_office_consumer", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_event_id_is_handled_once_across_restarts(tmp_path: Path) -> None:
    example = load()
    path = str(tmp_path / "seen.sqlite")
    assert example.Seen(path).first_time("evt_1")
    assert not example.Seen(path).first_time("evt_1")  # a new process, the same file
    assert example.Seen(path).first_time("evt_2")


async def test_the_example_consumes_the_orders_queue(server: ServerProcess, tmp_path: Path) -> None:
    example = load()
    token = server.token(unique("box-office"), "publisher")
    events = [{"id": "evt_a", "type": "order.paid"}, {"id": "evt_b", "type": "order.paid"},
              {"id": "evt_a", "type": "order.paid"}]  # fmt: skip
    queue = f"/queue/{unique('orders')}"
    async with connect(server.ws_url, token=token) as producer:
        for event in events:
            await producer.send(queue, json.dumps(event), receipt=True,
                                headers=[("event-id", event["id"])],
                                content_type="application/json")  # fmt: skip
    handled: list[tuple[str, dict[str, Any]]] = []
    new = await example.consume(server.ws_url, token, example.Seen(str(tmp_path / "s.db")),
                                on_event=lambda k, b: handled.append((k, b)), limit=3,
                                queue=queue)  # fmt: skip
    assert new == 2
    assert [k for k, _ in handled] == ["evt_a", "evt_b"]


async def test_the_example_hears_a_real_order_paid_and_cancelled(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    # A node of its own: the session server's integration.orders queue may hold other tests'.
    node = make_server(outbox_poll_s=0.2)
    event_id = await asyncio.to_thread(create_event, node)
    user = unique("buyer")
    order = await asyncio.to_thread(
        buy, node, user, await asyncio.to_thread(hold, node, event_id, user, ["S-A-1"])
    )
    status, _ = await asyncio.to_thread(
        rest, node, "POST", f"/api/orders/{order['order_id']}/cancel", token=node.token(user)
    )
    assert status == 200
    handled: list[tuple[str, dict[str, Any]]] = []
    example = load()
    # order.paid, order.cancelled and order.refunded, as a box office with role integration.
    new = await example.consume(node.ws_url, node.token("box-office", "integration"),
                                example.Seen(str(tmp_path / "seen.db")),
                                on_event=lambda k, b: handled.append((k, b)),
                                limit=3)  # fmt: skip
    assert new == 3
    assert {b["type"] for _, b in handled} == {"order.paid", "order.cancelled", "order.refunded"}
    assert all(b["data"]["order_id"] == order["order_id"] for _, b in handled)
    assert all(key == body["id"] for key, body in handled)
