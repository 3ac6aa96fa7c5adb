"""The server connection state machine (protocol/connection.py), by STOMP 1.2 spec section.

Bytes go in through ``receive_data``, events come out of ``next_event``, and what the server
must write is read back from ``data_to_send`` and parsed as a client would.
"""

from __future__ import annotations

import pytest

from protocol.connection import ConnectionState, ServerConnection, ack_id, negotiate_heartbeat
from protocol.errors import (
    LocalProtocolError,
    MalformedFrame,
    MissingHeader,
    ProtocolError,
    VersionMismatch,
)
from protocol.events import (
    Ack,
    AckMode,
    Commit,
    ConnectRequest,
    Disconnect,
    Nack,
    Send,
    Settled,
    Subscribe,
    Unsubscribe,
)
from protocol.frames import Command, Frame, StompVersion
from tests.protocol.client import (
    SERVER,
    SESSION,
    connect,
    events,
    parse,
    send,
    sent,
    subscribe,
    wire,
)


def connect_request(headers: list[tuple[str, str]]) -> tuple[ServerConnection, ConnectRequest]:
    conn = ServerConnection()
    conn.receive_data(wire("CONNECT", headers))
    event = conn.next_event()
    assert isinstance(event, ConnectRequest)
    return conn, event


def refused(conn: ServerConnection, command: str, headers: list[tuple[str, str]]) -> ProtocolError:
    """Feed a frame the connection must refuse; return the error it raised."""
    with pytest.raises(ProtocolError) as info:
        send(conn, command, headers)
    return info.value


class TestProtocolNegotiation:
    """STOMP 1.2 §"Protocol Negotiation": the highest version both sides support wins."""

    def test_no_accept_version_means_1_0(self) -> None:
        conn, event = connect_request([("host", "/")])
        assert event.version is StompVersion.V1_0
        assert conn.version is StompVersion.V1_0

    @pytest.mark.parametrize(
        ("offered", "chosen"),
        [
            ("1.0", StompVersion.V1_0),
            ("1.1", StompVersion.V1_1),
            ("1.2", StompVersion.V1_2),
            ("1.0,1.1", StompVersion.V1_1),
            ("1.0,1.1,1.2", StompVersion.V1_2),
            ("1.2,1.0", StompVersion.V1_2),
            ("1.1, 1.2", StompVersion.V1_2),
            ("1.1,2.0", StompVersion.V1_1),
            ("0.9,1.0,3.1", StompVersion.V1_0),
        ],
    )
    def test_highest_common_version(self, offered: str, chosen: StompVersion) -> None:
        conn, event = connect_request([("accept-version", offered)])
        assert event.version is chosen
        assert conn.version is chosen
        assert conn.state is ConnectionState.CONNECTING

    @pytest.mark.parametrize("offered", ["2.0", "1.3,2.0", "", "1", "v1.2"])
    def test_no_common_version(self, offered: str) -> None:
        conn = ServerConnection()
        conn.receive_data(wire("CONNECT", [("accept-version", offered), ("receipt", "r")]))
        with pytest.raises(VersionMismatch) as info:
            conn.next_event()
        error = info.value
        assert error.message == "unsupported protocol version"
        assert error.headers == (("version", "1.0,1.1,1.2"),)
        assert error.receipt_id == "r"
        conn.fail(error)
        [frame] = sent(conn)
        assert frame.command is Command.ERROR
        assert frame.get("message") == "unsupported protocol version"
        assert frame.get("version") == "1.0,1.1,1.2"
        assert frame.get("receipt-id") == "r"
        assert conn.state is ConnectionState.CLOSED

    def test_first_accept_version_counts(self) -> None:
        _, event = connect_request([("accept-version", "1.1"), ("accept-version", "1.2")])
        assert event.version is StompVersion.V1_1

    @pytest.mark.parametrize("command", ["CONNECT", "STOMP"])
    def test_a_raw_cr_in_a_header_of_a_1_2_connect_is_refused(self, command: str) -> None:
        """CONNECT is read before its version is known; once it is 1.2, 1.2's grammar (no CR in
        a header but in its CR LF line end) holds for it too (black-box probe, item 3)."""
        conn = ServerConnection()
        conn.receive_data(
            wire(command, [("accept-version", "1.2"), ("login", "a\rb"), ("receipt", "r")])
        )
        with pytest.raises(MalformedFrame) as info:
            conn.next_event()
        assert info.value.message == "malformed header"
        assert info.value.receipt_id == "r"
        # CR LF line ends are not a CR in a header.
        conn = ServerConnection()
        conn.receive_data(wire(command, [("accept-version", "1.2"), ("login", "a")], eol=b"\r\n"))
        event = conn.next_event()
        assert isinstance(event, ConnectRequest)
        assert event.login == "a"

    @pytest.mark.parametrize("offered", ["1.0", "1.1"])
    def test_a_raw_cr_in_a_header_of_an_older_connect_is_kept(self, offered: str) -> None:
        _, event = connect_request([("accept-version", offered), ("login", "a\rb")])
        assert event.login == "a\rb"

    @pytest.mark.parametrize("command", ["CONNECT", "STOMP"])
    def test_connect_request_carries_credentials(self, command: str) -> None:
        headers = [
            ("accept-version", "1.2"),
            ("host", "tickets"),
            ("login", "alice"),
            ("passcode", "tok:en"),
            ("Authorization", "Bearer abc"),
        ]
        conn = ServerConnection()
        conn.receive_data(wire(command, headers))
        assert conn.next_event() == ConnectRequest(
            receipt=None,
            version=StompVersion.V1_2,
            login="alice",
            passcode="tok:en",
            authorization="Bearer abc",
            host="tickets",
            headers=headers,
        )

    def test_lowercase_authorization(self) -> None:
        _, event = connect_request([("accept-version", "1.2"), ("authorization", "Bearer x")])
        assert event.authorization == "Bearer x"
        assert event.login is None
        assert event.passcode is None

    def test_connect_state_transitions(self) -> None:
        conn = ServerConnection()
        states = [conn.state]
        assert conn.version is None
        conn.receive_data(wire("CONNECT", [("accept-version", "1.2")]))
        conn.next_event()
        states.append(conn.state)
        # Nothing is written until the server decides.
        assert conn.data_to_send() == b""
        conn.accept(session=SESSION, server=SERVER, user_name=None)
        states.append(conn.state)
        assert states == [
            ConnectionState.AWAITING_CONNECT,
            ConnectionState.CONNECTING,
            ConnectionState.CONNECTED,
        ]

    def test_accept_outside_connecting_is_a_local_error(self) -> None:
        with pytest.raises(LocalProtocolError):
            ServerConnection().accept(session=SESSION, server=SERVER, user_name=None)
        conn = connect()
        with pytest.raises(LocalProtocolError):
            conn.accept(session=SESSION, server=SERVER, user_name=None)


