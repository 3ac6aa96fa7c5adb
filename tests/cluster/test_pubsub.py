"""Messages across the nodes of one cluster (SPEC §4, §8), with real clients on every node.

* Generic topics: stomp.py subscribers over TCP on every node and a @stomp/stompjs subscriber over
  WebSocket (Node) receive, from publishers on every node, every message exactly once and each
  publisher's messages in publish order.
* User destinations: a ``/app/ping`` reply reaches all of the user's sessions on every node and
  never another user's.
"""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.cluster.conftest import Cluster, numbered_topic, wait_until
from tests.server.stomp_clients import Client, Clients
from tests.server.test_stompjs import JS_DIR, LineReader, node_binary

PER_PUBLISHER = 60
DELIVERY_TIMEOUT_S = 15.0

#: A stompjs subscriber: connect with a token, SUBSCRIBE with a receipt, print
#: ``{"event":"subscribed"}``, collect MESSAGEs until ``expect`` arrived (plus ``settleMs`` to catch
#: duplicates) or ``timeoutMs`` passed, then print the result line and DISCONNECT.
STOMPJS_SUBSCRIBER = r"""
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

const args = JSON.parse(process.argv[1]);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const out = { received: [], errors: [], closes: [], connects: [] };
let done = false;

const client = new Client({
  webSocketFactory: () => new WebSocket(args.url, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
  connectHeaders: { login: 'stompjs', passcode: args.token },
  reconnectDelay: 0,
  heartbeatIncoming: 0,
  heartbeatOutgoing: 0,
  onConnect: (frame) => {
    out.connects.push({ ...frame.headers });
    client.watchForReceipt('js-sub-receipt', () => emit({ event: 'subscribed' }));
    client.subscribe(args.destination, (message) => {
      out.received.push({ headers: { ...message.headers }, body: message.body });
      if (out.received.length === args.expect) setTimeout(finish, args.settleMs);
    }, { id: 'js-sub', receipt: 'js-sub-receipt' });
  },
  onStompError: (frame) => out.errors.push({ headers: { ...frame.headers }, body: frame.body }),
  onWebSocketClose: (evt) => out.closes.push({ code: evt.code, reason: String(evt.reason ?? '') }),
});

async function finish(timedOut = false) {
  if (done) return;
  done = true;
  out.connected = client.connected;
  await Promise.race([client.deactivate(), new Promise((r) => setTimeout(r, 2000))]);
  emit({ result: true, ok: !timedOut, ...out });
  process.exit(0);
}

setTimeout(() => finish(true), args.timeoutMs);
client.activate();
"""


@pytest.fixture
def clients(cluster: Cluster) -> Iterator[Clients]:
    opened = Clients(cluster["a"])
    yield opened
    opened.close_all()


def _publish(client: Client, destination: str, name: str, errors: list[BaseException]) -> None:
    try:
        for n in range(PER_PUBLISHER):
            last = n == PER_PUBLISHER - 1
            headers = {"x-publisher": name, "x-n": str(n)}
            client.send(destination, f"{name}:{n}", receipt=last, headers=headers)
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def _check_stream(who: str, seen: list[tuple[str, int]], publishers: list[str]) -> None:
    """Every (publisher, n) exactly once, and per publisher in publish order."""
    expected = {(p, n) for p in publishers for n in range(PER_PUBLISHER)}
    counts = Counter(seen)
    duplicates = sorted(k for k, c in counts.items() if c > 1)
    missing = sorted(expected - set(counts))
    assert not duplicates, f"{who}: delivered more than once: {duplicates[:10]}"
    assert not missing, f"{who}: {len(missing)} never delivered, e.g. {missing[:10]}"
    assert set(counts) == expected, f"{who}: unexpected messages {set(counts) - expected}"
    for publisher in publishers:
        order = [n for p, n in seen if p == publisher]
        assert order == sorted(order), f"{who}: {publisher}'s messages out of order: {order}"


