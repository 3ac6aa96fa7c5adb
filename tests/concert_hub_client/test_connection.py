"""The asyncio client against a real node: connect, subscribe, publish, receipts, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from concert_hub_client import Client, ClientError, Message, connect
from tests.conftest import ServerProcess, free_port
from tests.server.stomp_clients import topic, unique


async def publisher(server: ServerProcess) -> Client:
    return await connect(server.ws_url, passcode=server.token(unique("pub"), "publisher"))


async def test_connect_negotiates_stomp_1_2_over_v12_stomp(server: ServerProcess) -> None:
    async with await connect(server.ws_url) as client:
        connected = client.connected.result()
        assert client.subprotocol == "v12.stomp"
        assert connected["version"] == "1.2"
        assert connected["server"].startswith("concert-hub/")
        assert client.stomp.version == "1.2"


async def test_published_messages_reach_a_subscriber_in_order(server: ServerProcess) -> None:
    dest = topic("aio")
    received: list[Message] = []
    five = asyncio.Event()

    def on_message(message: Message) -> None:
        received.append(message)
        if len(received) == 5:
            five.set()

    sub = await connect(server.ws_url, passcode=server.token(unique("sub")), on_message=on_message)
    pub = await publisher(server)
    try:
        await sub.subscribe(dest, "s-1")
        done = pub.expect_receipt("last")
        for n in range(5):
            receipt = "last" if n == 4 else None
            pub.send(dest, f"m{n}".encode(), content_type="text/plain", receipt=receipt,
                     headers=[("x-tricky", "a:b\nc\\d")])  # fmt: skip
        await asyncio.wait_for(done, 5)
        await asyncio.wait_for(five.wait(), 5)
        assert [m.body for m in received] == [f"m{n}".encode() for n in range(5)]
        first = received[0]
        assert first.subscription == "s-1" and first.destination == dest
        assert first["x-tricky"] == "a:b\nc\\d"  # escaped on the wire, decoded by the codec
        assert b"x-tricky:a\\cb\\nc\\\\d\n" in first.raw
        assert first.get("content-type") == "text/plain"
    finally:
        await sub.disconnect()
        await pub.disconnect()


async def test_without_a_handler_messages_queue(server: ServerProcess) -> None:
    dest = topic("aio-queue")
    async with await connect(server.ws_url, passcode=server.token(unique("q"))) as sub:
        await sub.subscribe(dest, "s")
        async with await publisher(server) as pub:
            pub.send(dest, b"\x00binary\x00")
            assert sub.messages is not None
            message = await asyncio.wait_for(sub.messages.get(), 5)
        assert message.body == b"\x00binary\x00"


async def test_bad_credentials_fail_at_connect_with_the_servers_reason(
    server: ServerProcess,
) -> None:
    with pytest.raises(ClientError, match=r"^STOMP CONNECT: ERROR authentication failed"):
        await connect(server.ws_url, passcode="not-a-token")


async def test_an_error_frame_ends_the_connection(server: ServerProcess) -> None:
    client = await connect(server.ws_url, passcode=server.token(unique("u")))
    closed = asyncio.Event()
    client.on_close = lambda _: closed.set()
    with pytest.raises(ClientError, match=r"^SUBSCRIBE receipt: ERROR forbidden destination"):
        await client.subscribe("/nowhere", "s")
    await asyncio.wait_for(closed.wait(), 5)
    assert client.closed and client.error is not None
    assert client.error.startswith("ERROR forbidden destination")
    with pytest.raises(ClientError):
        client.send("/topic/x", b"too late")


async def test_nothing_listening_fails_at_tcp_connect() -> None:
    with pytest.raises(ClientError, match=r"^TCP connect: ConnectionRefusedError"):
        await connect(f"ws://127.0.0.1:{free_port()}/ws")


async def test_a_path_without_websocket_fails_at_the_upgrade(server: ServerProcess) -> None:
    with pytest.raises(ClientError, match=r"^WebSocket upgrade: .*upgrade refused: HTTP/1.1 404"):
        await connect(f"ws://127.0.0.1:{server.http_port}/nothing-here")


async def test_client_heart_beats_keep_a_silent_session(
    make_server: Callable[..., ServerProcess],
) -> None:
    node = make_server(heartbeat_ms="300,300")
    async with await connect(node.ws_url, heart_beat=(300, 300)) as client:
        assert client.stomp.heartbeat_out_ms == 300
        await asyncio.sleep(1.5)  # well over three intervals without a frame from us
        assert not client.closed, client.error
        await client.subscribe("/topic/announcements", "s")