class TestHeartBeatNegotiation:
    """STOMP 1.2 §"Heart-beating": each direction is the larger of what both sides ask, or 0."""

    @pytest.mark.parametrize(
        ("server", "client", "result"),
        [
            ((10000, 10000), (0, 0), (0, 0)),
            ((0, 0), (5000, 5000), (0, 0)),
            ((0, 0), (0, 0), (0, 0)),
            ((10000, 10000), (5000, 20000), (20000, 10000)),
            ((100, 100), (200, 300), (300, 200)),
            ((1000, 0), (0, 500), (1000, 0)),
            ((0, 1000), (500, 0), (0, 1000)),
            ((1000, 2000), (3000, 0), (0, 3000)),
            ((1000, 2000), (0, 4000), (4000, 0)),
            ((5, 5), (5, 5), (5, 5)),
        ],
    )
    def test_negotiate_heartbeat(
        self, server: tuple[int, int], client: tuple[int, int], result: tuple[int, int]
    ) -> None:
        assert negotiate_heartbeat(server, client) == result

    def test_negotiated_from_connect_and_announced_in_connected(self) -> None:
        conn = ServerConnection(heart_beat=(10000, 10000))
        conn.receive_data(
            wire("CONNECT", [("accept-version", "1.2"), ("heart-beat", "5000,20000")])
        )
        conn.next_event()
        assert (conn.heartbeat_out_ms, conn.heartbeat_in_ms) == (20000, 10000)
        conn.accept(session=SESSION, server=SERVER, user_name=None)
        [connected] = sent(conn)
        assert connected.get("heart-beat") == "20000,10000"

    @pytest.mark.parametrize("value", [None, "", "0,0"])
    def test_absent_or_zero_means_none(self, value: str | None) -> None:
        conn = connect("1.2", client_heart_beat=value)
        assert (conn.heartbeat_out_ms, conn.heartbeat_in_ms) == (0, 0)

    def test_largest_interval(self) -> None:
        conn = connect("1.2", heart_beat=(1, 1), client_heart_beat="999999999,0000000000001")
        assert (conn.heartbeat_out_ms, conn.heartbeat_in_ms) == (1, 999999999)

    def test_spaces_are_tolerated(self) -> None:
        conn = connect("1.1", heart_beat=(100, 100), client_heart_beat=" 200 , 300 ")
        assert (conn.heartbeat_out_ms, conn.heartbeat_in_ms) == (300, 200)

    @pytest.mark.parametrize(
        "value",
        [
            "abc",
            "1",
            "1,2,3",
            "-1,0",
            "1.5,0",
            ",",
            "²,0",
            "0,\uff11",
            "1000000000,0",
            "0," + "9" * 400,
        ],
    )
    def test_invalid_header(self, value: str) -> None:
        conn = ServerConnection()
        conn.receive_data(wire("CONNECT", [("accept-version", "1.2"), ("heart-beat", value)]))
        with pytest.raises(MalformedFrame) as info:
            conn.next_event()
        assert info.value.message == "invalid heart-beat header"

    def test_ignored_in_1_0(self) -> None:
        conn = ServerConnection()
        conn.receive_data(wire("CONNECT", [("heart-beat", "nonsense")]))
        conn.next_event()
        assert (conn.heartbeat_out_ms, conn.heartbeat_in_ms) == (0, 0)
        conn.accept(session=SESSION, server=SERVER, user_name=None)
        [connected] = sent(conn)
        # 1.0 has no heart-beating; CONNECTED still says so, as RabbitMQ's does.
        assert connected.get("heart-beat") == "0,0"