@pytest.mark.usefixtures("node_modules")
def test_every_subscriber_on_every_node_gets_every_message_once_in_order(
    cluster: Cluster, clients: Clients
) -> None:
    nodes = cluster.nodes
    destination = numbered_topic("fanout")
    subscribers = {
        f"stomp.py@{name}": clients("tcp", server=node, user=f"sub-{name}")
        for name, node in nodes.items()
    }
    for client in subscribers.values():
        client.subscribe(destination)  # waits for the RECEIPT

    js_node = cluster["c"]
    publishers = [f"pub-{name}" for name in nodes]
    total = PER_PUBLISHER * len(publishers)
    args = {
        "url": js_node.ws_url, "token": js_node.token("sub-js"), "destination": destination,
        "expect": total, "settleMs": 500, "timeoutMs": int(DELIVERY_TIMEOUT_S * 1000) + 5000,
    }  # fmt: skip
    with subprocess.Popen(
        [node_binary(), "--input-type=module", "-e", STOMPJS_SUBSCRIBER, json.dumps(args)],
        cwd=JS_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as js:  # fmt: skip
        try:
            reader = LineReader(js)
            reader.wait_for(lambda d: d.get("event") == "subscribed" or "result" in d, 15)
            senders = {
                f"pub-{name}": clients("tcp", server=node, user=f"pub-{name}", role="publisher")
                for name, node in nodes.items()
            }
            errors: list[BaseException] = []
            threads = [
                threading.Thread(target=_publish, args=(c, destination, name, errors), daemon=True)
                for name, c in senders.items()
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(DELIVERY_TIMEOUT_S)
            assert not errors, errors
            result = reader.wait_for(lambda d: "result" in d, DELIVERY_TIMEOUT_S + 10)
        finally:
            if js.poll() is None:
                js.kill()
            js.wait(5)

    for client in subscribers.values():
        with contextlib.suppress(AssertionError):  # the checks below name what is missing
            wait_until(functools.partial(_has_messages, client, total), DELIVERY_TIMEOUT_S,
                       "all messages")  # fmt: skip
    time.sleep(0.3)  # anything more would be a duplicate
    for who, client in subscribers.items():
        frames = [f for kind, f in client.listener.frames if kind == "MESSAGE" and f is not None]
        assert all(f.headers["destination"] == destination for f in frames)
        seen = [(f.headers["x-publisher"], int(f.headers["x-n"])) for f in frames]
        assert all(f.body == f"{p}:{n}" for f, (p, n) in zip(frames, seen, strict=True))
        _check_stream(who, seen, publishers)

    assert result["errors"] == [], result["errors"]
    assert result["connects"] and result["connects"][0].get("user-name") == "sub-js"
    assert result["ok"], f"stompjs got {len(result['received'])} of {total} messages"
    js_seen = [(m["headers"]["x-publisher"], int(m["headers"]["x-n"])) for m in result["received"]]
    _check_stream(f"stompjs@{js_node.flags['node_id']}", js_seen, publishers)


def _has_messages(client: Client, total: int) -> bool:
    return client.listener.count("MESSAGE") >= total


def _pongs(client: Client) -> list[str]:
    """Correlation ids of the pongs this session received so far."""
    out = []
    for kind, frame in client.listener.frames:
        if kind == "MESSAGE" and frame is not None:
            assert frame.headers["destination"] == "/user/queue/replies", frame.headers
            assert json.loads(frame.body) == {"type": "pong"}, frame.body
            out.append(frame.headers.get("correlation-id", "(none)"))
    return out


def _has_pongs(sessions: dict[str, Client], who: str, count: int) -> bool:
    return len(_pongs(sessions[who])) >= count


def test_user_replies_reach_that_users_sessions_on_every_node_only(
    cluster: Cluster, clients: Clients
) -> None:
    a, b, c = cluster["a"], cluster["b"], cluster["c"]
    sessions = {
        "alice@a": clients("tcp", server=a, user="alice"),
        "alice@b": clients("tcp", server=b, user="alice"),
        "bob@c": clients("tcp", server=c, user="bob"),
        "bob@a": clients("tcp", server=a, user="bob"),  # bob beside alice on the same node
    }
    for client in sessions.values():
        client.subscribe("/user/queue/replies")

    def ping(who: str, correlation: str) -> None:
        sessions[who].send("/app/ping", "", headers={"correlation-id": correlation})

    def settle(expected: dict[str, list[str]]) -> None:
        for who, ids in expected.items():
            count = len(ids)
            wait_until(functools.partial(_has_pongs, sessions, who, count), 10,
                       f"{who} gets {ids}")  # fmt: skip
        # A reply that should not come would come through Redis as fast as the ones that did.
        time.sleep(1.0)
        got = {who: _pongs(client) for who, client in sessions.items()}
        assert got == expected, got

    ping("alice@a", "alice-1")
    settle({"alice@a": ["alice-1"], "alice@b": ["alice-1"], "bob@c": [], "bob@a": []})
    ping("alice@b", "alice-2")
    ping("bob@c", "bob-1")
    settle({"alice@a": ["alice-1", "alice-2"], "alice@b": ["alice-1", "alice-2"],
            "bob@c": ["bob-1"], "bob@a": ["bob-1"]})  # fmt: skip
