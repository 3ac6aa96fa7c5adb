"""SPEC §7 limits: each one answered with its documented ERROR while other sessions carry on.

Every test starts its own node with the limit turned down (``make_server``), opens a
:class:`Witness` publisher/subscriber pair first, breaks the limit with another session, then
checks the witness still completes a publish/subscribe round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from protocol.client import Error
from tests.conftest import ServerProcess
from tests.server.stomp_clients import (
    Clients,
    RawTcp,
    RawWs,
    Witness,
    encode_frame,
    log_tail,
    metric_sum,
    topic,
    unique,
)


def test_too_many_connections_tcp_and_ws(make_server: Callable[..., ServerProcess]) -> None:
    node = make_server(max_connections=3)
    witness = Witness(node)  # two connections
    third = RawTcp.to(node)
    try:
        assert third.connect(token=node.token(unique("third"))).command == "CONNECTED"

        with RawTcp.to(node) as over_tcp:
            # the server may answer at once, before CONNECT; give it a moment to do so
            try:
                reply = over_tcp.read_frame(timeout=1.0)
            except AssertionError:
                reply = over_tcp.connect(token=node.token(unique("x")))
            assert reply is not None, f"closed without ERROR; {log_tail(node)}"
            assert reply.command == "ERROR", f"connection over the limit accepted: {reply}"
            assert isinstance(reply, Error)
            assert reply.message == "too many connections"
            over_tcp.expect_closed()

        # WebSocket: the handshake completes, then ERROR and close code 1013
        over_ws = RawWs.to(node)
        with over_ws:
            frame = over_ws.read_frame(timeout=5)
            if frame is None or frame.command != "ERROR":
                assert frame is None, f"expected ERROR, got {frame}"
                raise AssertionError(
                    f"closed without ERROR (close code {over_ws.close_code}); {log_tail(node)}"
                )
            assert isinstance(frame, Error)
            assert frame.message == "too many connections"
            over_ws.expect_closed()
            assert over_ws.close_code == 1013

        assert metric_sum(node, "concert_hub_rejected_connections") >= 2
        witness.check()
        assert third.closed is False
        third.send("SUBSCRIBE", {"id": "s", "destination": topic(), "receipt": "ok"})
        assert third.read_until("RECEIPT")["receipt-id"] == "ok"

        # a slot frees up when a session leaves
        third.close()
        deadline = time.monotonic() + 10
        while True:
            with RawTcp.to(node) as again:
                reply = again.connect(token=node.token(unique("again")))
                if reply.command == "CONNECTED":
                    break
                assert isinstance(reply, Error), reply
                assert reply.message == "too many connections"
            assert time.monotonic() < deadline, "the closed session's slot was never released"
            time.sleep(0.2)
    finally:
        third.close()
        witness.close()


def test_send_rate_limit(make_server: Callable[..., ServerProcess]) -> None:
    node = make_server(max_send_rate=10)
    witness = Witness(node)
    try:
        with RawTcp.to(node) as polite:
            assert polite.connect(token=node.token(unique("p"), "publisher")).command == (
                "CONNECTED"
            )
            dest = topic()
            polite.send_raw(
                b"".join(
                    encode_frame("SEND", {"destination": dest, "receipt": f"r{n}"}, "x")
                    for n in range(5)
                )
            )
            for n in range(5):
                assert polite.read_until("RECEIPT")["receipt-id"] == f"r{n}"

        counted = errors_counted(node)
        with RawTcp.to(node) as flooder:
            assert flooder.connect(token=node.token(unique("f"), "publisher")).command == (
                "CONNECTED"
            )
            dest = topic()
            flooder.send_raw(
                b"".join(encode_frame("SEND", {"destination": dest}, "flood") for _ in range(200))
            )
            error = flooder.expect_error(timeout=10)
            assert error.message == "rate limit exceeded"
        assert errors_counted(node) >= counted + 1, "the rate limit ERROR is not in /metrics"
        witness.check()
    finally:
        witness.close()


def test_login_timeout(make_server: Callable[..., ServerProcess]) -> None:
    node = make_server(login_timeout_s=1)
    witness = Witness(node)
    silent_tcp = RawTcp.to(node)
    half_connect = RawTcp.to(node)
    silent_ws = RawWs.to(node)
    try:
        half_connect.send_raw(b"CONNECT\naccept-version:1.2\n")  # never finished
        for peer in (silent_tcp, half_connect, silent_ws):
            error = peer.expect_error(timeout=8)
            assert error.message == "login timeout", (peer.transport, str(error))
        assert errors_counted(node) >= 3, "login timeouts are not counted in /metrics"
        witness.check()
    finally:
        for peer in (silent_tcp, half_connect, silent_ws):
            peer.close()
        witness.close()


def slow_consumer_errors(node: ServerProcess) -> float:
    """concert_hub_errors{reason="slow_consumer"} from /metrics (0 before the first)."""
    return metric_sum(node, "concert_hub_errors", reason="slow_consumer")


def errors_counted(node: ServerProcess) -> float:
    """Every ERROR the node counted in /metrics, whatever the reason."""
    return metric_sum(node, "concert_hub_errors")


def test_slow_consumer_is_cut_off_while_others_get_everything(
    make_server: Callable[..., ServerProcess],
) -> None:
    """A subscriber that stops reading is cut off; the others miss nothing.

    The slow subscriber reads nothing until /metrics shows the cut, then drains what it was sent:
    the backlog, then ERROR ``slow consumer``. (A client that never reads again cannot receive
    the ERROR queued behind its backlog; the server drops it after a grace period.)
    """
    node = make_server(slow_consumer_bytes=65536, max_send_rate=1_000_000)
    dest = topic("flood")
    limit, batch = 12000, 200
    body = "x" * 1000
    opened = Clients(node)
    slow = RawTcp(node.host, node.stomp_port, rcvbuf=4096)
    publisher = RawTcp.to(node)
    try:
        normal_tcp = opened("tcp", user=unique("fast"))
        normal_ws = opened("ws", user=unique("fast"))
        normals = (normal_tcp, normal_ws)
        for client in normals:
            client.subscribe(dest)
        assert slow.connect(token=node.token(unique("slow"))).command == "CONNECTED"
        slow.send("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "r"})
        slow.read_until("RECEIPT")
        # from here on the slow subscriber does not read

        assert publisher.connect(token=node.token(unique("pub"), "publisher")).command == (
            "CONNECTED"
        )
        sent = 0
        while sent < limit and slow_consumer_errors(node) < 1:
            frames = []
            for n in range(sent, sent + batch):
                headers = {"destination": dest, "seq": str(n)}
                if n == sent + batch - 1:
                    headers["receipt"] = f"batch-{n}"
                frames.append(encode_frame("SEND", headers, body))
            publisher.send_raw(b"".join(frames))
            sent += batch
            publisher.read_until("RECEIPT", timeout=20)
            # pace on the normal subscribers so they never become slow consumers themselves
            deadline = time.monotonic() + 30
            while min(c.listener.count("MESSAGE") for c in normals) < sent - batch:
                assert time.monotonic() < deadline, (
                    f"normal subscribers stalled at "
                    f"{[c.listener.count('MESSAGE') for c in normals]} of {sent}"
                    f"\n{log_tail(node)}"
                )
                time.sleep(0.01)
        assert slow_consumer_errors(node) >= 1, (
            f"no slow consumer cut after {sent} messages of 1 KB\n{log_tail(node)}"
        )

        # drain what the slow subscriber was sent before it was cut off
        received = 0
        last = None
        deadline = time.monotonic() + 30
        while True:
            frame = slow.read_frame(timeout=max(deadline - time.monotonic(), 0.1))
            if frame is None:
                break
            last = frame
            if frame.command == "MESSAGE":
                received += 1
        assert received < sent, "the slow consumer was never cut off"
        assert not slow.reset, "the slow consumer's connection was reset, not closed"
        assert last is not None and last.command == "ERROR", (
            f"slow consumer closed without ERROR after {received} messages; last frame {last}"
        )
        assert isinstance(last, Error)
        assert last.message == "slow consumer"

        for client in normals:
            messages = client.listener.messages(sent, timeout=30)
            assert [int(m.headers["seq"]) for m in messages] == list(range(sent)), (
                f"{client.transport} subscriber missed or reordered messages"
            )
            assert not client.listener.pending("ERROR")
            assert not client.listener.disconnected

        # the publisher was never disturbed either
        publisher.send("SEND", {"destination": dest, "receipt": "after"}, "after")
        publisher.read_until("RECEIPT")
        normal_tcp.listener.message(body="after")
    finally:
        slow.close()
        publisher.close()
        opened.close_all()


def test_max_subscriptions(make_server: Callable[..., ServerProcess]) -> None:
    node = make_server(max_subscriptions=3)
    witness = Witness(node)
    try:
        with RawTcp.to(node) as peer:
            assert peer.connect(token=node.token(unique("u"))).command == "CONNECTED"
            for n in range(3):
                peer.send("SUBSCRIBE", {"id": f"s{n}", "destination": topic(), "receipt": f"{n}"})
                peer.read_until("RECEIPT")
            peer.send("SUBSCRIBE", {"id": "s3", "destination": topic(), "receipt": "over"})
            error = peer.expect_error()
            assert error.message == "too many subscriptions"
            assert error["receipt-id"] == "over"
        assert errors_counted(node) >= 1
        witness.check()
    finally:
        witness.close()


def test_max_unacked(make_server: Callable[..., ServerProcess]) -> None:
    node = make_server(max_unacked=3)
    witness = Witness(node)
    opened = Clients(node)
    try:
        dest = topic()
        hoarder = opened("tcp", user=unique("hoarder"))
        acker = opened("ws", user=unique("acker"))
        hoarder.subscribe(dest, "h", ack="client-individual")
        acker.subscribe(dest, "a", ack="client-individual")
        publisher = opened("tcp", user=unique("pub"), role="publisher")
        for n in range(6):
            publisher.send(dest, f"m{n}")
            message = acker.listener.message(body=f"m{n}")
            acker.conn.ack(message.headers["ack"], receipt=f"ack{n}")
            acker.listener.receipt(f"ack{n}")
        error = hoarder.listener.error()
        assert error.headers["message"] == "too many unacknowledged messages"
        assert hoarder.listener.count("MESSAGE") <= 3
        assert not acker.listener.pending("ERROR")
        witness.check()
    finally:
        opened.close_all()
        witness.close()


def test_frame_and_header_limit_flags(make_server: Callable[..., ServerProcess]) -> None:
    node = make_server(max_frame_bytes=2048, max_headers=8, max_header_bytes=512)
    witness = Witness(node)
    token = node.token(unique("pub"), "publisher")
    try:
        with RawTcp.to(node) as ok:
            assert ok.connect(token=token).command == "CONNECTED"
            headers = {"destination": topic(), "receipt": "fits"}
            headers |= {f"x-{n}": "v" for n in range(5)}
            ok.send("SEND", headers, "y" * 1500)
            assert ok.read_until("RECEIPT")["receipt-id"] == "fits"
        cases = [
            ({"destination": topic()}, "y" * 3000, "frame too large"),
            ({"destination": topic()} | {f"x-{n}": "v" for n in range(12)}, "", "too many headers"),
            ({"destination": topic(), "x-big": "z" * 600}, "", "header section too large"),
        ]
        for headers, body, expected in cases:
            with RawTcp.to(node) as peer:
                assert peer.connect(token=token).command == "CONNECTED"
                peer.send("SEND", headers | {"receipt": "r"}, body)
                error = peer.expect_error()
                assert error.message == expected
                assert error.get("receipt-id") in ("r", None)
        witness.check()
    finally:
        witness.close()
