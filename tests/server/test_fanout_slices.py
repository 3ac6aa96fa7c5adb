"""A sliced fan-out (the seat map's deltas) larger than one slice (server/broker.py ``SLICE``)
is written over several turns of the event loop, so other work runs between slices; every
subscriber still gets every message, in publication order, also when the node falls behind
(``MAX_BACKLOG``) and when other messages and direct sends are mixed in."""

from __future__ import annotations

import asyncio
import socket

import pytest

from protocol.connection import ServerConnection
from protocol.events import AckMode, Subscription
from protocol.frames import StompVersion
from protocol.limits import Limits
from server import broker as broker_module
from server.backplane.memory import InProcessEngine
from server.broker import MAX_BACKLOG, SLICE, Broker
from server.engine import Message
from server.framing import Framing, raw
from server.metrics import BrokerMetrics


class _Session:
    """A subscriber that records the bodies the broker writes to it."""

    framing: Framing = staticmethod(raw)
    closed = False  # a member of the Subscriber protocol; these sessions never close

    def __init__(self) -> None:
        self.conn = ServerConnection(Limits())
        self.conn.version = StompVersion.V1_2
        self.got: list[bytes] = []
        self.subscription: Subscription | None = None

    def push(self, payload: bytes) -> None:
        self.got.append(payload.rsplit(b"\n\n", 1)[1].rstrip(b"\0"))

    def push_tracked(self, payload: bytes, subscription: Subscription, message_id: str) -> None:
        self.push(payload)


async def _broker(subscribers: int, route: str = "/topic/t") -> tuple[Broker, list[_Session]]:
    engine = InProcessEngine()
    broker = Broker(engine, BrokerMetrics(), "n")
    await engine.start(broker.deliver)
    sessions = [_Session() for _ in range(subscribers)]
    for i, session in enumerate(sessions):
        session.subscription = Subscription(f"s{i}", route, AckMode.AUTO, [])
        broker.subscribe(session, session.subscription, route)
    return broker, sessions


def _message(broker: Broker, body: str, route: str = "/topic/t") -> Message:
    return Message(route, broker.next_id(), (), body.encode())


async def test_a_sliced_fan_out_lets_other_work_run_and_arrives_whole_and_in_order() -> None:
    broker, sessions = await _broker(2 * SLICE + 100)
    ran: list[int] = []  # how many subscribers had the first message when other work ran
    asyncio.get_running_loop().call_soon(lambda: ran.append(sum(bool(s.got) for s in sessions)))
    for n in range(6):
        broker.fan_out(_message(broker, f"m{n}"), sliced=True)
    await broker.drained()
    assert ran and ran[0] < len(sessions)  # it ran before the first message reached everyone
    expected = [f"m{n}".encode() for n in range(6)]
    assert all(session.got == expected for session in sessions)


async def test_one_fan_out_larger_than_the_backlog_bound_is_still_sliced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bound is on what is queued already: a node whose subscribers outnumber it (10,000
    buyers following the seat map) still writes each delta in slices."""
    monkeypatch.setattr(broker_module, "MAX_BACKLOG", SLICE)
    broker, sessions = await _broker(2 * SLICE + 1)
    ran: list[int] = []
    asyncio.get_running_loop().call_soon(lambda: ran.append(sum(bool(s.got) for s in sessions)))
    broker.fan_out(_message(broker, "delta"), sliced=True)
    await broker.drained()
    assert ran and ran[0] < len(sessions)
    assert all(session.got == [b"delta"] for session in sessions)


async def test_unsliced_messages_and_direct_sends_keep_their_place_behind_a_sliced_one() -> None:
    broker, sessions = await _broker(SLICE + 100)
    broker.fan_out(_message(broker, "delta"), sliced=True)
    broker.publish("/topic/t", (), b"after")  # a plain publish while the delta is queued
    last = sessions[-1]
    assert sessions[0].subscription is not None
    broker.send_to(sessions[0], sessions[0].subscription, (), b"direct")
    await broker.drained()
    assert last.got == [b"delta", b"after"]
    assert sessions[0].got == [b"delta", b"after", b"direct"]


async def test_a_node_that_falls_behind_still_delivers_everything_in_order() -> None:
    """Past MAX_BACKLOG queued recipients the broker stops queueing and writes what it holds:
    nothing is lost or reordered, for the queued recipients nor for the latest."""
    broker, sessions = await _broker(MAX_BACKLOG // 3 + 1)
    for n in range(5):  # the fourth message overflows the backlog
        broker.fan_out(_message(broker, f"m{n}"), sliced=True)
    await broker.drained()
    expected = [f"m{n}".encode() for n in range(5)]
    assert all(session.got == expected for session in sessions)


async def test_unsliced_fan_outs_are_written_at_once() -> None:
    broker, sessions = await _broker(2 * SLICE)
    broker.publish("/topic/t", (), b"now")
    assert all(session.got == [b"now"] for session in sessions)


@pytest.mark.parametrize("sliced", [False, True])
@pytest.mark.parametrize("one_id", [False, True])  # one group (browsers) | a group each
async def test_no_subscriber_is_always_written_last(sliced: bool, one_id: bool) -> None:
    """Writing a delta to 10,000 sockets takes ~100 ms: the order turns from one message to the
    next, so every subscriber is sometimes first and sometimes last."""
    broker, sessions = await _broker(2 * SLICE + 3 if sliced else 10)
    order: list[_Session] = []
    for session in sessions:

        def record(payload: bytes, s: _Session = session) -> None:
            order.append(s)

        session.push = record  # type: ignore[method-assign]
        if one_id:
            assert session.subscription is not None
            broker.unsubscribe(session, session.subscription)
            session.subscription = Subscription("sub-0", "/topic/t", AckMode.AUTO, [])
            broker.subscribe(session, session.subscription, "/topic/t")
    firsts, lasts = set(), set()
    for n in range(40 if sliced else 20):
        order.clear()
        broker.fan_out(_message(broker, f"m{n}"), sliced=sliced)
        await broker.drained()
        assert sorted(map(id, order)) == sorted(map(id, sessions))  # each once
        firsts.add(id(order[0]))
        lasts.add(id(order[-1]))
    if sliced:  # 40 turns over 503 subscribers: forty different first and last ones
        assert len(firsts) == len(lasts) == 40
    else:
        assert firsts == lasts == {id(s) for s in sessions}


def test_an_answer_that_comes_during_a_slice_is_taken_before_the_next_slice() -> None:
    """A request waiting on the database (a stream, as aiomysql's) resumes as soon as its answer
    is in: between two slices, not after one more. On the node's event loop, uvloop."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> list[str]:
        broker, sessions = await _broker(3 * SLICE)
        events: list[str] = []
        database, node_end = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=node_end)

        def answer(payload: bytes) -> None:  # the database answers while slice 1 is written
            database.send(b"x")
            events.append("slice 1")

        sessions[0].push = answer  # type: ignore[method-assign]
        sessions[SLICE].push = lambda payload: events.append("slice 2")  # type: ignore[method-assign]

        async def request() -> None:
            await reader.readexactly(1)
            events.append("answer")

        waiting = asyncio.ensure_future(request())
        await asyncio.sleep(0)
        broker.fan_out(_message(broker, "delta"), sliced=True)
        await broker.drained()
        await waiting
        writer.close()
        database.close()
        return events

    assert uvloop.run(scenario()) == ["slice 1", "answer", "slice 2"]
