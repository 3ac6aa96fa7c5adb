"""The SDK (``concert_hub_client.sdk``) against a real node: STOMP basics, receipts, transactions,
``/app`` commands as typed calls, a live seat map, and a reconnect that resumes without a gap."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest

from concert_hub_client.sdk import (
    Client,
    ConnectionLost,
    SeatMap,
    ServerError,
    Subscription,
    connect,
)
from concert_hub_client.state import Applied, CommandError
from tests.cluster.conftest import create_event
from tests.conftest import ServerProcess, free_port
from tests.server.stomp_clients import metric_sum, topic, unique


async def test_send_subscribe_and_iterate(server: ServerProcess) -> None:
    dest = topic("sdk")
    async with connect(server.ws_url, token=server.token(unique("pub"), "publisher")) as client:
        assert client.user_name is not None
        async with await client.subscribe(dest) as sub:
            for n in range(3):
                await client.send(dest, f"m{n}", receipt=True, headers=[("x-n", str(n))])
            got = []
            async for message in sub:
                got.append((message.body, message["x-n"]))
                if len(got) == 3:
                    break
        assert got == [(b"m0", "0"), (b"m1", "1"), (b"m2", "2")]


async def test_a_transaction_takes_effect_at_commit_and_not_at_all_on_abort(
    server: ServerProcess,
) -> None:
    dest = topic("sdk-tx")
    async with connect(server.ws_url, token=server.token(unique("pub"), "publisher")) as client:
        sub = await client.subscribe(dest, ack="client-individual")
        with pytest.raises(RuntimeError):
            async with client.transaction() as tx:
                await tx.send(dest, "dropped")
                raise RuntimeError("changed my mind")
        async with client.transaction() as tx:
            await tx.send(dest, "kept")
        message = await sub.get(5)
        assert message.body == b"kept"
        await client.ack(message)
        await client.send(dest, "after", receipt=True)  # the ACK was accepted: still connected
        assert (await sub.get(5)).body == b"after"


def last_applied(seats: SeatMap) -> Applied | None:
    """``seats.last_applied``, read afresh: mypy would keep the narrowing of an earlier check
    across the awaits that change it."""
    return seats.last_applied


async def test_commands_seat_map_and_resume_after_a_dropped_connection(
    server: ServerProcess,
) -> None:
    event_id = create_event(server)
    async with connect(server.ws_url, token=server.token(unique("fan"))) as client:
        seats = await client.seat_map(event_id)
        assert seats.last_applied is Applied.SNAPSHOT
        assert set(seats.statuses.values()) == {"available"}
        hold = await client.hold(event_id, seats=["S-A-1", "S-A-2"])
        assert hold.seats == ["S-A-1", "S-A-2"] and hold.event_id == event_id
        await seats.until(lambda s: s["S-A-1"] == s["S-A-2"] == "held")
        with pytest.raises(CommandError) as refused:
            await client.hold(event_id, seats=["S-A-2"])
        assert refused.value.status == 409

        resumes = "concert_hub_seatmap_resumes"
        before = await asyncio.to_thread(metric_sum, server, resumes, answer="delta")
        client.drop()  # the network fails; changes go on meanwhile
        other = unique("other")
        async with connect(server.ws_url, token=server.token(other)) as second:
            await second.hold(event_id, seats=["S-B-5"])
        await client.wait_connected()
        assert client.reconnects == 1
        await seats.until(lambda s: s["S-B-5"] == "held")
        assert last_applied(seats) is Applied.DELTA
        after = await asyncio.to_thread(metric_sum, server, resumes, answer="delta")
        assert after == before + 1, "resubscribed for a snapshot instead of resuming"
        await client.release(hold.hold_id)  # the replies' subscription came back too
        await seats.until(lambda s: s["S-A-1"] == "available")


async def test_the_seat_map_of_no_event_is_an_error_and_the_client_carries_on(
    server: ServerProcess,
) -> None:
    async with connect(server.ws_url, token=server.token(unique("lost"))) as client:
        with pytest.raises(ServerError, match="unknown event"):
            await client.seat_map(999_999)
        await client.wait_connected()  # connected again, without that subscription
        await client.ping()
        assert client.reconnects == 1


async def test_a_forbidden_subscription_is_an_error_and_not_made_again(
    server: ServerProcess,
) -> None:
    async with connect(server.ws_url, token=server.token(unique("nosy"))) as client:
        with pytest.raises(ServerError, match="forbidden destination"):
            await client.subscribe("/nowhere")
        await client.wait_connected()
        await client.ping()
        assert client.reconnects == 1


async def test_a_refused_token_is_an_error_not_a_retry(server: ServerProcess) -> None:
    with pytest.raises(ServerError, match="authentication failed"):
        async with connect(server.ws_url, token="not-a-token"):
            pass


async def test_a_lost_client_fails_what_waits_and_ends_subscriptions(
    server: ServerProcess,
) -> None:
    client = Client([server.ws_url], token=server.token(unique("u")), reconnect=False)
    await client.start()
    sub = await client.subscribe(topic("sdk-end"))
    client.drop()
    async with asyncio.timeout(5):
        assert [m async for m in sub] == []
    await client.close()


@pytest.fixture(scope="module")
def beating_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A node that wants a heart-beat every 200 ms and closes a session silent for 600 ms."""
    proc = ServerProcess(free_port(), free_port(), tmp_path_factory.mktemp("beats"),
                         {"heartbeat_ms": "200,200"})  # fmt: skip
    proc.start()
    yield proc
    proc.stop()