class TestConnectedFrame:
    """STOMP 1.2 §"CONNECTED Frame": version, heart-beat, session, server, user-name."""

    def test_contents(self) -> None:
        conn = ServerConnection(heart_beat=(1000, 2000))
        conn.receive_data(wire("CONNECT", [("accept-version", "1.1,1.2"), ("heart-beat", "0,0")]))
        conn.next_event()
        conn.accept(session="sess-42", server="concert-hub/0.1.0", user_name="alice")
        assert sent(conn) == [
            Frame(
                Command.CONNECTED,
                [
                    ("version", "1.2"),
                    ("heart-beat", "0,0"),
                    ("session", "sess-42"),
                    ("server", "concert-hub/0.1.0"),
                    ("user-name", "alice"),
                ],
            )
        ]

    def test_anonymous_has_no_user_name(self) -> None:
        conn = ServerConnection()
        conn.receive_data(wire("CONNECT", [("accept-version", "1.1")]))
        conn.next_event()
        conn.accept(session="s", server="srv", user_name=None)
        [connected] = sent(conn)
        assert connected.get("version") == "1.1"
        assert connected.get("user-name") is None

    def test_1_0(self) -> None:
        conn = ServerConnection()
        conn.receive_data(wire("CONNECT"))
        conn.next_event()
        conn.accept(session="s", server="srv", user_name="bob")
        assert sent(conn) == [
            Frame(
                Command.CONNECTED,
                [
                    ("version", "1.0"),
                    ("heart-beat", "0,0"),
                    ("session", "s"),
                    ("server", "srv"),
                    ("user-name", "bob"),
                ],
            )
        ]


class TestConnectionStates:
    """The transition table: only CONNECT/STOMP before connecting, never twice."""

    @pytest.mark.parametrize(
        "command", ["SEND", "SUBSCRIBE", "ACK", "BEGIN", "DISCONNECT", "MESSAGE", "CONNECTED"]
    )
    def test_frames_before_connect(self, command: str) -> None:
        conn = ServerConnection()
        error = refused(conn, command, [("destination", "/a"), ("receipt", "r1")])
        assert isinstance(error, MalformedFrame)
        assert error.message == "expected CONNECT"
        assert error.receipt_id == "r1"

    @pytest.mark.parametrize("command", ["CONNECT", "STOMP"])
    def test_second_connect(self, command: str) -> None:
        error = refused(connect(), command, [("accept-version", "1.2")])
        assert error.message == "already connected"

    @pytest.mark.parametrize("command", ["MESSAGE", "RECEIPT", "ERROR", "CONNECTED"])
    def test_server_frames_from_the_client(self, command: str) -> None:
        error = refused(connect(), command, [])
        assert isinstance(error, MalformedFrame)
        assert error.message == "unexpected frame"

    def test_pipelined_frames_wait_while_connecting(self) -> None:
        conn = ServerConnection()
        conn.receive_data(
            wire("CONNECT", [("accept-version", "1.2")])
            + wire("SEND", [("destination", "/a\\cb")], b"x")
            + wire("SUBSCRIBE", [("id", "0"), ("destination", "/t")])
        )
        assert isinstance(conn.next_event(), ConnectRequest)
        assert conn.next_event() is None
        assert conn.next_event() is None
        assert conn.buffered > 0
        assert conn.subscriptions == {}
        conn.accept(session=SESSION, server=SERVER, user_name=None)
        send_event, subscribe_event = events(conn)
        # Unescaped per the version negotiated by the CONNECT in front of them.
        assert send_event == Send(None, "/a:b", [], b"x")
        assert isinstance(subscribe_event, Subscribe)
        assert conn.buffered == 0

    def test_pipelined_frames_are_dropped_when_connect_fails(self) -> None:
        conn = ServerConnection()
        conn.receive_data(
            wire("CONNECT", [("accept-version", "1.2")]) + wire("SEND", [("destination", "/a")])
        )
        conn.next_event()
        conn.fail(ProtocolError("authentication failed"))
        [error] = sent(conn)
        assert error.get("message") == "authentication failed"
        assert conn.next_event() is None
        assert conn.state is ConnectionState.CLOSED


class TestFrameObserver:
    """``on_frame`` sees every frame read, before it is acted on, and may refuse it."""

    def test_sees_every_frame_including_refused_and_buffered_ones(self) -> None:
        conn = ServerConnection()
        seen: list[Command] = []
        conn.on_frame = lambda frame: seen.append(frame.command)
        conn.receive_data(
            wire("CONNECT", [("accept-version", "1.2")])
            + wire("BEGIN", [("transaction", "t")])
            + wire("SEND", [("destination", "/a"), ("transaction", "t")])
            + wire("SEND", [])
        )
        conn.next_event()
        conn.accept(session=SESSION, server=SERVER, user_name=None)
        with pytest.raises(MissingHeader):
            events(conn)
        assert seen == [Command.CONNECT, Command.BEGIN, Command.SEND, Command.SEND]

    def test_may_refuse_a_frame(self) -> None:
        conn = connect()

        def rate_limit(frame: Frame) -> None:
            if frame.command is Command.SUBSCRIBE:
                raise ProtocolError("rate limit exceeded")

        conn.on_frame = rate_limit
        error = refused(conn, "SUBSCRIBE", [("id", "s"), ("destination", "/a"), ("receipt", "r")])
        assert error.message == "rate limit exceeded"
        assert error.receipt_id == "r"
        # Refused before it took effect.
        assert conn.subscriptions == {}


class TestSend:
    """STOMP 1.2 §"SEND"."""

    def test_send_event(self) -> None:
        event = send(
            connect(),
            "SEND",
            [
                ("destination", "/topic/a"),
                ("receipt", "r"),
                ("content-type", "text/plain"),
                ("content-length", "2"),
                ("correlation-id", "c1"),
                ("message-id", "spoofed"),
                ("subscription", "spoofed"),
                ("ack", "spoofed"),
            ],
            b"hi",
        )
        # Protocol headers are the exchange's, not the message's; the rest pass through.
        assert event == Send(
            "r", "/topic/a", [("content-type", "text/plain"), ("correlation-id", "c1")], b"hi"
        )

    def test_missing_destination(self) -> None:
        error = refused(connect(), "SEND", [("receipt", "r")])
        assert isinstance(error, MissingHeader)
        assert error.message == "missing header: destination"
        assert error.receipt_id == "r"


