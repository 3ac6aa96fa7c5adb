"""SPEC §3 through real clients.

Every test taking the ``transport`` fixture runs twice: with stomp.py over raw TCP
(``stomp.Connection12``, and 1.0/1.1 where named) and with stomp.py over WebSocket
(``stomp.WSConnection``, STOMP 1.2). Tests that need bytes stomp.py cannot produce (CR-LF, missing
or unsupported ``accept-version``, silence) use the raw TCP peer; WebSocket-only framing lives in
``test_stomp_ws.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.server.stomp_clients import (
    Client,
    Clients,
    RawTcp,
    encode_frame,
    log_tail,
    topic,
    unique,
)


def pubsub(
    clients: Clients, transport: str, sub_transport: str | None = None
) -> tuple[Client, Client]:
    """A publisher and an authenticated subscriber (both ``transport`` unless told)."""
    pub = clients(transport, user=unique("pub"), role="publisher")
    sub = clients(sub_transport or transport, user=unique("sub"))
    return pub, sub


# -- CONNECT / CONNECTED ----------------------------------------------------------------------


def test_connected_frame_headers(clients: Clients, transport: str) -> None:
    user = unique("alice")
    client = clients(transport, user=user)
    headers = client.reply.headers
    assert headers["version"] == "1.2"
    beat = headers["heart-beat"].split(",")
    assert len(beat) == 2 and all(part.strip().isdigit() for part in beat), headers
    assert headers["session"]
    assert headers["server"].startswith("concert-hub/") and len(headers["server"]) > 12
    assert headers["user-name"] == user

    anonymous = clients(transport)
    assert "user-name" not in anonymous.reply.headers
    assert anonymous.reply.headers["session"] != headers["session"]


@pytest.mark.parametrize("command", ["CONNECT", "STOMP"])
def test_connect_and_stomp_commands_both_work(
    clients: Clients, transport: str, command: str
) -> None:
    client = clients(transport, user=unique("u"), with_connect_command=(command == "CONNECT"))
    assert client.reply.headers["version"] == "1.2"


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_stomp_py_versions_negotiate_and_exchange_messages(clients: Clients, version: str) -> None:
    dest = topic()
    sub = clients("tcp", user=unique("sub"), version=version)
    assert sub.reply.headers["version"] == version
    pub = clients("tcp", user=unique("pub"), role="publisher", version=version)
    assert pub.reply.headers["version"] == version
    sub_id = sub.subscribe(dest, "s-" + version.replace(".", ""))
    pub.send(dest, f"hello {version}", headers={"x-version": version})
    message = sub.listener.message(body=f"hello {version}")
    assert message.headers["destination"] == dest
    assert message.headers["subscription"] == sub_id
    assert message.headers["message-id"]
    assert message.headers["x-version"] == version


@pytest.mark.parametrize(
    ("accept_version", "expected"),
    [
        (None, "1.0"),
        ("1.0", "1.0"),
        ("1.1", "1.1"),
        ("1.0,1.1", "1.1"),
        ("1.1,1.2", "1.2"),
        ("1.2,1.1,1.0", "1.2"),
        ("1.2,2.0", "1.2"),
    ],
)
def test_version_negotiation_raw(
    server: ServerProcess, accept_version: str | None, expected: str
) -> None:
    with RawTcp.to(server) as peer:
        reply = peer.connect(accept_version=accept_version)
        assert reply.command == "CONNECTED", str(reply)
        assert reply["version"] == expected
        assert reply["server"].startswith("concert-hub/")
        assert reply["session"]


@pytest.mark.parametrize("accept_version", ["2.0", "0.9,3.0", "1.3"])
def test_no_common_version_is_an_error_with_the_supported_list(
    server: ServerProcess, accept_version: str
) -> None:
    with RawTcp.to(server) as peer:
        peer.send_raw(encode_frame("CONNECT", {"accept-version": accept_version, "host": "x"}))
        error = peer.expect_error()
        assert error.message == "unsupported protocol version"
        assert error["version"] == "1.0,1.1,1.2"


# -- messages ----------------------------------------------------------------------------------


def test_publish_subscribe_round_trip(clients: Clients, transport: str) -> None:
    dest = topic()
    pub, sub = pubsub(clients, transport)
    sub_id = sub.subscribe(dest, "s-1")
    body = '{"n": 1, "text": "caf\u00e9"}'
    pub.send(dest, body, content_type="application/json", headers={"x-custom": "hello"})
    message = sub.listener.message(body=body)
    headers = message.headers
    assert headers["destination"] == dest
    assert headers["subscription"] == sub_id
    assert headers["message-id"]
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(body.encode()))
    assert headers["x-custom"] == "hello"
    assert "ack" not in headers, "auto-ack MESSAGE must not carry an ack header"
    assert "receipt" not in headers, "the publisher's receipt header leaked to subscribers"

    pub.send(dest, "second")
    second = sub.listener.message(body="second")
    assert second.headers["message-id"] != headers["message-id"]


def test_every_subscriber_and_every_subscription_gets_a_copy(
    clients: Clients, transport: str
) -> None:
    dest = topic()
    pub = clients(transport, user=unique("pub"), role="publisher")
    tcp_sub = clients("tcp", user=unique("sub"))
    ws_sub = clients("ws", user=unique("sub"))
    tcp_sub.subscribe(dest, "a")
    tcp_sub.subscribe(dest, "b")
    ws_sub.subscribe(dest, "c")
    pub.send(dest, "fan-out")
    got = sorted(m.headers["subscription"] for m in tcp_sub.listener.messages(2))
    assert got == ["a", "b"]
    assert ws_sub.listener.message(body="fan-out").headers["subscription"] == "c"


def test_unsubscribe_stops_delivery(clients: Clients, transport: str) -> None:
    dest = topic()
    pub, sub = pubsub(clients, transport)
    sub.subscribe(dest, "gone")
    sub.subscribe(dest, "kept")
    sub.conn.unsubscribe("gone", receipt="u-1")
    sub.listener.receipt("u-1")
    pub.send(dest, "after unsubscribe")
    message = sub.listener.message(body="after unsubscribe")
    assert message.headers["subscription"] == "kept"
    assert sub.listener.quiet("MESSAGE", 0.5) == []
    # unsubscribing an unknown id is a no-op that still answers the receipt
    sub.conn.unsubscribe("never-subscribed", receipt="u-2")
    sub.listener.receipt("u-2")
    assert not sub.listener.pending("ERROR")


def test_header_escaping_round_trip_across_versions(clients: Clients, transport: str) -> None:
    """A 1.2 publisher's header holding ':' '\\n' '\\' reaches 1.1 and 1.2 subscribers intact."""
    dest = topic()
    subscribers = [
        clients("tcp", user=unique("s11"), version="1.1"),
        clients("tcp", user=unique("s12"), version="1.2"),
        clients("ws", user=unique("sws")),
    ]
    for sub in subscribers:
        sub.subscribe(dest)
    value = "key:value\nsecond line \\ back:slash"
    pub = clients(transport, user=unique("pub"), role="publisher")
    pub.send(dest, "escaped", headers={"x-tricky": value, "x-plain": "plain"})
    for sub in subscribers:
        message = sub.listener.message(body="escaped")
        assert message.headers["x-tricky"] == value, (sub.version, sub.transport)
        assert message.headers["x-plain"] == "plain"
        assert message.headers["destination"] == dest


