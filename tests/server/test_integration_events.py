"""Integration events (issue 17): written with their change, then published to durable queues
and to webhooks, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from concert_hub_client import sdk
from tests.booking.conftest import event_body
from tests.cluster.conftest import VISA, create_event, hold, wait_until
from tests.conftest import ServerProcess, free_port, rest
from tests.server.stomp_clients import Client, open_stomp, unique

ORDERS = "/queue/integration.orders"


class Receiver:
    """A webhook endpoint: an aiohttp server in a thread, started and stopped by the test; it
    answers 500 to the first ``refuse`` requests, then 200, and records every request."""

    def __init__(self, port: int, refuse: int = 0) -> None:
        self.port = port
        self.refuse = refuse
        self.requests: list[tuple[dict[str, str], bytes]] = []
        #: Other POST routes in place of the recording ``/hook`` (set before :meth:`start`).
        self.routes: list[tuple[str, Callable[[web.Request], Awaitable[web.Response]]]] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if len(self.requests) <= self.refuse:
            return web.Response(status=500, text="not now")
        return web.Response(status=204)

    async def _start(self) -> None:
        app = web.Application()
        for path, handler in self.routes or [("/hook", self._handle)]:
            app.router.add_post(path, handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def checkout(node: ServerProcess, user: str, hold_id: str) -> tuple[int, Any]:
    return rest(node, "POST", f"/api/holds/{hold_id}/checkout", VISA, token=node.token(user),
                headers={"Idempotency-Key": unique("k")})  # fmt: skip


def events_on(client: Client, count: int) -> list[tuple[dict[str, str], dict[str, Any]]]:
    frames = client.listener.messages(count, timeout=20)
    for frame in frames:
        client.conn.ack(frame.headers["ack"])
    return [(dict(f.headers), json.loads(f.body)) for f in frames]


def test_events_reach_their_queue_and_a_webhook_that_was_down(
    make_server: Callable[..., ServerProcess], migrated_database: str
) -> None:
    port = free_port()
    receiver = Receiver(port, refuse=1)
    node = make_server(database_url=migrated_database, outbox_poll_s=0.2, retry_max_s=1,
                       webhook_allow_private=True)  # the receiver is on 127.0.0.1  # fmt: skip
    admin = node.token("root", "admin")
    status, hook = rest(node, "POST", "/api/admin/webhooks",
                        {"url": f"http://127.0.0.1:{port}/hook", "events": ["order.paid"]},
                        token=admin)  # fmt: skip
    assert status == 201, hook
    consumer = open_stomp(node, user=unique("erp"), role="integration")
    try:
        consumer.subscribe(ORDERS, ack="client-individual")
        event_id = create_event(node)
        user = unique("buyer")
        status, order = checkout(node, user, hold(node, event_id, user, ["S-A-1"]))
        assert status == 201, order
        [(headers, paid)] = events_on(consumer, 1)
        assert paid["type"] == "order.paid" and headers["event-id"] == paid["id"]
        assert paid["data"]["order_id"] == order["order_id"]
        assert paid["data"]["seats"] == ["S-A-1"]

        status, _ = rest(node, "POST", f"/api/orders/{order['order_id']}/cancel",
                         token=node.token(user))  # fmt: skip
        assert status == 200
        later = {body["type"]: body for _, body in events_on(consumer, 2)}
        assert later["order.cancelled"]["data"]["order_id"] == order["order_id"]
        assert later["order.refunded"]["data"]["order_id"] == order["order_id"]

        # The endpoint is down: the delivery is retried, and the log says why.
        log_path = f"/api/admin/webhooks/{hook['id']}/deliveries"
        failed = wait_until(
            lambda: [d for d in rest(node, "GET", log_path, token=admin)[1] if d["attempts"]],
            20, "a failed webhook attempt in the delivery log",
        )  # fmt: skip
        assert failed[0]["status"] == "retrying" and failed[0]["last_error"]
        assert failed[0]["http_status"] is None, "nothing answered yet"
        receiver.start()  # up, but it refuses the first POST: one more retry
        wait_until(lambda: len(receiver.requests) >= 2, 30, "the webhook delivered")
        sent = wait_until(
            lambda: [d for d in rest(node, "GET", log_path, token=admin)[1]
                     if d["status"] == "sent"],
            20, "the delivery logged as sent",
        )  # fmt: skip
        assert len(sent) == 1, "only order.paid was asked for"
        assert (sent[0]["event_id"], sent[0]["event_type"]) == (paid["id"], "order.paid")
        # Down (no answer), then HTTP 500, then HTTP 204.
        assert sent[0]["http_status"] == 204 and sent[0]["attempts"] >= 3, sent[0]
        assert sent[0]["next_attempt_at"] is None and sent[0]["sent_at"]
        for request_headers, body in receiver.requests:
            expected = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
            assert request_headers["X-Concert-Hub-Signature"] == f"sha256={expected}"
            # Every copy, the refused one too, carries the same event id.
            assert request_headers["X-Concert-Hub-Event-Id"] == paid["id"]
            assert json.loads(body) == paid
    finally:
        consumer.close()
        receiver.stop()


def test_the_log_shows_a_refusing_endpoint_and_a_deactivated_webhook_gets_nothing_more(
    make_server: Callable[..., ServerProcess], migrated_database: str
) -> None:
    port = free_port()
    receiver = Receiver(port, refuse=10**6)  # up, but answers HTTP 500 to everything
    receiver.start()
    node = make_server(database_url=migrated_database, outbox_poll_s=0.2, retry_max_s=1,
                       webhook_allow_private=True)  # the receivers are on 127.0.0.1  # fmt: skip
    admin = node.token("root", "admin")
    try:
        status, hook = rest(node, "POST", "/api/admin/webhooks",
                            {"url": f"http://127.0.0.1:{port}/hook"}, token=admin)  # fmt: skip
        assert status == 201, hook
        event_id = create_event(node)
        user = unique("buyer")
        status, order = checkout(node, user, hold(node, event_id, user, ["S-A-3"]))
        assert status == 201, order
        log_path = f"/api/admin/webhooks/{hook['id']}/deliveries"
        [refused] = wait_until(
            lambda: [d for d in rest(node, "GET", log_path, token=admin)[1]
                     if d["attempts"] >= 2],
            20, "two refused attempts in the log",
        )  # fmt: skip
        assert (refused["status"], refused["http_status"]) == ("retrying", 500), refused
        assert "HTTP 500" in refused["last_error"] and refused["next_attempt_at"]
        assert refused["event_type"] == "order.paid" and refused["event_id"].startswith("evt_")

        status, _ = rest(node, "DELETE", f"/api/admin/webhooks/{hook['id']}", token=admin)
        assert status == 200
        status, again = rest(node, "DELETE", f"/api/admin/webhooks/{hook['id']}", token=admin)
        assert (status, again["active"]) == (200, False)  # inactive already: not audited again
        status, _ = rest(node, "DELETE", "/api/admin/webhooks/424242", token=admin)
        assert status == 404
        # Both staff actions are on record (an endpoint receives every buyer's data); the
        # refused one is not.
        target = f"webhook:{hook['id']}"
        audit = rest(node, "GET", f"/api/admin/audit?target={target}", token=admin)[1]
        assert [(e["actor"], e["action"], e["target"]) for e in audit] == [
            ("root", "webhook.deactivate", target), ("root", "webhook.create", target),
        ]  # fmt: skip
        assert audit[1]["details"] == {"url": f"http://127.0.0.1:{port}/hook", "events": []}
        wait_until(
            lambda: rest(node, "GET", log_path, token=admin)[1][0]["status"] == "skipped",
            20, "the pending delivery dropped",
        )  # fmt: skip
        posts = len(receiver.requests)
        [skipped] = rest(node, "GET", log_path, token=admin)[1]
        assert skipped["sent_at"] is None and skipped["next_attempt_at"] is None, skipped
        # Nothing more reaches it, also for later events: once another webhook has the next
        # event, the fan-out that left this one out is done.
        witness = Receiver(free_port())
        witness.start()
        try:
            status, _ = rest(node, "POST", "/api/admin/webhooks",
                             {"url": f"http://127.0.0.1:{witness.port}/hook",
                              "events": ["order.paid"]}, token=admin)  # fmt: skip
            assert status == 201
            user = unique("buyer")
            status, later = checkout(node, user, hold(node, event_id, user, ["S-A-4"]))
            assert status == 201, later
            wait_until(lambda: witness.requests, 20, "the next event at the other webhook")
            assert len(rest(node, "GET", log_path, token=admin)[1]) == 1
            assert len(receiver.requests) == posts
        finally:
            witness.stop()
    finally:
        receiver.stop()


def hooked_sale(node: ServerProcess, url: str) -> str:
    """Register a webhook of ``order.paid`` at ``url`` and sell one seat; its delivery log's
    path."""
    status, hook = rest(node, "POST", "/api/admin/webhooks",
                        {"url": url, "events": ["order.paid"]},
                        token=node.token("root", "admin"))  # fmt: skip
    assert status == 201, hook
    event_id = create_event(node)
    user = unique("buyer")
    assert checkout(node, user, hold(node, event_id, user, ["S-A-5"]))[0] == 201
    return f"/api/admin/webhooks/{hook['id']}/deliveries"


def test_webhooks_reach_public_addresses_only_unless_allowed(
    make_server: Callable[..., ServerProcess], migrated_database: str
) -> None:
    """A webhook is an admin's request sent from the node: to the node's own network (the
    cloud's metadata service, the node itself, a port scan read from the delivery log) only
    with --webhook-allow-private."""
    node = make_server(database_url=migrated_database, outbox_poll_s=0.2, retry_max_s=1)
    admin = node.token("root", "admin")
    for url in (
        "http://127.0.0.1:22/",
        "http://[::1]:8080/",
        "http://169.254.169.254/latest/",
        "http://10.0.0.7/hook",
        "http://localhost:8080/hook",
        "http://LOCALHOST./x",
    ):
        status, refused = rest(node, "POST", "/api/admin/webhooks", {"url": url}, token=admin)
        assert status == 422 and refused["errors"][0]["loc"] == ["url"], (url, refused)
    # A name is checked where it leads, when connecting: this machine's own name.
    name = socket.gethostname()
    if ipaddress.ip_address(socket.gethostbyname(name)).is_global:
        pytest.skip(f"{name} resolves to a public address here")
    receiver = Receiver(free_port())
    receiver.start()
    try:
        log_path = hooked_sale(node, f"http://{name}:{receiver.port}/hook")
        [failed] = wait_until(
            lambda: [d for d in rest(node, "GET", log_path, token=admin)[1] if d["last_error"]],
            20, "the delivery to be refused",
        )  # fmt: skip
        assert "not a public address" in failed["last_error"], failed
        assert failed["http_status"] is None and receiver.requests == []
    finally:
        receiver.stop()


def test_a_webhook_redirect_is_an_answer_not_a_new_destination(
    make_server: Callable[..., ServerProcess], migrated_database: str
) -> None:
    """A 307 would carry the signed body wherever the endpoint points (past the address
    check): it is recorded as the answer and retried, never followed."""
    node = make_server(database_url=migrated_database, outbox_poll_s=0.2, retry_max_s=1,
                       webhook_allow_private=True)  # the receiver is on 127.0.0.1  # fmt: skip
    admin = node.token("root", "admin")
    landed: list[bytes] = []

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        landed.append(await request.read())
        return web.Response(status=204)

    receiver = Receiver(free_port())
    receiver.routes = [("/hook", moved), ("/elsewhere", elsewhere)]
    receiver.start()
    try:
        log_path = hooked_sale(node, f"http://127.0.0.1:{receiver.port}/hook")
        [answered] = wait_until(
            lambda: [d for d in rest(node, "GET", log_path, token=admin)[1]
                     if d["http_status"] == 307 and d["attempts"] >= 2],
            20, "the redirect answered twice",
        )  # fmt: skip
        assert answered["status"] == "retrying" and landed == [], answered
    finally:
        receiver.stop()


def test_an_event_is_published_once_after_a_crash_between_commit_and_publish(
    make_server: Callable[..., ServerProcess], migrated_database: str
) -> None:
    # The crashed node had claimed the event: it is sent again once that claim lapses.
    node = make_server(
        database_url=migrated_database, fault_crash_before_publish=True, outbox_lease_s=2
    )
    event_id = create_event(node)
    user = unique("buyer")
    hold_id = hold(node, event_id, user, ["S-A-2"])
    with contextlib.suppress(OSError):  # it dies on publishing: maybe before it answers
        checkout(node, user, hold_id)
    assert node.proc is not None
    assert node.proc.wait(20) == 70, "the injected crash did not happen"
    node.flags.pop("fault_crash_before_publish")
    node.start()
    status, mine = rest(node, "GET", "/api/orders", token=node.token(user))
    assert status == 200, mine
    [order] = mine if isinstance(mine, list) else mine["orders"]
    consumer = open_stomp(node, user=unique("erp"), role="integration")
    try:
        consumer.subscribe(ORDERS, ack="client-individual")
        [(_, paid)] = events_on(consumer, 1)
        assert (paid["type"], paid["data"]["order_id"]) == ("order.paid", order["order_id"])
        assert consumer.listener.quiet("MESSAGE", 1.0) == [], "the event was published twice"
    finally:
        consumer.close()


HOLDS = "/queue/integration.holds"


async def test_an_expired_hold_reaches_the_holds_queue_once_through_the_sdk(
    make_server: Callable[..., ServerProcess], migrated_database: str
) -> None:
    node = make_server(database_url=migrated_database, outbox_poll_s=0.2)
    event_id = await create_lapsing_event(node)
    user = unique("lapser")
    hold_id = await asyncio.to_thread(hold, node, event_id, user, ["S-A-1", "S-A-2"])
    # Nobody pays: the hold lapses after its 10 s and the reaper expires it.
    await expect_expired_once(node, event_id, user, hold_id)


async def test_an_expired_hold_in_a_waiting_room_sale_is_published_too(
    make_server: Callable[..., ServerProcess], migrated_database: str
) -> None:
    """With a waiting room a lapsed hold's seats are first offered to the queue (another
    path than the reaper's); integrations hear of the expiry all the same."""
    node = make_server(database_url=migrated_database, outbox_poll_s=0.2)
    event_id = await create_lapsing_event(node, waiting_room=True, admission_rate=50)
    user = unique("lapser")
    queue = f"/api/events/{event_id}/queue"
    status, joined = await asyncio.to_thread(rest, node, "POST", queue, token=node.token(user))
    assert status == 200, joined

    def admitted() -> str | None:
        me = rest(node, "GET", f"{queue}/me", token=node.token(user))[1]
        return me.get("admission_token") if me.get("state") == "admitted" else None

    token = await asyncio.to_thread(wait_until, admitted, 30, "admitted")
    status, placed = await asyncio.to_thread(
        rest, node, "POST", f"/api/events/{event_id}/holds", {"seats": ["S-A-1", "S-A-2"]},
        token=node.token(user), headers={"X-Admission-Token": token},
    )  # fmt: skip
    assert status == 201, placed
    await expect_expired_once(node, event_id, user, placed["hold_id"])


async def create_lapsing_event(node: ServerProcess, **overrides: Any) -> int:
    """An event on sale whose holds lapse after 10 s."""
    body = event_body(hold_ttl_s=10, **overrides)
    admin = node.token("root", "admin")
    status, created = await asyncio.to_thread(
        rest, node, "POST", "/api/admin/events", body, token=admin
    )
    assert status == 201, created
    return int(created["id"])


async def expect_expired_once(node: ServerProcess, event_id: int, user: str, hold_id: str) -> None:
    """``hold_id`` lapses: one ``hold.expired`` with the documented payload on the holds
    queue, never again, and its seats free."""
    consumer = node.token(unique("erp"), "integration")
    async with sdk.connect(node.ws_url, token=consumer) as client:
        holds = await client.subscribe(HOLDS, ack="client-individual")
        message = await holds.get(timeout=60)
        event = json.loads(message.body)
        assert event == {
            "id": message["event-id"],
            "type": "hold.expired",
            "occurred_at": event["occurred_at"],
            "data": {"hold_id": hold_id, "event_id": event_id, "user_id": user,
                     "seats": ["S-A-1", "S-A-2"]},
        }  # fmt: skip
        assert message["event-type"] == "hold.expired"
        assert event["id"].startswith("evt_") and event["occurred_at"].endswith("Z")
        assert message.get("redelivered") is None
        await client.ack(message)
        # Once: nothing more comes for this hold, now or to a consumer that comes later.
        with contextlib.suppress(TimeoutError):
            extra = await holds.get(timeout=2)
            raise AssertionError(f"a second message on {HOLDS}: {extra.body!r}")
    async with sdk.connect(node.ws_url, token=consumer) as client:
        holds = await client.subscribe(HOLDS, ack="client-individual")
        with contextlib.suppress(TimeoutError):
            extra = await holds.get(timeout=2)
            raise AssertionError(f"the acknowledged event came again: {extra.body!r}")

    def freed() -> bool:
        seats = rest(node, "GET", f"/api/events/{event_id}/seats")[1]
        state: str = {seat: s for seat, s in seats["seats"]}["S-A-1"]
        return state == "available"

    await asyncio.to_thread(wait_until, freed, 30, "the lapsed seats free again")