class TestSubscribe:
    """STOMP 1.2 §"SUBSCRIBE" and §"SUBSCRIBE ack Header"."""

    @pytest.mark.parametrize(
        ("header", "mode"),
        [
            (None, AckMode.AUTO),
            ("auto", AckMode.AUTO),
            ("client", AckMode.CLIENT),
            ("client-individual", AckMode.CLIENT_INDIVIDUAL),
        ],
    )
    def test_subscribe_event(self, header: str | None, mode: AckMode) -> None:
        conn = connect()
        headers = [("id", "s1"), ("destination", "/topic/a"), ("receipt", "r")]
        if header is not None:
            headers.append(("ack", header))
        event = send(conn, "SUBSCRIBE", headers)
        assert isinstance(event, Subscribe)
        assert event.receipt == "r"
        subscription = event.subscription
        assert (subscription.id, subscription.destination, subscription.ack) == (
            "s1",
            "/topic/a",
            mode,
        )
        assert subscription.headers == headers
        assert conn.subscriptions == {"s1": subscription}

    @pytest.mark.parametrize(
        ("version", "headers", "missing"),
        [
            ("1.2", [("id", "s1")], "destination"),
            ("1.2", [("destination", "/a")], "id"),
            ("1.1", [("destination", "/a")], "id"),
            ("1.0", [("id", "s1")], "destination"),
        ],
    )
    def test_required_headers(
        self, version: str, headers: list[tuple[str, str]], missing: str
    ) -> None:
        error = refused(connect(version), "SUBSCRIBE", headers)
        assert isinstance(error, MissingHeader)
        assert error.message == f"missing header: {missing}"

    def test_1_0_without_id_uses_destination(self) -> None:
        conn = connect("1.0")
        event = send(conn, "SUBSCRIBE", [("destination", "/topic/a")])
        assert isinstance(event, Subscribe)
        assert event.subscription.id == "/topic/a"
        assert list(conn.subscriptions) == ["/topic/a"]

    def test_duplicate_id(self) -> None:
        conn = connect()
        subscribe(conn, "s1")
        error = refused(
            conn, "SUBSCRIBE", [("id", "s1"), ("destination", "/other"), ("receipt", "r")]
        )
        assert isinstance(error, MalformedFrame)
        assert error.message == "duplicate subscription id"
        assert error.receipt_id == "r"

    @pytest.mark.parametrize("mode", ["bogus", "AUTO", "client_individual"])
    def test_invalid_ack_mode(self, mode: str) -> None:
        conn = connect()
        error = refused(conn, "SUBSCRIBE", [("id", "s1"), ("destination", "/a"), ("ack", mode)])
        assert isinstance(error, MalformedFrame)
        assert error.message == "invalid ack mode"
        assert conn.subscriptions == {}


class TestUnsubscribe:
    """STOMP 1.2 §"UNSUBSCRIBE"; an unknown id is a no-op (like RabbitMQ)."""

    def test_known_subscription(self) -> None:
        conn = connect()
        subscription = subscribe(conn, "s1")
        event = send(conn, "UNSUBSCRIBE", [("id", "s1"), ("receipt", "r")])
        assert event == Unsubscribe("r", subscription)
        assert event.subscription is subscription
        assert conn.subscriptions == {}
        assert conn.data_to_send() == b""
        conn.complete(event)
        assert sent(conn) == [Frame(Command.RECEIPT, [("receipt-id", "r")])]

    def test_unknown_id_is_a_no_op_with_receipt(self) -> None:
        conn = connect()
        subscribe(conn, "s1")
        # Nothing for the server to do but send the RECEIPT, in its turn.
        settled = send(conn, "UNSUBSCRIBE", [("id", "nope"), ("receipt", "r")])
        assert settled == Settled("r")
        assert sent(conn) == []
        conn.complete(settled)
        assert sent(conn) == [Frame(Command.RECEIPT, [("receipt-id", "r")])]
        assert list(conn.subscriptions) == ["s1"]
        assert conn.state is ConnectionState.CONNECTED

    def test_unknown_id_without_receipt_sends_nothing(self) -> None:
        conn = connect()
        assert send(conn, "UNSUBSCRIBE", [("id", "nope")]) is None
        assert conn.data_to_send() == b""

    def test_id_required(self) -> None:
        error = refused(connect("1.1"), "UNSUBSCRIBE", [("destination", "/topic/s1")])
        assert error.message == "missing header: id"

    def test_1_0_by_destination(self) -> None:
        conn = connect("1.0")
        send(conn, "SUBSCRIBE", [("destination", "/topic/a")])
        event = send(conn, "UNSUBSCRIBE", [("destination", "/topic/a")])
        assert isinstance(event, Unsubscribe)
        assert conn.subscriptions == {}

    def test_1_0_by_destination_of_a_subscription_with_an_id(self) -> None:
        """STOMP 1.0 lets UNSUBSCRIBE name the destination even when SUBSCRIBE gave an id."""
        conn = connect("1.0")
        send(conn, "SUBSCRIBE", [("destination", "/queue/q"), ("id", "mine")])
        event = send(conn, "UNSUBSCRIBE", [("destination", "/queue/q")])
        assert isinstance(event, Unsubscribe) and event.subscription.id == "mine"
        assert conn.subscriptions == {}

    def test_1_0_needs_id_or_destination(self) -> None:
        error = refused(connect("1.0"), "UNSUBSCRIBE", [])
        assert error.message == "missing header: destination"

    def test_forgets_pending_acks(self) -> None:
        conn = connect()
        subscription = subscribe(conn, "s1", "client")
        conn.record_delivery(subscription, "m1")
        send(conn, "UNSUBSCRIBE", [("id", "s1")])
        subscribe(conn, "s1", "client")
        error = refused(conn, "ACK", [("id", ack_id("s1", "m1"))])
        assert error.message == "unknown ack id"


