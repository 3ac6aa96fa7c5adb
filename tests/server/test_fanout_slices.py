"""A fan-out larger than one slice (server/broker.py ``SLICE``) is written over several turns of
the event loop; every subscriber still gets every message, in publication order, and the node
answers other clients meanwhile."""

from __future__ import annotations

import asyncio
import urllib.request

from concert_hub_client import Client, Message, connect
from protocol.connection import ServerConnection
from protocol.events import AckMode, Subscription
from protocol.frames import StompVersion
from protocol.limits import Limits
from server.backplane.memory import InProcessEngine
from server.broker import MAX_BACKLOG, SLICE, Broker
from server.framing import raw
from server.metrics import BrokerMetrics
from tests.conftest import ServerProcess
from tests.server.stomp_clients import topic, unique

SUBSCRIBERS = 2 * SLICE + 100
MESSAGES = 6


async def test_messages_to_more_subscribers_than_a_slice_all_arrive_in_order(
    server: ServerProcess,
) -> None:
    dest = topic("slices")
    received: list[list[bytes]] = [[] for _ in range(SUBSCRIBERS)]
    everything = asyncio.Event()
    complete = 0

    def handler(i: int) -> object:
        def on_message(message: Message) -> None:
            nonlocal complete
            received[i].append(message.body)
            if len(received[i]) == MESSAGES:
                complete += 1
                if complete == SUBSCRIBERS:
                    everything.set()

        return on_message

    sem = asyncio.Semaphore(64)

    async def subscriber(i: int) -> Client:
        async with sem:
            client = await connect(
                server.ws_url, passcode=server.token(unique("s")), on_message=handler(i)
            )
            await client.subscribe(dest, "sub-0")
            return client

    subscribers = await asyncio.gather(*(subscriber(i) for i in range(SUBSCRIBERS)))
    pub = await connect(server.ws_url, passcode=server.token(unique("pub"), "publisher"))
    try:
        for n in range(MESSAGES):
            pub.send(dest, f"m{n}".encode())
        # the node serves a REST request while the slices go out (the answer is what counts)
        health = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"{server.http_url}/healthz", timeout=30).status
        )
        assert health == 200
        await asyncio.wait_for(everything.wait(), 60)
        expected = [f"m{n}".encode() for n in range(MESSAGES)]
        assert all(got == expected for got in received)
    finally:
        await pub.disconnect()
        for client in subscribers:
            client.close()


class _Session:
    """A subscriber that records what the broker writes to it (the broker's view of one)."""

    framing = staticmethod(raw)

    def __init__(self) -> None:
        self.conn = ServerConnection(Limits())
        self.conn.version = StompVersion.V1_2
        self.got: list[bytes] = []

    def push(self, payload: bytes) -> None:
        self.got.append(payload)

    def push_tracked(self, payload: bytes, subscription: Subscription, message_id: str) -> None:
        self.got.append(payload)


async def test_a_node_that_falls_behind_still_delivers_everything_in_order() -> None:
    """Past MAX_BACKLOG queued recipients the broker stops queueing and writes what it holds:
    nothing is lost or reordered, for the queued recipients nor for the latest."""
    engine = InProcessEngine()
    broker = Broker(engine, BrokerMetrics(), "n")
    await engine.start(broker.deliver)
    sessions = [_Session() for _ in range(MAX_BACKLOG // 3 + 1)]
    for i, session in enumerate(sessions):
        broker.subscribe(session, Subscription(f"s{i}", "/topic/t", AckMode.AUTO, []), "/topic/t")
    for n in range(5):  # the fourth message overflows the backlog
        broker.publish("/topic/t", (), f"m{n}".encode())
    await broker.drained()
    for session in sessions:
        assert [p.rsplit(b"\n\n", 1)[1].rstrip(b"\0") for p in session.got] == [
            f"m{n}".encode() for n in range(5)
        ]
