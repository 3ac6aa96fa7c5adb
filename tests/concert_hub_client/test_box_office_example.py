"""The runnable SDK example, ``scripts/box_office_consumer.py``: each order event handled once.

Only the server publishes to ``/queue/integration.orders``; the end-to-end test feeds the same
messages (an ``event-id`` header and a JSON body with ``id``) through a queue of its own.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

from concert_hub_client.sdk import connect
from tests.conftest import ServerProcess
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