class TestAck:
    """STOMP 1.2 §"ACK", §"NACK" and §"SUBSCRIBE ack Header".

    1.2 names the delivery by the MESSAGE's ``ack`` header (:func:`ack_id`); 1.1 by
    ``message-id`` plus ``subscription``; 1.0 by ``message-id`` alone. ``client`` mode is
    cumulative, ``client-individual`` settles one message.
    """

    def test_ack_id_is_unique_per_delivery(self) -> None:
        ids = {ack_id(s, m) for s in ("s1", "s2") for m in ("m1", "m2")}
        assert len(ids) == 4
        assert ack_id("s1", "m1") == ack_id("s1", "m1")

    @pytest.mark.parametrize("command", ["ACK", "NACK"])
    def test_1_2_by_id(self, command: str) -> None:
        conn = connect("1.2")
        subscription = subscribe(conn, "s1", "client-individual")
        conn.record_delivery(subscription, "m1")
        event = send(conn, command, [("id", ack_id("s1", "m1")), ("receipt", "r")])
        kind = Ack if command == "ACK" else Nack
        assert event == kind("r", subscription, ["m1"])
        assert subscription.pending == {}

    def test_1_2_needs_id(self) -> None:
        conn = connect("1.2")
        subscription = subscribe(conn, "s1", "client")
        conn.record_delivery(subscription, "m1")
        error = refused(conn, "ACK", [("message-id", "m1"), ("subscription", "s1")])
        assert isinstance(error, MissingHeader)
        assert error.message == "missing header: id"

    def test_1_1_by_message_id_and_subscription(self) -> None:
        conn = connect("1.1")
        s1 = subscribe(conn, "s1", "client-individual")
        s2 = subscribe(conn, "s2", "client-individual")
        conn.record_delivery(s1, "m1")
        conn.record_delivery(s2, "m1")
        event = send(conn, "ACK", [("message-id", "m1"), ("subscription", "s2")])
        assert event == Ack(None, s2, ["m1"])
        assert list(s1.pending) == ["m1"]

    @pytest.mark.parametrize(
        ("headers", "message"),
        [
            ([("message-id", "m1")], "missing header: subscription"),
            ([("subscription", "s1")], "missing header: message-id"),
            ([("message-id", "m1"), ("subscription", "other")], "unknown ack id"),
            ([("message-id", "m2"), ("subscription", "s1")], "unknown ack id"),
        ],
    )
    def test_1_1_errors(self, headers: list[tuple[str, str]], message: str) -> None:
        conn = connect("1.1")
        conn.record_delivery(subscribe(conn, "s1", "client"), "m1")
        assert refused(conn, "ACK", headers).message == message

    def test_nack_on_1_0_is_taken_as_rabbitmq_takes_it(self) -> None:
        """NACK came with STOMP 1.1, but RabbitMQ (SPEC's reference broker) takes it from a
        1.0 session too, by ``message-id``; so does this broker (ActiveMQ would refuse it)."""
        conn = connect("1.0")
        subscription = subscribe(conn, "s1", "client")
        conn.record_delivery(subscription, "m1")
        assert send(conn, "NACK", [("message-id", "m1")]) == Nack(None, subscription, ["m1"])
        assert list(subscription.pending) == []

    @pytest.mark.parametrize("version", ["1.1", "1.2"])
    def test_nack_is_a_command_from_1_1_on(self, version: str) -> None:
        conn = connect(version)
        subscription = subscribe(conn, "s1", "client")
        conn.record_delivery(subscription, "m1")
        headers = [("id", ack_id("s1", "m1"))]
        if version == "1.1":
            headers = [("message-id", "m1"), ("subscription", "s1")]
        assert send(conn, "NACK", headers) == Nack(None, subscription, ["m1"])

    def test_1_0_by_message_id(self) -> None:
        conn = connect("1.0")
        s1 = subscribe(conn, "s1", "client")
        s2 = subscribe(conn, "s2", "client")
        conn.record_delivery(s1, "m1")
        conn.record_delivery(s2, "m2")
        assert send(conn, "ACK", [("message-id", "m2")]) == Ack(None, s2, ["m2"])
        assert send(conn, "ACK", [("message-id", "m1")]) == Ack(None, s1, ["m1"])
        assert refused(conn, "ACK", [("message-id", "m1")]).message == "unknown ack id"

    @pytest.mark.parametrize("command", ["ACK", "NACK"])
    def test_1_1_without_subscription_names_the_command(self, command: str) -> None:
        conn = connect("1.1")
        conn.record_delivery(subscribe(conn, "s1", "client"), "m1")
        error = refused(conn, command, [("message-id", "m1")])
        assert isinstance(error, MissingHeader)
        assert error.message == "missing header: subscription"
        assert error.detail == f"{command} requires a subscription header"

    @pytest.mark.parametrize("command", ["ACK", "NACK"])
    def test_1_2_without_id(self, command: str) -> None:
        conn = connect("1.2")
        conn.record_delivery(subscribe(conn, "s1", "client"), "m1")
        error = refused(conn, command, [("message-id", "m1")])
        assert error.message == "missing header: id"
        assert error.detail == f"{command} requires an id header"

    @pytest.mark.parametrize("command", ["ACK", "NACK"])
    def test_client_mode_is_cumulative(self, command: str) -> None:
        conn = connect("1.2")
        subscription = subscribe(conn, "s1", "client")
        for mid in ("m1", "m2", "m3"):
            conn.record_delivery(subscription, mid)
        event = send(conn, command, [("id", ack_id("s1", "m2"))])
        assert isinstance(event, Ack if command == "ACK" else Nack)
        assert event.message_ids == ["m1", "m2"]
        assert list(subscription.pending) == ["m3"]
        assert refused(conn, command, [("id", ack_id("s1", "m1"))]).message == "unknown ack id"

    def test_client_individual_settles_one(self) -> None:
        conn = connect("1.2")
        subscription = subscribe(conn, "s1", "client-individual")
        for mid in ("m1", "m2", "m3"):
            conn.record_delivery(subscription, mid)
        assert send(conn, "ACK", [("id", ack_id("s1", "m2"))]) == Ack(None, subscription, ["m2"])
        assert list(subscription.pending) == ["m1", "m3"]
        assert send(conn, "NACK", [("id", ack_id("s1", "m1"))]) == Nack(None, subscription, ["m1"])
        assert list(subscription.pending) == ["m3"]

    def test_cumulative_is_per_subscription(self) -> None:
        conn = connect("1.2")
        s1 = subscribe(conn, "s1", "client")
        s2 = subscribe(conn, "s2", "client")
        conn.record_delivery(s1, "m1")
        conn.record_delivery(s2, "m2")
        conn.record_delivery(s1, "m3")
        assert send(conn, "ACK", [("id", ack_id("s1", "m3"))]) == Ack(None, s1, ["m1", "m3"])
        assert list(s2.pending) == ["m2"]

    @pytest.mark.parametrize(
        "headers",
        [
            [("id", "never-delivered"), ("receipt", "r")],
            [("id", ack_id("s1", "m1")), ("receipt", "r")],
        ],
    )
    def test_unknown_id(self, headers: list[tuple[str, str]]) -> None:
        conn = connect("1.2")
        subscribe(conn, "s1", "auto")
        error = refused(conn, "ACK", headers)
        assert isinstance(error, MalformedFrame)
        assert error.message == "unknown ack id"
        assert error.receipt_id == "r"

    def test_ack_twice(self) -> None:
        conn = connect("1.2")
        conn.record_delivery(subscribe(conn, "s1", "client-individual"), "m1")
        send(conn, "ACK", [("id", ack_id("s1", "m1"))])
        assert refused(conn, "ACK", [("id", ack_id("s1", "m1"))]).message == "unknown ack id"