async def test_heart_beats_keep_an_idle_client_connected(beating_server: ServerProcess) -> None:
    token = beating_server.token(unique("idle"))
    async with connect(beating_server.ws_url, token=token, heart_beat=(200, 200)) as client:
        await asyncio.sleep(2)  # idle for many times what the server tolerates without beats
        await client.ping()
        assert client.reconnects == 0


async def _after_the_loss(call: Callable[[], Awaitable[object]]) -> BaseException:
    """What ``call`` raises once the loss is seen: a call racing it (made on the connection
    being lost) fails with ConnectionLost and is made again."""
    while True:
        try:
            await call()
        except ConnectionLost:
            continue
        except Exception as exc:
            return exc
        raise AssertionError("the call succeeded")


async def test_a_token_refused_on_a_reconnect_ends_the_client(server: ServerProcess) -> None:
    client = Client([server.ws_url], token=server.token(unique("brief"), ttl=1))
    await client.start()
    try:
        sub = await client.subscribe(topic("sdk-expired"))
        await client.ping()
        await asyncio.sleep(2.5)  # the token expires; the connection outlives it
        client.drop()  # the reconnect presents the expired token
        refused = await _after_the_loss(client.ping)
        assert isinstance(refused, ServerError), repr(refused)
        assert refused.message == "authentication failed"
        with pytest.raises(ServerError, match="authentication failed"):
            await client.wait_connected()
        with pytest.raises(ServerError, match="authentication failed"):
            await sub.get()  # the iterator ends with the error, not silently
        assert client.reconnects == 0
    finally:
        await client.close()


async def _queued(client: Client, queue: str, count: int) -> Subscription:
    for n in range(count):
        await client.send(queue, f"m{n}", receipt=True)
    return await client.subscribe(queue, ack="client-individual")


async def test_ack_and_nack_right_after_a_loss_are_no_ops(server: ServerProcess) -> None:
    queue = f"/queue/{unique('sdk-ack')}"
    async with connect(server.ws_url, token=server.token(unique("pub"), "publisher")) as client:
        sub = await _queued(client, queue, 2)
        first, second = await sub.get(5), await sub.get(5)
        client.drop()  # before the reader sees it: the sends fail on the socket
        await client.ack(first)
        await client.nack(second)
        await client.wait_connected()
        again = {(await sub.get(5)).body, (await sub.get(5)).body}
        assert again == {b"m0", b"m1"}  # redelivered: neither settlement reached the server
        await client.send(queue, "after", receipt=True)  # still connected: no ERROR


async def test_ack_while_reconnecting_is_a_no_op_and_calls_wait(
    make_server: Callable[..., ServerProcess],
) -> None:
    node = make_server()
    queue = f"/queue/{unique('sdk-ack')}"
    news = topic("sdk-tx-wait")
    token = node.token(unique("pub"), "publisher")
    # timeout: the calls made while the node is down wait for it to start again, however slowly
    async with connect(node.ws_url, token=token, timeout=120) as client:
        sub = await _queued(client, queue, 1)
        listener = await client.subscribe(news)
        message = await sub.get(5)
        await asyncio.to_thread(node.stop)
        while client.connected:  # noqa: ASYNC110  (until the reader has seen the loss)
            await asyncio.sleep(0.01)
        await client.ack(message)  # the node is gone: nothing to settle, no error

        async def publish() -> None:
            async with client.transaction() as tx:  # waits for the connection
                await tx.send(news, "committed")

        publishing = asyncio.create_task(publish())  # runs while the node is still down
        await asyncio.to_thread(node.start)
        assert node.ws_url == client.url, "the node came back on other ports"
        await publishing
        assert (await listener.get(5)).body == b"committed"
        redelivered = await sub.get(5)
        assert redelivered.body == b"m0" and redelivered.get("redelivered") == "true"
        await client.ack(redelivered)
        await client.send(queue, "after", receipt=True)