def test_header_escaping_on_the_wire_for_1_1_and_1_2(server: ServerProcess) -> None:
    """What the raw bytes of MESSAGE look like for a 1.1 and a 1.2 subscriber."""
    dest = topic()
    peers = {v: RawTcp.to(server) for v in ("1.1", "1.2")}
    publisher = RawTcp.to(server)
    try:
        for version, peer in peers.items():
            token = server.token(unique("raw"), "user")
            assert peer.connect(token=token, accept_version=version)["version"] == version
            peer.send("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "r"})
            peer.read_until("RECEIPT")
        assert publisher.connect(token=server.token(unique("p"), "publisher")).command == (
            "CONNECTED"
        )
        publisher.send(
            "SEND",
            {"destination": dest, "x-tricky": "a:b\nc\\d", "x-cr": "r\rr", "receipt": "s"},
            "x",
        )
        publisher.read_until("RECEIPT")
        raw11 = peers["1.1"].read_until("MESSAGE")
        raw12 = peers["1.2"].read_until("MESSAGE")
        assert b"\nx-tricky:a\\cb\\nc\\\\d\n" in raw11.raw
        assert b"\nx-tricky:a\\cb\\nc\\\\d\n" in raw12.raw
        assert b"\nx-cr:r\\rr\n" in raw12.raw
        assert raw12["x-cr"] == "r\rr"
        assert raw11["x-tricky"] == raw12["x-tricky"] == "a:b\nc\\d"
    finally:
        publisher.close()
        for peer in peers.values():
            peer.close()


def test_content_length_carries_nul_bytes(clients: Clients, transport: str) -> None:
    dest = topic()
    pub, sub = pubsub(clients, transport)
    sub.subscribe(dest)
    body = "head\x00middle\x00\x00tail \u00e9\u00e8"
    pub.send(dest, body, content_type="text/plain;charset=utf-8")
    message = sub.listener.message()
    assert message.body == body
    assert message.headers["content-length"] == str(len(body.encode()))


def test_binary_body_with_nul_survives_exactly(server: ServerProcess) -> None:
    dest = topic()
    body = bytes([0, 1, 2, 0, 255, 254, 0, 10, 13, 0]) * 50
    with RawTcp.to(server) as sub, RawTcp.to(server) as pub:
        assert sub.connect(token=server.token(unique("s"))).command == "CONNECTED"
        sub.send("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "r"})
        sub.read_until("RECEIPT")
        assert pub.connect(token=server.token(unique("p"), "publisher")).command == "CONNECTED"
        pub.send(
            "SEND",
            {"destination": dest, "content-type": "application/octet-stream", "receipt": "s1"},
            body,
        )
        pub.read_until("RECEIPT")
        message = sub.read_until("MESSAGE")
        assert message.body == body
        assert message["content-length"] == str(len(body))
        assert message["content-type"] == "application/octet-stream"


def test_cr_lf_line_ends(server: ServerProcess) -> None:
    dest = topic()
    crlf = b"\r\n"
    with RawTcp.to(server) as sub, RawTcp.to(server) as pub:
        reply = sub.connect(token=server.token(unique("s")), eol=crlf)
        assert reply.command == "CONNECTED", str(reply)
        sub.send("SUBSCRIBE", {"id": "s", "destination": dest, "receipt": "r1"}, eol=crlf)
        assert sub.read_until("RECEIPT")["receipt-id"] == "r1"
        assert pub.connect(token=server.token(unique("p"), "publisher"), eol=crlf).command == (
            "CONNECTED"
        )
        pub.send_raw(b"\r\n\r\n")  # heart-beats as CR-LF between frames
        pub.send(
            "SEND", {"destination": dest, "x-h": "value", "receipt": "r2"}, "crlf body", eol=crlf
        )
        assert pub.read_until("RECEIPT")["receipt-id"] == "r2"
        message = sub.read_until("MESSAGE")
        assert message["x-h"] == "value"
        assert message["destination"] == dest
        assert message.body == b"crlf body"


# -- receipts -----------------------------------------------------------------------------------


def test_receipt_for_every_client_frame(clients: Clients, transport: str) -> None:
    dest = topic()
    pub, sub = pubsub(clients, transport)
    conn = pub.conn
    sub.conn.subscribe(dest, "s", receipt="subscribe-1")
    sub.listener.receipt("subscribe-1")
    conn.send(dest, "x", receipt="send-1")
    pub.listener.receipt("send-1")
    # the SUBSCRIBE took effect before its RECEIPT: the SEND after it was delivered
    sub.listener.message(body="x")
    conn.begin("tx-r", receipt="begin-1")
    pub.listener.receipt("begin-1")
    conn.commit("tx-r", receipt="commit-1")
    pub.listener.receipt("commit-1")
    conn.begin("tx-a", receipt="begin-2")
    pub.listener.receipt("begin-2")
    conn.abort("tx-a", receipt="abort-1")
    pub.listener.receipt("abort-1")
    sub.conn.unsubscribe("s", receipt="unsubscribe-1")
    sub.listener.receipt("unsubscribe-1")
    conn.send_frame("DISCONNECT", {"receipt": "disconnect-1"})
    pub.listener.receipt("disconnect-1")
    pub.listener.wait_disconnected()
    assert not pub.listener.pending("ERROR")


def test_error_has_message_and_receipt_id_then_closes(clients: Clients, transport: str) -> None:
    client = clients(transport, user=unique("u"))
    client.conn.send("/queue/not-allowed", "x", receipt="bad-1")
    error = client.listener.error()
    assert error.headers["message"] == "forbidden destination"
    assert error.headers["receipt-id"] == "bad-1"
    assert "Traceback" not in str(error.body)
    client.listener.wait_disconnected()
    assert not client.listener.pending("RECEIPT")


# -- acknowledgements ---------------------------------------------------------------------------


def _three_messages(clients: Clients, transport: str, ack: str) -> tuple[Client, Client, list[Any]]:
    dest = topic()
    pub, sub = pubsub(clients, transport)
    sub.subscribe(dest, "acked", ack=ack)
    for n in (1, 2, 3):
        pub.send(dest, f"m{n}")
    messages = sub.listener.messages(3)
    assert [m.body for m in messages] == ["m1", "m2", "m3"]
    return pub, sub, messages


def test_client_individual_ack_and_nack(clients: Clients, transport: str) -> None:
    _, sub, messages = _three_messages(clients, transport, "client-individual")
    ack_ids = [m.headers["ack"] for m in messages]
    assert len(set(ack_ids)) == 3
    for m in messages:
        assert m.headers["subscription"] == "acked"
    sub.conn.ack(ack_ids[2], receipt="ack-3")
    sub.listener.receipt("ack-3")
    # individual: acknowledging m3 left m1 unacknowledged, so it can still be ACKed
    sub.conn.ack(ack_ids[0], receipt="ack-1")
    sub.listener.receipt("ack-1")
    sub.conn.nack(ack_ids[1], receipt="nack-2")
    sub.listener.receipt("nack-2")
    # NACK on a topic discards: nothing is redelivered
    assert sub.listener.quiet("MESSAGE", 0.5) == []
    # everything is settled now: ACK of m1 again is an unknown id
    sub.conn.ack(ack_ids[0], receipt="ack-again")
    error = sub.listener.error()
    assert error.headers["message"] == "unknown ack id"
    assert error.headers["receipt-id"] == "ack-again"
    sub.listener.wait_disconnected()


def test_client_ack_is_cumulative(clients: Clients, transport: str) -> None:
    _, sub, messages = _three_messages(clients, transport, "client")
    ack_ids = [m.headers["ack"] for m in messages]
    sub.conn.ack(ack_ids[1], receipt="ack-2")  # settles m1 and m2
    sub.listener.receipt("ack-2")
    sub.conn.ack(ack_ids[2], receipt="ack-3")
    sub.listener.receipt("ack-3")
    sub.conn.ack(ack_ids[0], receipt="ack-1")  # m1 was settled by the cumulative ACK of m2
    error = sub.listener.error()
    assert error.headers["message"] == "unknown ack id"
    assert error.headers["receipt-id"] == "ack-1"


def test_nack_of_unknown_id_is_an_error(clients: Clients, transport: str) -> None:
    _, sub, _ = _three_messages(clients, transport, "client-individual")
    sub.conn.nack("no-such-ack-id", receipt="nack-x")
    error = sub.listener.error()
    assert error.headers["message"] == "unknown ack id"
    assert error.headers["receipt-id"] == "nack-x"


def test_ack_in_auto_mode_is_an_unknown_id(clients: Clients, transport: str) -> None:
    _, sub, messages = _three_messages(clients, transport, "auto")
    assert all("ack" not in m.headers for m in messages)
    sub.conn.ack(messages[0].headers["message-id"], receipt="auto-ack")
    error = sub.listener.error()
    assert error.headers["message"] == "unknown ack id"


def test_ack_with_stomp_1_1_message_id_and_subscription(clients: Clients) -> None:
    dest = topic()
    pub = clients("tcp", user=unique("pub"), role="publisher")
    sub = clients("tcp", user=unique("sub"), version="1.1")
    sub.subscribe(dest, "s11", ack="client-individual")
    pub.send(dest, "one")
    pub.send(dest, "two")
    one, two = sub.listener.messages(2)
    sub.conn.ack(two.headers["message-id"], "s11", receipt="a2")
    sub.listener.receipt("a2")
    sub.conn.nack(one.headers["message-id"], "s11", receipt="n1")
    sub.listener.receipt("n1")
    sub.conn.ack(two.headers["message-id"], "s11", receipt="a2-again")
    error = sub.listener.error()
    assert error.headers["message"] == "unknown ack id"
    assert error.headers["receipt-id"] == "a2-again"


# -- transactions -------------------------------------------------------------------------------


def test_send_in_transaction_is_delivered_at_commit(clients: Clients, transport: str) -> None:
    dest = topic()
    pub, sub = pubsub(clients, transport)
    sub.subscribe(dest)
    pub.conn.begin("tx-1", receipt="b")
    pub.listener.receipt("b")
    pub.conn.send(dest, "tx-a", transaction="tx-1", receipt="sa")
    pub.conn.send(dest, "tx-b", transaction="tx-1", receipt="sb")
    assert sub.listener.quiet("MESSAGE", 0.7) == [], "a transactional SEND leaked before COMMIT"
    # A SEND's receipt means it took effect, which is at COMMIT (as RabbitMQ does).
    assert pub.listener.pending("RECEIPT") == [], "a transactional SEND's receipt came early"
    pub.conn.commit("tx-1", receipt="c")
    pub.listener.receipt("sa")
    pub.listener.receipt("sb")
    pub.listener.receipt("c")
    assert [m.body for m in sub.listener.messages(2)] == ["tx-a", "tx-b"]


def test_abort_drops_transactional_sends(clients: Clients, transport: str) -> None:
    dest = topic()
    pub, sub = pubsub(clients, transport)
    sub.subscribe(dest)
    pub.conn.begin("tx-2", receipt="b")
    pub.listener.receipt("b")
    pub.conn.send(dest, "dropped", transaction="tx-2", receipt="s")
    pub.conn.abort("tx-2", receipt="a")
    pub.listener.receipt("a")
    pub.send(dest, "marker")
    assert sub.listener.message().body == "marker"
    assert sub.listener.quiet("MESSAGE", 0.5) == []


def test_disconnect_aborts_open_transactions(clients: Clients, transport: str) -> None:
    dest = topic()
    pub, sub = pubsub(clients, transport)
    other = clients(transport, user=unique("pub2"), role="publisher")
    sub.subscribe(dest)
    pub.conn.begin("tx-3", receipt="b")
    pub.listener.receipt("b")
    pub.conn.send(dest, "never", transaction="tx-3", receipt="s")
    pub.conn.send_frame("DISCONNECT", {"receipt": "bye"})
    pub.listener.receipt("bye")
    pub.listener.wait_disconnected()
    other.send(dest, "marker")
    assert sub.listener.message().body == "marker"
    assert sub.listener.quiet("MESSAGE", 0.5) == []


def test_ack_in_aborted_transaction_is_dropped(clients: Clients, transport: str) -> None:
    """ABORT drops the ACK, so the message is still unacknowledged and can be ACKed again."""
    _, sub, messages = _three_messages(clients, transport, "client-individual")
    ack_id = messages[0].headers["ack"]
    sub.conn.begin("tx-ack", receipt="b")
    sub.listener.receipt("b")
    sub.conn.ack(ack_id, transaction="tx-ack", receipt="a-in-tx")
    sub.conn.abort("tx-ack", receipt="abort")
    sub.listener.receipt("abort")
    assert not sub.listener.pending("RECEIPT"), "an aborted ACK got its receipt"
    sub.conn.ack(ack_id, receipt="a-after-abort")
    sub.listener.receipt("a-after-abort")
    assert not sub.listener.pending("ERROR")


def test_ack_in_committed_transaction_takes_effect(clients: Clients, transport: str) -> None:
    _, sub, messages = _three_messages(clients, transport, "client-individual")
    ack_id = messages[0].headers["ack"]
    sub.conn.begin("tx-ack2", receipt="b")
    sub.listener.receipt("b")
    sub.conn.ack(ack_id, transaction="tx-ack2", receipt="a-in-tx")
    sub.conn.commit("tx-ack2", receipt="commit")
    sub.listener.receipt("a-in-tx")
    sub.listener.receipt("commit")
    sub.conn.ack(ack_id, receipt="a-again")
    error = sub.listener.error()
    assert error.headers["message"] == "unknown ack id"


# -- heart-beats --------------------------------------------------------------------------------


def test_server_heartbeats_arrive_and_client_beats_keep_the_session(
    make_server: Callable[..., ServerProcess], transport: str
) -> None:
    node = make_server(heartbeat_ms="500,500")
    opened = Clients(node)
    try:
        client = opened(transport, user=unique("hb"), heartbeats=(500, 500))
        assert client.reply.headers["heart-beat"].replace(" ", "") == "500,500"
        dest = topic()
        client.subscribe(dest)
        time.sleep(3.0)  # six server beats due; client beats every 500 ms meanwhile
        beats = len(client.listener.heartbeats)
        assert beats >= 4, f"only {beats} server heart-beats in 3 s at 500 ms"
        assert not client.listener.disconnected, log_tail(node)
        assert not client.listener.pending("ERROR")
        pub = opened(transport, user=unique("p"), role="publisher")
        pub.send(dest, "still here")
        client.listener.message(body="still here")
    finally:
        opened.close_all()


def test_the_server_beats_within_half_an_interval_of_silence(
    make_server: Callable[..., ServerProcess],
) -> None:
    """The README's promise: a beat when the server has sent nothing for half the negotiated
    interval (here 2 s), so the first one comes about 1 s after CONNECTED, not at the 2 s
    bound itself."""
    node = make_server(heartbeat_ms="2000,2000")
    peer = RawTcp.to(node)
    try:
        reply = peer.connect(token=node.token(unique("hb")), heart_beat="0,2000")
        connected = time.monotonic()
        assert reply["heart-beat"].replace(" ", "") == "2000,0"
        while not peer.heartbeats and time.monotonic() - connected < 3.0:
            peer._receive(0.05)
        assert peer.heartbeats, "no heart-beat within 3 s"
        first = peer.heartbeats[0] - connected
        assert first < 1.6, f"the first heart-beat came {first:.2f} s after CONNECTED"
        # And not more often: an idle session's beats are half an interval apart (1 s), not a
        # quarter (which would make about seven by 4 s). Late timers only make fewer.
        while time.monotonic() - connected < 4.2:
            peer._receive(0.05)
        beats = [round(t - connected, 2) for t in peer.heartbeats if t - connected < 4.2]
        assert len(beats) <= 5, f"heart-beats at {beats} s"
    finally:
        peer.close()


def test_heartbeat_timeout_and_beats_keep_alive_raw(
    make_server: Callable[..., ServerProcess],
) -> None:
    node = make_server(heartbeat_ms="500,500")
    silent = RawTcp.to(node)
    beating = RawTcp.to(node)
    no_beats = RawTcp.to(node)
    try:
        started = time.monotonic()
        reply = silent.connect(token=node.token(unique("s")), heart_beat="500,500")
        assert reply["heart-beat"].replace(" ", "") == "500,500"
        assert beating.connect(token=node.token(unique("b")), heart_beat="500,500").command == (
            "CONNECTED"
        )
        # heart-beat 0,0: the client promises no beats; the server must not expect any
        assert no_beats.connect(token=node.token(unique("n")), heart_beat="0,0").command == (
            "CONNECTED"
        )
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            beating.send_raw(b"\n")
            time.sleep(0.2)
        error = silent.expect_error(timeout=6.0)
        elapsed = time.monotonic() - started
        assert error.message == "heart-beat timeout"
        assert elapsed > 1.0, f"closed after {elapsed:.2f}s, before 3x the 500 ms interval"
        assert len(silent.heartbeats) >= 2, "the server did not beat every 500 ms while waiting"
        for peer in (beating, no_beats):
            peer.send("SUBSCRIBE", {"id": "s", "destination": topic(), "receipt": "alive"})
            assert peer.read_until("RECEIPT")["receipt-id"] == "alive"
    finally:
        for peer in (silent, beating, no_beats):
            peer.close()