class TestTransactions:
    """STOMP 1.2 §"BEGIN", §"COMMIT", §"ABORT": frames in a transaction take effect at COMMIT."""

    def test_commit_carries_the_buffered_frames(self) -> None:
        conn = connect("1.2")
        subscription = subscribe(conn, "s1", "client-individual")
        conn.record_delivery(subscription, "m1")
        assert send(conn, "BEGIN", [("transaction", "tx")]) is None
        assert send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")], b"1") is None
        assert send(conn, "ACK", [("id", ack_id("s1", "m1")), ("transaction", "tx")]) is None
        assert send(conn, "SEND", [("destination", "/b"), ("transaction", "tx")], b"2") is None
        conn.receive_data(wire("COMMIT", [("transaction", "tx"), ("receipt", "c")]))
        assert events(conn) == [
            Commit(
                "c",
                "tx",
                [
                    Send(None, "/a", [], b"1"),
                    Ack(None, subscription, ["m1"]),
                    Send(None, "/b", [], b"2"),
                ],
            )
        ]

    def test_an_ack_held_in_a_transaction_does_not_settle_a_redelivery(self) -> None:
        """ACK in a transaction, then NACK outside it (the client changed its mind): the message
        is delivered again, with the same ``ack`` id. The COMMIT's ACK named the first
        delivery, settled already: it must leave the redelivery unacknowledged."""
        conn = connect("1.2")
        subscription = subscribe(conn, "s1", "client-individual")
        conn.record_delivery(subscription, "m1")
        send(conn, "BEGIN", [("transaction", "tx")])
        send(conn, "ACK", [("id", ack_id("s1", "m1")), ("transaction", "tx")])
        assert send(conn, "NACK", [("id", ack_id("s1", "m1"))]) == Nack(None, subscription, ["m1"])
        conn.record_delivery(subscription, "m1")  # the redelivery
        conn.receive_data(wire("COMMIT", [("transaction", "tx")]))
        assert events(conn) == [Commit(None, "tx", [Ack(None, subscription, [])])]
        assert list(subscription.pending) == ["m1"]
        assert send(conn, "ACK", [("id", ack_id("s1", "m1"))]) == Ack(None, subscription, ["m1"])

    def test_frames_outside_a_transaction_pass_straight_through(self) -> None:
        conn = connect()
        send(conn, "BEGIN", [("transaction", "tx")])
        assert send(conn, "SEND", [("destination", "/now")]) == Send(None, "/now", [], b"")

    def test_receipts(self) -> None:
        conn = connect()
        begun = send(conn, "BEGIN", [("transaction", "tx"), ("receipt", "b")])
        assert begun == Settled("b")
        conn.complete(begun)
        assert sent(conn) == [Frame(Command.RECEIPT, [("receipt-id", "b")])]
        send(conn, "SEND", [("destination", "/a"), ("transaction", "tx"), ("receipt", "s")])
        # The SEND takes effect at COMMIT: no receipt before then (as RabbitMQ).
        assert sent(conn) == []
        conn.receive_data(wire("COMMIT", [("transaction", "tx"), ("receipt", "c")]))
        (commit,) = events(conn)
        assert sent(conn) == []
        # Completing the COMMIT sends its frames' RECEIPTs, then its own.
        conn.complete(commit)
        assert sent(conn) == [
            Frame(Command.RECEIPT, [("receipt-id", "s")]),
            Frame(Command.RECEIPT, [("receipt-id", "c")]),
        ]

    def test_abort_drops_the_receipts_of_its_frames(self) -> None:
        conn = connect()
        send(conn, "BEGIN", [("transaction", "tx")])
        send(conn, "SEND", [("destination", "/a"), ("transaction", "tx"), ("receipt", "s")])
        aborted = send(conn, "ABORT", [("transaction", "tx"), ("receipt", "a")])
        assert aborted == Settled("a")
        conn.complete(aborted)
        assert sent(conn) == [Frame(Command.RECEIPT, [("receipt-id", "a")])]

    def test_abort_drops_buffered_frames(self) -> None:
        conn = connect()
        send(conn, "BEGIN", [("transaction", "tx")])
        send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")])
        assert send(conn, "ABORT", [("transaction", "tx")]) is None
        assert events(conn) == []
        assert refused(conn, "COMMIT", [("transaction", "tx")]).message == "unknown transaction"

    def test_transactions_are_independent(self) -> None:
        conn = connect()
        send(conn, "BEGIN", [("transaction", "t1")])
        send(conn, "BEGIN", [("transaction", "t2")])
        send(conn, "SEND", [("destination", "/1"), ("transaction", "t1")])
        send(conn, "SEND", [("destination", "/2"), ("transaction", "t2")])
        send(conn, "ABORT", [("transaction", "t1")])
        conn.receive_data(wire("COMMIT", [("transaction", "t2")]))
        assert events(conn) == [Commit(None, "t2", [Send(None, "/2", [], b"")])]

    def test_name_can_be_reused_after_commit(self) -> None:
        conn = connect()
        for body in (b"1", b"2"):
            send(conn, "BEGIN", [("transaction", "tx")])
            send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")], body)
            conn.receive_data(wire("COMMIT", [("transaction", "tx")]))
            assert events(conn) == [Commit(None, "tx", [Send(None, "/a", [], body)])]

    @pytest.mark.parametrize(
        ("command", "headers"),
        [
            ("SEND", [("destination", "/a"), ("transaction", "nope"), ("receipt", "r")]),
            ("COMMIT", [("transaction", "nope"), ("receipt", "r")]),
            ("ABORT", [("transaction", "nope"), ("receipt", "r")]),
        ],
    )
    def test_unknown_transaction(self, command: str, headers: list[tuple[str, str]]) -> None:
        error = refused(connect(), command, headers)
        assert isinstance(error, MalformedFrame)
        assert error.message == "unknown transaction"
        assert error.receipt_id == "r"

    def test_ack_in_unknown_transaction(self) -> None:
        conn = connect()
        conn.record_delivery(subscribe(conn, "s1", "client"), "m1")
        error = refused(conn, "ACK", [("id", ack_id("s1", "m1")), ("transaction", "nope")])
        assert error.message == "unknown transaction"

    def test_duplicate_begin(self) -> None:
        conn = connect()
        send(conn, "BEGIN", [("transaction", "tx")])
        error = refused(conn, "BEGIN", [("transaction", "tx"), ("receipt", "r")])
        assert error.message == "transaction already open"
        assert error.receipt_id == "r"

    @pytest.mark.parametrize("command", ["BEGIN", "COMMIT", "ABORT"])
    def test_transaction_header_required(self, command: str) -> None:
        error = refused(connect(), command, [])
        assert isinstance(error, MissingHeader)
        assert error.message == "missing header: transaction"

    def test_disconnect_aborts_open_transactions(self) -> None:
        conn = connect()
        send(conn, "BEGIN", [("transaction", "tx")])
        send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")])
        conn.receive_data(
            wire("DISCONNECT", [("receipt", "d")]) + wire("COMMIT", [("transaction", "tx")])
        )
        disconnect = conn.next_event()
        assert disconnect == Disconnect("d")
        # Had the transaction survived, this COMMIT would release the buffered SEND.
        assert refused(conn, "COMMIT", [("transaction", "tx")]).message == "unknown transaction"

    def test_aborted_ack_leaves_message_unacknowledged(self) -> None:
        conn = connect("1.2")
        subscription = subscribe(conn, "s1", "client-individual")
        conn.record_delivery(subscription, "m1")
        send(conn, "BEGIN", [("transaction", "tx")])
        send(conn, "ACK", [("id", ack_id("s1", "m1")), ("transaction", "tx")])
        send(conn, "ABORT", [("transaction", "tx")])
        assert send(conn, "ACK", [("id", ack_id("s1", "m1"))]) == Ack(None, subscription, ["m1"])


