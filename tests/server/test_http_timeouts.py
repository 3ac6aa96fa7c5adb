"""Idle and slow HTTP connections are timed out (issue 14, item 4).

A socket that sends nothing, dribbles its request head a byte at a time, or stalls in the
middle of a WebSocket handshake is closed after ``--http-idle-timeout-s``; when such sockets
exhaust the node's file descriptors, the node refuses new connections for a while but keeps
answering health checks on the connections it has, and recovers once they are cut.
"""

from __future__ import annotations

import http.client
import resource
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import ServerProcess
from tests.server.stomp_clients import RawWs


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes ``sock`` within ``timeout`` (reading and dropping bytes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def test_silent_and_slow_http_connections_are_closed(
    make_server: Callable[..., ServerProcess],
) -> None:
    node = make_server(http_idle_timeout_s=2)
    silent = socket.create_connection((node.host, node.http_port))
    handshake = socket.create_connection((node.host, node.http_port))
    slow = socket.create_connection((node.host, node.http_port))
    try:
        # a WebSocket handshake that stops before the end of its head
        handshake.sendall(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        )
        # a slowloris: one byte of a never-ending head every 0.25 s
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 400
        started = time.monotonic()
        cut = False
        for byte in head:
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                cut = True
                break
            if closed_by_server(slow, 0.25):
                cut = True
                break
        assert cut, f"a slowloris kept its connection for {time.monotonic() - started:.0f} s"
        assert closed_by_server(silent, 10), "a connection that sends nothing was kept"
        assert closed_by_server(handshake, 10), "a stalled WebSocket handshake was kept"
        # a client that talks gets its answer
        probe = http.client.HTTPConnection(node.host, node.http_port, timeout=5)
        probe.request("GET", "/healthz")
        assert probe.getresponse().status == 200
        probe.close()
    finally:
        for sock in (silent, handshake, slow):
            sock.close()


def get(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status


def fresh_get(node: ServerProcess, path: str, timeout: float = 2.0) -> int | None:
    conn = http.client.HTTPConnection(node.host, node.http_port, timeout=timeout)
    try:
        return get(conn, path)
    except OSError:
        return None
    finally:
        conn.close()


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs prlimit (Linux)")
def test_out_of_descriptors_the_node_refuses_new_connections_not_health_checks(
    make_server: Callable[..., ServerProcess],
) -> None:
    # 5 s: the probe's keep-alive connection waits at most ~2 s between its requests
    node = make_server(http_idle_timeout_s=5)
    assert node.proc is not None
    probe = http.client.HTTPConnection(node.host, node.http_port, timeout=5)
    assert get(probe, "/healthz") == 200
    # The node may open few more files: idle sockets take what is left.
    used = len(list(Path(f"/proc/{node.proc.pid}/fd").iterdir()))
    resource.prlimit(node.proc.pid, resource.RLIMIT_NOFILE, (used + 16, used + 16))
    idle: list[socket.socket] = []
    try:
        for _ in range(64):
            idle.append(socket.create_connection((node.host, node.http_port)))
        # Every descriptor is taken: a new connection is not served ...
        assert fresh_get(node, "/healthz", timeout=1.0) is None
        # ... but health checks on a connection the node has keep answering, and once the
        # idle sockets are cut, new connections are served again.
        deadline = time.monotonic() + 120
        while True:
            assert get(probe, "/healthz") == 200
            if fresh_get(node, "/healthz", timeout=1.0) == 200:
                break
            assert time.monotonic() < deadline, "the node never served a new connection again"
        for sock in idle:
            assert closed_by_server(sock, 30), "an idle connection was never closed"
    finally:
        probe.close()
        for sock in idle:
            sock.close()


def test_websocket_sessions_outlive_the_http_idle_timeout(
    make_server: Callable[..., ServerProcess],
) -> None:
    """The timeout is for request heads: an upgraded /ws connection is a STOMP session, timed
    by heart-beats and --idle-timeout-s, not by --http-idle-timeout-s."""
    node = make_server(http_idle_timeout_s=1)
    peer = RawWs.to(node)
    try:
        assert peer.connect(heart_beat="0,0").command == "CONNECTED"
        peer.send("SUBSCRIBE", {"id": "s", "destination": "/topic/announcements"})
        time.sleep(3)  # three timeouts' worth of silence on the upgraded connection
        peer.send("UNSUBSCRIBE", {"id": "s", "receipt": "still-here"})
        assert peer.read_until("RECEIPT")["receipt-id"] == "still-here"
    finally:
        peer.close()


def test_a_body_that_does_not_arrive_gets_408_and_the_connection_is_closed(
    make_server: Callable[..., ServerProcess],
) -> None:
    node = make_server(http_idle_timeout_s=2)
    slow = socket.create_connection((node.host, node.http_port))
    try:
        # a head that promises 200 bytes, then one byte of body every 0.25 s
        slow.sendall(
            b"POST /api/auth/email/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\n\r\n{"
        )
        started = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer and time.monotonic() - started < 15:
            try:
                slow.sendall(b" ")
            except OSError:
                break
            slow.settimeout(0.25)
            try:
                chunk = slow.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"application/problem+json" in answer
        assert closed_by_server(slow, 5), "the connection of a body that never came was kept"
        assert time.monotonic() - started < 10
        # others are served meanwhile and after
        probe = http.client.HTTPConnection(node.host, node.http_port, timeout=5)
        assert get(probe, "/healthz") == 200
        probe.close()
    finally:
        slow.close()


def test_a_client_gone_in_the_middle_of_its_body_is_not_a_server_error(
    make_server: Callable[..., ServerProcess],
) -> None:
    node = make_server()
    gone = socket.create_connection((node.host, node.http_port))
    gone.sendall(
        b"POST /api/auth/email/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200\r\n\r\n{"
    )
    time.sleep(0.3)  # the handler is waiting for the rest
    gone.close()
    deadline = time.monotonic() + 10
    metrics = ""
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(node.host, node.http_port, timeout=5)
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read().decode()
        conn.close()
        if 'route="/api/auth/email/token",status_class="4xx"' in metrics:
            break
        time.sleep(0.2)
    assert 'route="/api/auth/email/token",status_class="4xx"' in metrics
    assert 'route="/api/auth/email/token",status_class="5xx"' not in metrics
    assert "internal error" not in node.log_path.read_text()
