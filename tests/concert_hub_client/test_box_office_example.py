"""The runnable SDK example, ``scripts/box_office_consumer.py``: each order event handled once.

Only the server publishes to ``/queue/integration.orders``: one test feeds messages of the same
shape (an ``event-id`` header and a JSON body with ``id``), duplicates among them, through a
queue of its own; another has the example hear a real order paid, cancelled and refunded, with a
token of role ``integration``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

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
    ran: list[str] = []
    assert example.Seen(path).handle_once("evt_1", lambda: ran.append("evt_1"))
    # a new process, the same file
    assert not example.Seen(path).handle_once("evt_1", lambda: ran.append("evt_1 again"))
    assert example.Seen(path).handle_once("evt_2", lambda: ran.append("evt_2"))
    assert ran == ["evt_1", "evt_2"]


def test_a_failed_handler_records_nothing_and_its_writes_roll_back(tmp_path: Path) -> None:
    example = load()
    seen = example.Seen(str(tmp_path / "seen.sqlite"))
    with seen.db:
        seen.db.execute("CREATE TABLE effects (id TEXT)")

    def failing() -> None:
        seen.db.execute("INSERT INTO effects VALUES ('evt_1')")  # the effect, in the same file
        raise RuntimeError("ERP down")

    with pytest.raises(RuntimeError):
        seen.handle_once("evt_1", failing)
    assert seen.db.execute("SELECT count(*) FROM effects").fetchone() == (0,)
    assert seen.handle_once("evt_1", lambda: seen.db.execute("INSERT INTO effects VALUES ('x')"))
    assert seen.db.execute("SELECT count(*) FROM effects").fetchone() == (1,)


async def test_an_event_whose_handler_failed_is_handled_on_its_redelivery(
    server: ServerProcess, tmp_path: Path
) -> None:
    example = load()
    token = server.token(unique("box-office"), "publisher")
    queue = f"/queue/{unique('orders')}"
    async with connect(server.ws_url, token=token) as producer:
        await producer.send(queue, json.dumps({"id": "evt_x", "type": "order.paid"}),
                            receipt=True, content_type="application/json")  # fmt: skip
    path = str(tmp_path / "seen.sqlite")

    def crash(key: str, body: dict[str, Any]) -> None:
        raise RuntimeError(f"ERP down while handling {key}")

    with pytest.raises(RuntimeError, match="ERP down"):  # the integration stops
        await example.consume(server.ws_url, token, example.Seen(path), on_event=crash,
                              limit=1, queue=queue)  # fmt: skip
    handled: list[str] = []
    new = await example.consume(server.ws_url, token, example.Seen(path),
                                on_event=lambda k, b: handled.append(k), limit=1,
                                queue=queue)  # fmt: skip
    assert (new, handled) == (1, ["evt_x"])  # redelivered, and handled this time


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


def _as_a_terminal_starts_it() -> None:
    """In the child before it runs: Ctrl-C handled by default and no signal blocked, as a shell
    starts a command. The test process may have either changed by now (a library's threads,
    the xdist worker), and a child inherits both."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _process_state(pid: int) -> str:
    """What the kernel says of a child that did not exit: ``State`` Z (it exited and this
    process never reaped it), T (stopped: SIGABRT would wait too), or S/R with SIGINT in
    ``SigBlk``, ``SigIgn`` or ``SigPnd`` (its handler never ran), else its stacks show where."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        return f"/proc/{pid}/status: {exc}"
    fields = ("State", "Threads", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    return "\n".join(line for line in status.splitlines() if line.startswith(fields))


async def test_ctrl_c_stops_the_example_without_a_traceback(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    node = make_server()
    token = node.token(unique("box-office"), "publisher")
    queue = f"/queue/{unique('orders')}"
    consumer = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--url", node.ws_url, "--token", token,
        "--seen", str(tmp_path / "seen.db"), "--queue", queue,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        preexec_fn=_as_a_terminal_starts_it,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # SIGABRT below: where it hangs
    )  # fmt: skip
    assert consumer.stdout is not None and consumer.stderr is not None
    try:
        async with connect(node.ws_url, token=token) as producer:
            await producer.send(queue, json.dumps({"id": "evt_c", "type": "order.paid"}),
                                receipt=True, content_type="application/json")  # fmt: skip
        # It printed the event, so it is consuming when the operator presses Ctrl-C.
        line = await asyncio.wait_for(consumer.stdout.readline(), 30)
        assert json.loads(line)["event"] == "evt_c"
        consumer.send_signal(signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer.wait(), 30)
    finally:
        state = ""
        if consumer.returncode is None:
            state = _process_state(consumer.pid)
            consumer.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        try:
            stderr = (await asyncio.wait_for(consumer.communicate(), 30))[1].decode()
        except TimeoutError:
            pytest.fail(f"the example's exit was not seen, even after SIGABRT:\n{state}")
    assert consumer.returncode == 130, f"{state}\n{stderr}"
    assert "Traceback" not in stderr, stderr