class TestReceipts:
    """STOMP 1.2 §"Header receipt": RECEIPT once the frame took effect, i.e. at complete()."""

    @pytest.mark.parametrize(
        ("command", "headers"),
        [
            ("SEND", [("destination", "/a")]),
            ("SUBSCRIBE", [("id", "s"), ("destination", "/a")]),
            ("DISCONNECT", []),
        ],
    )
    def test_receipt_follows_complete(self, command: str, headers: list[tuple[str, str]]) -> None:
        conn = connect()
        event = send(conn, command, [*headers, ("receipt", "r-1")])
        assert event is not None
        assert event.receipt == "r-1"
        assert conn.data_to_send() == b""
        conn.complete(event)
        assert sent(conn) == [Frame(Command.RECEIPT, [("receipt-id", "r-1")])]

    def test_no_receipt_asked_none_sent(self) -> None:
        conn = connect()
        event = send(conn, "SEND", [("destination", "/a")])
        assert event is not None
        conn.complete(event)
        assert conn.data_to_send() == b""

    def test_output_is_kept_in_order(self) -> None:
        conn = connect()
        first = send(conn, "SEND", [("destination", "/a"), ("receipt", "1")])
        second = send(conn, "SEND", [("destination", "/a"), ("receipt", "2")])
        assert first is not None
        assert second is not None
        conn.complete(first)
        conn.complete(second)
        assert [f.get("receipt-id") for f in sent(conn)] == ["1", "2"]
        assert conn.data_to_send() == b""

    def test_connect_is_answered_by_connected_and_carries_its_receipt_for_an_error(
        self,
    ) -> None:
        """A CONNECT asks for no RECEIPT (STOMP 1.2: any frame but CONNECT may); one it carries
        anyway is the event's, for the ERROR of a refused login (the server names it there)."""
        conn, event = connect_request([("accept-version", "1.2"), ("receipt", "login")])
        assert event.receipt == "login"
        conn.accept(session="s", server="test", user_name=None)
        conn.complete(event)
        assert [frame.command for frame in sent(conn)] == [Command.CONNECTED]

    def test_errors_name_the_offending_frames_receipt(self) -> None:
        conn = connect()
        error = refused(conn, "SEND", [("receipt", "r-9")])
        conn.fail(error)
        [frame] = sent(conn)
        assert frame.command is Command.ERROR
        assert frame.get("receipt-id") == "r-9"


