"""SPEC §1 operator surface: /healthz, /readyz, /metrics and SIGTERM."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerProcess
from tests.server.stomp_clients import (
    Clients,
    RawTcp,
    RawWs,
    http_get,
    log_tail,
    topic,
    unique,
)


def metrics(server: ServerProcess) -> dict[str, list[Any]]:
    """Family name → samples, from the server's Prometheus text."""
    status, content_type, body = http_get(f"{server.http_url}/metrics")
    assert status == 200, body
    assert content_type.startswith("text/plain"), content_type
    return {family.name: family.samples for family in text_string_to_metric_families(body)}


def test_healthz(server: ServerProcess) -> None:
    status, _, _ = http_get(f"{server.http_url}/healthz")
    assert status == 200


def test_readyz_is_ready_with_the_database_answering(server: ServerProcess) -> None:
    status, content_type, body = http_get(f"{server.http_url}/readyz")
    assert status == 200, body
    if "json" in content_type:
        data = json.loads(body)
        # a 503 names what failed; a 200 must name nothing as failed (the database answers)
        assert not data.get("failed"), data
        assert "database" not in json.dumps(data.get("failed", {})), data


def test_metrics_count_connections_frames_deliveries_and_errors(server: ServerProcess) -> None:
    opened = Clients(server)
    try:
        dest = topic()
        sub = opened("tcp", user=unique("m-sub"))
        pub = opened("ws", user=unique("m-pub"), role="publisher")
        sub.subscribe(dest)
        pub.send(dest, "counted")
        sub.listener.message(body="counted")
        offender = opened("tcp", user=unique("m-bad"))
        offender.conn.send("/queue/forbidden", "x")
        assert offender.listener.error().headers["message"] == "forbidden destination"
        offender.listener.wait_disconnected()

        found = metrics(server)
        # names as defined in server/metrics.py (counter families lose their _total suffix)
        connections = found["concert_hub_connections"]
        assert connections[0].value >= 2, connections

        sends = [s for s in found["concert_hub_frames_in"] if s.labels.get("command") == "SEND"]
        assert sends and sends[0].value >= 1, found["concert_hub_frames_in"]
        subscribes = [
            s for s in found["concert_hub_frames_in"] if s.labels.get("command") == "SUBSCRIBE"
        ]
        assert subscribes and subscribes[0].value >= 1

        deliveries = found["concert_hub_deliveries"]
        assert deliveries[0].value >= 1, deliveries

        errors = {s.labels["reason"]: s.value for s in found["concert_hub_errors"]}
        assert errors.get("forbidden", 0) >= 1, errors
    finally:
        opened.close_all()


def test_sigterm_tells_every_session_and_exits_zero(
    make_server: Callable[..., ServerProcess],
) -> None:
    node = make_server()
    opened = Clients(node)
    raw_ws = RawWs.to(node)
    raw_tcp = RawTcp.to(node)
    try:
        tcp = opened("tcp", user=unique("t"))
        ws = opened("ws", user=unique("w"))
        tcp.subscribe(topic())
        assert raw_ws.connect(token=node.token(unique("rw"))).command == "CONNECTED"
        assert raw_tcp.connect().command == "CONNECTED"

        started = time.monotonic()
        code = node.stop(timeout=15)
        elapsed = time.monotonic() - started
        assert code == 0, f"exit status {code}\n{log_tail(node)}"
        assert elapsed < 10.5, f"took {elapsed:.1f}s to exit after SIGTERM"

        for client in (tcp, ws):
            error = client.listener.error(timeout=2)
            assert error.headers["message"] == "server shutting down", client.transport
            client.listener.wait_disconnected(2)
        for peer in (raw_tcp, raw_ws):
            error = peer.expect_error(timeout=2)
            assert error.message == "server shutting down", peer.transport
        assert raw_ws.close_code == 1001, f"WebSocket close code {raw_ws.close_code}"
        assert "Traceback" not in node.log(), log_tail(node, 80)
    finally:
        raw_ws.close()
        raw_tcp.close()
        opened.close_all()


def test_sigterm_exits_in_time_even_with_peers_that_do_not_react(
    make_server: Callable[..., ServerProcess],
) -> None:
    """Sessions that neither read nor close must not hold the exit past 10 s."""
    node = make_server()
    deaf_tcp = RawTcp.to(node)
    deaf_ws = RawWs.to(node)
    never_connected = RawTcp.to(node)  # TCP only, no CONNECT yet
    try:
        assert deaf_tcp.connect(token=node.token(unique("deaf"))).command == "CONNECTED"
        assert deaf_ws.connect(token=node.token(unique("deaf"))).command == "CONNECTED"
        # from here on none of them reads, answers a close handshake or closes

        started = time.monotonic()
        code = node.stop(timeout=15)
        elapsed = time.monotonic() - started
        assert code == 0, f"exit status {code}\n{log_tail(node)}"
        assert elapsed < 10.5, f"took {elapsed:.1f}s to exit after SIGTERM\n{log_tail(node)}"

        # what the server sent before exiting is still there to read
        for peer in (deaf_tcp, deaf_ws, never_connected):
            error = peer.expect_error(timeout=2)
            assert error.message == "server shutting down", peer.transport
    finally:
        for peer in (deaf_tcp, deaf_ws, never_connected):
            peer.close()
