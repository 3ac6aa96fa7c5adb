"""Messages to a user kept in memory on one node and replayed once after a reconnect (issue 17).

The cluster case (Redis, another node, the admission push) is ``tests/cluster/test_user_replay.py``.
"""

from __future__ import annotations

import tracemalloc

import pytest

from server.backplane.memory import InProcessEngine, InProcessUserMessages
from server.engine import Message
from tests.cluster.test_user_replay import REPLIES, ping, replies, resume_after
from tests.server.stomp_clients import Clients, unique


def test_replies_missed_while_away_are_replayed_once(clients: Clients) -> None:
    alice = unique("alice")
    first = clients("tcp", user=alice)
    first_sub = first.subscribe(REPLIES)
    ping(first, "1")
    [(_, last_seen)] = replies(first, first_sub, 1)
    first.conn.transport.disconnect_socket()

    other = clients("ws", user=alice)
    other_sub = other.subscribe(REPLIES)
    ping(other, "2")
    missed = replies(other, other_sub, 1)

    back = clients("ws", user=alice)
    back_sub = back.subscribe(REPLIES, headers=resume_after(last_seen))
    assert replies(back, back_sub, 1) == missed
    assert back.listener.quiet("MESSAGE", 0.5) == []
    # Another user's replies are never replayed to alice, nor hers to them.
    mallory = clients("tcp", user=unique("mallory"))
    mallory.subscribe(REPLIES, headers=resume_after("*"))
    assert mallory.listener.quiet("MESSAGE", 0.5) == []


async def test_the_in_process_store_keeps_the_last_few_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr("server.backplane.memory.time.monotonic", lambda: now[0])
    engine = InProcessEngine()
    delivered: list[str] = []
    await engine.start(lambda m: delivered.append(m.message_id))
    store = InProcessUserMessages(engine, count=3, ttl_s=60, max_bytes=2**20)
    route = "/user/alice/queue/replies"
    for n in range(5):
        store.publish(Message(route, f"m{n}", (), b""))
    assert delivered == ["m0", "m1", "m2", "m3", "m4"]  # kept, and published
    assert [m.message_id for m in await store.after(route, "m3")] == ["m4"]
    assert [m.message_id for m in await store.after(route, "m0")] == ["m2", "m3", "m4"]  # gone
    assert await store.after("/user/bob/queue/replies", "*") == []
    now[0] += 61
    store.publish(Message("/user/bob/queue/replies", "b0", (), b""))
    assert await store.after(route, "*") == []
    assert list(store._kept) == ["/user/bob/queue/replies"]  # alice's expired list is dropped


async def test_the_in_process_store_has_a_total_budget() -> None:
    """Guest identities cost nothing, so the per-route bounds alone would grow with the number
    of users: over the budget, the least recently written routes lose their oldest first."""
    engine = InProcessEngine()
    await engine.start(lambda m: None)
    store = InProcessUserMessages(engine, count=100, ttl_s=300, max_bytes=20_000)
    big = b"x" * 1000
    for guest in range(30):
        route = f"/user/guest-{guest}/queue/replies"
        for n in range(2):
            store.publish(Message(route, f"{guest}.{n}", (("correlation-id", "c"),), big))
    assert store.kept_bytes <= 20_000
    last = [m.message_id for m in await store.after("/user/guest-29/queue/replies", "*")]
    assert last == ["29.0", "29.1"]  # the newest are whole
    assert await store.after("/user/guest-0/queue/replies", "*") == []  # the oldest went
    kept = [r for r in store._kept if store._kept[r]]
    assert len(kept) == 5 and kept[-1] == "/user/guest-29/queue/replies", kept


async def test_the_in_process_budget_counts_the_memory_messages_take() -> None:
    """Small replies to many users cost far more than their text: the budget counts what
    Python holds for them (it used to count a tenth, so 64 MiB meant about 700 MiB)."""
    engine = InProcessEngine()
    await engine.start(lambda m: None)
    store = InProcessUserMessages(engine, count=100, ttl_s=300, max_bytes=2**30)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(5000):
            route = f"/user/guest-{n:06d}/queue/replies"
            headers = (("content-type", "application/json"), ("correlation-id", f"c{n}"))
            for k in range(2):
                store.publish(Message(route, f"node-1-{n}-{k}", headers, b'{"type":"pong"}'))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held * 0.8 <= store.kept_bytes <= held * 2, (held, store.kept_bytes)