class TestDisconnect:
    """STOMP 1.2 §"DISCONNECT": RECEIPT, then the connection is closed."""

    def test_disconnect_closes_after_receipt(self) -> None:
        conn = connect()
        event = send(conn, "DISCONNECT", [("receipt", "bye")])
        assert event == Disconnect("bye")
        conn.complete(event)
        assert sent(conn) == [Frame(Command.RECEIPT, [("receipt-id", "bye")])]
        assert conn.state is ConnectionState.CLOSED
        conn.receive_data(wire("SEND", [("destination", "/a")]))
        assert conn.next_event() is None
        assert conn.data_to_send() == b""


class TestError:
    """STOMP 1.2 §"ERROR": message header, receipt-id, a body explaining; then close."""

    def test_fail_sends_error_and_closes(self) -> None:
        conn = connect()
        conn.fail(MissingHeader("missing header: destination", "SEND needs one", receipt_id="r"))
        assert sent(conn) == [
            Frame(
                Command.ERROR,
                [
                    ("message", "missing header: destination"),
                    ("receipt-id", "r"),
                    ("content-type", "text/plain"),
                    ("content-length", "14"),
                ],
                b"SEND needs one",
            )
        ]
        assert conn.state is ConnectionState.CLOSED

    def test_without_detail_there_is_no_body(self) -> None:
        conn = connect()
        conn.fail(ProtocolError("slow consumer"))
        assert sent(conn) == [Frame(Command.ERROR, [("message", "slow consumer")])]

    def test_extra_headers_follow_message(self) -> None:
        conn = ServerConnection()
        conn.fail(
            VersionMismatch("unsupported protocol version", headers=(("version", "1.0,1.1,1.2"),))
        )
        [frame] = sent(conn)
        assert frame.headers == [
            ("message", "unsupported protocol version"),
            ("version", "1.0,1.1,1.2"),
        ]

    def test_message_is_escaped_per_version(self) -> None:
        conn = connect("1.2")
        conn.fail(ProtocolError("a:b\nc"))
        data = conn.data_to_send()
        assert data.startswith(b"ERROR\nmessage:a\\cb\\nc\n")
        assert parse(data, StompVersion.V1_2)[0].get("message") == "a:b\nc"

    def test_fail_twice_sends_one_error(self) -> None:
        conn = connect()
        conn.fail(ProtocolError("first"))
        conn.fail(ProtocolError("second"))
        assert [f.get("message") for f in sent(conn)] == ["first"]

    def test_data_after_close_is_ignored(self) -> None:
        conn = connect()
        conn.receive_data(b"SEND\ndestination:/a\n")
        buffered = conn.buffered
        conn.fail(ProtocolError("bye"))
        conn.receive_data(b"\n\x00" + wire("SEND", [("destination", "/b")]))
        assert conn.buffered == buffered
        assert conn.next_event() is None
        assert conn.state is ConnectionState.CLOSED

    def test_fail_discards_frames_not_yet_pulled(self) -> None:
        conn = connect()
        send(conn, "BEGIN", [("transaction", "tx")])
        send(conn, "SEND", [("destination", "/a"), ("transaction", "tx")])
        conn.receive_data(
            wire("COMMIT", [("transaction", "tx")]) + wire("SEND", [("destination", "/b")])
        )
        assert isinstance(conn.next_event(), Commit)
        conn.fail(ProtocolError("server shutting down"))
        assert conn.next_event() is None

    def test_complete_after_close_sends_no_receipt(self) -> None:
        conn = connect()
        event = send(conn, "SEND", [("destination", "/a"), ("receipt", "r")])
        assert event is not None
        conn.fail(ProtocolError("forbidden destination"))
        conn.data_to_send()
        conn.complete(event)
        assert conn.data_to_send() == b""
