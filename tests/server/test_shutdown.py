"""SIGTERM (issue 14, item 11): ``/readyz`` turns 503 at once and the HTTP listener stops
accepting with the STOMP/TCP one, while the node drains its STOMP sessions."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from tests.server.stomp_clients import RawTcp, log_tail, unique


def test_sigterm_turns_readyz_503_and_stops_the_http_listener_at_once(make_server) -> None:
    node = make_server()
    assert node.proc is not None
    # A balancer's kept-alive connection, ready before the signal.
    balancer = http.client.HTTPConnection(node.host, node.http_port, timeout=5)
    balancer.request("GET", "/readyz")
    ready = balancer.getresponse()
    assert (ready.status, json.loads(ready.read())["status"]) == (200, "ready")
    # Two sessions hold the drain open: one reads its ERROR, the other reads nothing and
    # never closes, so the node drains for its full grace period.
    reader = RawTcp.to(node)
    deaf = RawTcp.to(node)
    try:
        assert reader.connect(token=node.token(unique("r"))).command == "CONNECTED"
        assert deaf.connect(token=node.token(unique("d"))).command == "CONNECTED"
        node.proc.terminate()  # SIGTERM
        # The sessions are being told: the node is draining.
        assert reader.read_until("ERROR").message == "server shutting down"

        # The connection the balancer has gets a 503 from /readyz ...
        balancer.request("GET", "/readyz")
        answer = balancer.getresponse()
        body = json.loads(answer.read())
        assert answer.status == 503, body
        assert body["failed"].get("node") == "stopping", body
        # ... while both listeners refuse new connections.
        for port in (node.http_port, node.stomp_port):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((node.host, port), timeout=2).close()

        assert node.proc.wait(15) == 0, log_tail(node)
    finally:
        balancer.close()
        reader.close()
        deaf.close()
