"""The real @stomp/stompjs client (Node, over the ``ws`` package) against a real server.

Each test runs one scenario of ``tests/js/scenario.mjs`` in a Node subprocess and asserts what a
stompjs user would notice: CONNECTED headers, delivered messages, ERROR frames, receipts,
reconnects, heart-beats. On failure the Node debug log and the server log written during the
scenario are printed (pytest shows captured stdout of failing tests).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from booking.keyring import Keyring
from server.auth import TokenAuthority
from tests.conftest import ServerProcess

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCENARIO = JS_DIR / "scenario.mjs"

pytestmark = pytest.mark.usefixtures("node_modules")

Result = dict[str, Any]


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH (Node >= 18 is needed for the stompjs tests)")
    return node


def log_offset(server: ServerProcess) -> int:
    try:
        return server.log_path.stat().st_size
    except OSError:
        return 0


def print_evidence(
    name: str, server: ServerProcess, offset: int, stderr: str, result: object
) -> None:
    """Printed for every run; pytest only shows it when the test fails."""
    print(f"===== stompjs scenario {name}: result =====")
    print(json.dumps(result, indent=1, ensure_ascii=False)[:20000])
    print(f"===== stompjs scenario {name}: node debug log (tail) =====")
    print(stderr[-15000:])
    print(f"===== server log during scenario {name} ({server.log_path}) =====")
    try:
        with server.log_path.open("rb") as log:
            log.seek(offset)
            print(log.read().decode(errors="replace")[-15000:])
    except OSError as exc:
        print(f"(no server log: {exc})")


def parse_result(name: str, stdout: str) -> Result | None:
    for raw in reversed(stdout.splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            data: Result = json.loads(line)
            if data.get("result"):
                return data
    return None


def run_scenario(
    name: str, args: dict[str, Any], server: ServerProcess, timeout: float = 60
) -> Result:
    """Run one scenario to completion and return its result line (asserting it completed)."""
    offset = log_offset(server)
    args = {"url": server.ws_url, **args}
    proc = subprocess.run(
        [node_binary(), str(SCENARIO), name, json.dumps(args)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    result = parse_result(name, proc.stdout)
    print_evidence(name, server, offset, proc.stderr, result or proc.stdout)
    assert result is not None, f"scenario {name} printed no result (exit {proc.returncode})"
    assert result["ok"], f"scenario {name} did not complete: {result}"
    return result


def creds(token: str) -> dict[str, Any]:
    """A stompjs client spec presenting ``token`` as the CONNECT passcode."""
    return {"headers": {"login": "stompjs", "passcode": token}}


def only_message(result: Result) -> Result:
    received: list[Result] = result["received"]
    assert len(received) == 1, f"expected exactly one MESSAGE, got {len(received)}"
    return received[0]


def error_messages(report: Result) -> list[str]:
    return [frame["headers"].get("message", "") for frame in report["stompErrors"]]


def topic(prefix: str) -> str:
    return f"/topic/stompjs/{prefix}-{uuid.uuid4().hex[:12]}"


# --- 1. connect, anonymous, publish/subscribe ---------------------------------------------------


@pytest.mark.parametrize("how", ["passcode", "authorization-header"])
def test_connect_with_token_reports_user_name(server: ServerProcess, how: str) -> None:
    token = server.token("alice", "user")
    spec = creds(token) if how == "passcode" else {"headers": {"Authorization": f"Bearer {token}"}}
    result = run_scenario("connect", {"client": spec}, server)

    assert result["connected"], "stompjs never got CONNECTED"
    client = result["client"]
    connected = client["connects"][0]
    assert connected["user-name"] == "alice"
    assert connected["version"] == "1.2"
    assert connected["server"].startswith("concert-hub/")
    assert connected.get("session")
    assert client["wsProtocols"] == ["v12.stomp"]
    assert client["stompErrors"] == []


def test_permessage_deflate_off_by_default(server: ServerProcess) -> None:
    result = run_scenario("connect", {"client": {}}, server)
    assert result["connected"]
    # The ws client offers permessage-deflate; the server must not accept it by default.
    assert result["client"]["wsExtensions"] == [""]


def test_anonymous_subscriber_receives_publisher_announcement(server: ServerProcess) -> None:
    body = json.dumps({"id": "a1", "level": "info", "text": "Doors open at 19:00"})
    headers = {
        "content-type": "application/json",
        "x-trace-id": "trace-123",
        "x-origin": "stompjs",
        "priority": "7",
    }
    result = run_scenario(
        "pubsub",
        {
            "subscriber": {},
            "publisher": creds(server.token("pub", "publisher")),
            "destination": "/topic/announcements",
            "sends": [{"headers": headers, "body": {"text": body}}],
        },
        server,
    )

    assert result["subscriberConnected"], "anonymous stompjs client could not connect"
    assert "user-name" not in result["subscriber"]["connects"][0]
    assert result["subscription"]["receipt"] is not None, "no RECEIPT for the SUBSCRIBE"
    assert result["publisherConnected"]
    assert result["publisher"]["stompErrors"] == []
    msg = only_message(result)
    assert msg["command"] == "MESSAGE"
    assert msg["text"] == body
    for name, value in headers.items():
        assert msg["headers"].get(name) == value, name
    assert msg["headers"]["destination"] == "/topic/announcements"
    assert msg["headers"]["subscription"] == result["subscription"]["id"]
    assert msg["headers"].get("message-id")
    assert msg["headers"]["content-length"] == str(len(body.encode()))
    assert result["subscriber"]["stompErrors"] == []


def test_escaped_header_values_survive_round_trip(server: ServerProcess) -> None:
    headers = {
        "x-colon": "seat:A-12",
        "x-backslash": "C:\\tickets\\a",
        "x-newline": "line one\nline two",
        "x-unicode": "Zürich \u2013 東京",
    }
    result = run_scenario(
        "pubsub",
        {
            "subscriber": creds(server.token("sub", "user")),
            "publisher": creds(server.token("pub", "publisher")),
            "destination": topic("escape"),
            "sends": [{"headers": headers, "body": {"text": "x"}}],
        },
        server,
    )
    msg = only_message(result)
    for name, value in headers.items():
        assert msg["headers"].get(name) == value, name


# --- 2. large frames ----------------------------------------------------------------------------


def test_large_frame_split_into_websocket_chunks_arrives_intact(server: ServerProcess) -> None:
    body = "".join(f"{i:05d}," for i in range(10_000))  # 60,000 bytes, order-sensitive
    assert len(body) == 60_000
    result = run_scenario(
        "pubsub",
        {
            "subscriber": creds(server.token("sub", "user")),
            "publisher": {
                **creds(server.token("pub", "publisher")),
                "config": {"splitLargeFrames": True, "maxWebSocketChunkSize": 1024},
            },
            "destination": topic("large"),
            "sends": [{"headers": {"content-type": "text/plain"}, "body": {"text": body}}],
        },
        server,
    )

    assert result["publisher"]["chunksSent"] >= 59, "stompjs did not split the frame"
    assert result["publisher"]["stompErrors"] == []
    msg = only_message(result)
    assert msg["bytesLength"] == 60_000
    assert msg["sha256"] == hashlib.sha256(body.encode()).hexdigest()
    assert msg["headers"]["content-length"] == "60000"


@pytest.mark.parametrize("split", [True, False], ids=["split-1024", "one-ws-message"])
def test_frame_over_limit_gets_error_and_connection_closes(
    server: ServerProcess, split: bool
) -> None:
    # split-1024: how stompjs users send big frames (SPEC §2); the ERROR must still reach them
    # although the rest of the frame is still in flight when the server gives up on it.
    config = {"splitLargeFrames": True, "maxWebSocketChunkSize": 1024} if split else {}
    result = run_scenario(
        "pubsub",
        {
            "subscriber": creds(server.token("sub", "user")),
            "publisher": {**creds(server.token("pub", "publisher")), "config": config},
            "destination": topic("too-large"),
            "sends": [{"body": {"repeat": "x", "count": 70_000}}],
            "expect": 1,
            "stopOnPublisherError": True,
            "settleMs": 300,
        },
        server,
    )

    publisher = result["publisher"]
    assert error_messages(publisher) == ["frame too large"]
    assert publisher["wsCloses"], "connection not closed after ERROR"
    assert not result["publisherStillConnected"]
    assert result["received"] == [], "oversized frame was delivered"
    assert result["subscriberStillConnected"], "other session affected"


# --- 3./4. binary and text bodies ---------------------------------------------------------------


def test_binary_body_with_nul_bytes_round_trip(server: ServerProcess) -> None:
    payload = b"\x00\x00start\x00" + bytes(range(256)) * 2 + b"\x00end\x00"
    binary = {"config": {"forceBinaryWSFrames": True}}
    result = run_scenario(
        "pubsub",
        {
            "subscriber": {**creds(server.token("sub", "user")), **binary},
            "publisher": {**creds(server.token("pub", "publisher")), **binary},
            "destination": topic("binary"),
            "sends": [
                {
                    "headers": {"content-type": "application/octet-stream"},
                    "body": {"base64": base64.b64encode(payload).decode()},
                }
            ],
        },
        server,
    )

    assert result["publisher"]["stompErrors"] == []
    msg = only_message(result)
    assert base64.b64decode(msg["base64"]) == payload
    assert msg["headers"]["content-length"] == str(len(payload))
    assert msg["headers"]["content-type"] == "application/octet-stream"


def test_utf8_text_body_round_trip(server: ServerProcess) -> None:
    body = "Grüße aus Köln \u2013 東京ドーム 🎫🎶 ñandú"
    result = run_scenario(
        "pubsub",
        {
            "subscriber": creds(server.token("sub", "user")),
            "publisher": creds(server.token("pub", "publisher")),
            "destination": topic("utf8"),
            "sends": [
                {"headers": {"content-type": "text/plain;charset=utf-8"}, "body": {"text": body}}
            ],
        },
        server,
    )

    msg = only_message(result)
    assert msg["text"] == body
    assert msg["headers"]["content-length"] == str(len(body.encode("utf-8")))
    assert msg["headers"]["content-type"] == "text/plain;charset=utf-8"


# --- 5. reconnect + resubscribe -----------------------------------------------------------------


class LineReader:
    """Collects a subprocess's stdout lines on a thread so the test can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        self._stdout = proc.stdout
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self._stdout:
            self.lines.put(line)

    def wait_for(self, accept: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; node printed: {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line.rstrip())
            if line.startswith("{"):
                data: dict[str, Any] = json.loads(line)
                if accept(data):
                    return data

    def join(self, timeout: float = 5) -> None:
        self._thread.join(timeout)


def test_reconnect_and_resubscribe_after_server_restart(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    node = make_server()
    destination = topic("reconnect")
    args = {
        "url": node.ws_url,
        "subscriber": {
            **creds(node.token("sub", "user")),
            "config": {"reconnectDelay": 200},
        },
        "publisher": creds(node.token("pub", "publisher")),
        "destination": destination,
        "restartWaitMs": 30_000,
        "timeoutMs": 60_000,
    }
    offset = log_offset(node)
    stderr_path = tmp_path / "node-stderr.log"
    replacement = None
    result: dict[str, Any] | None = None
    stop_code: int | None = None
    try:
        with (
            stderr_path.open("w") as stderr,
            subprocess.Popen(
                [node_binary(), str(SCENARIO), "reconnect", json.dumps(args)],
                cwd=JS_DIR,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            ) as proc,
        ):
            reader = LineReader(proc)
            try:
                reader.wait_for(lambda d: d.get("event") == "ready" or "result" in d, 20)
                stop_code = node.stop()
                replacement = dataclasses.replace(node, proc=None)
                replacement.start()
                result = reader.wait_for(lambda d: "result" in d, 60)
            finally:
                if proc.poll() is None:
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
                reader.join()
    finally:
        if replacement is not None:
            replacement.stop()
        print_evidence("reconnect", node, offset, stderr_path.read_text(errors="replace"), result)

    assert result is not None
    assert result["ok"], result
    subscriber = result["subscriber"]
    texts = [m["text"] for m in result["received"]]
    assert "before" in texts, "subscription did not work before the restart"
    assert len(subscriber["connects"]) >= 2, "stompjs did not reconnect (onConnect ran once)"
    assert len(result["subscriptions"]) >= 2, "onConnect did not resubscribe"
    assert all(s["receipt"] is not None for s in result["subscriptions"])
    assert result["after"]["receipt"] is not None, "publisher SEND after restart not receipted"
    assert "after" in texts, "message published after the restart was not received"
    # SIGTERM behaviour as the stompjs user sees it (SPEC §1).
    assert stop_code == 0
    assert "server shutting down" in error_messages(subscriber)
    assert subscriber["wsCloses"][0]["code"] == 1001


# --- 6. ACL -------------------------------------------------------------------------------------


def test_anonymous_send_is_forbidden(server: ServerProcess) -> None:
    result = run_scenario(
        "error",
        {
            "client": {},
            "actions": [
                {
                    "send": {
                        "destination": "/topic/announcements",
                        "headers": {"receipt": "anon-send-1"},
                        "body": {"text": "hello"},
                    }
                }
            ],
        },
        server,
    )

    assert result["connected"], "anonymous connect failed"
    client = result["client"]
    assert error_messages(client) == ["forbidden destination"]
    assert client["stompErrors"][0]["headers"].get("receipt-id") == "anon-send-1"
    assert client["wsCloses"], "connection not closed after ERROR"
    assert client["sockets"] == 1


@pytest.mark.parametrize("kind", ["garbage", "wrong-secret", "expired"])
def test_bad_token_gets_authentication_failed(server: ServerProcess, kind: str) -> None:
    other = TokenAuthority(Keyring("some-other-secret-that-is-long-enough-for-hs256"))
    token = {
        "garbage": "not-a-token",
        "wrong-secret": other.issue("mallory", "admin"),
        "expired": server.token("alice", "user", -60),
    }[kind]
    result = run_scenario("error", {"client": creds(token)}, server)

    assert not result["connected"], "bad token was accepted"
    client = result["client"]
    assert error_messages(client) == ["authentication failed"]
    assert client["wsCloses"], "connection not closed after ERROR"


def test_user_replies_reach_only_that_users_sessions(server: ServerProcess) -> None:
    result = run_scenario(
        "ping",
        {
            "a": creds(server.token("user-a", "user")),
            "b": creds(server.token("user-b", "user")),
            "correlationB": "corr-b-42",
            "correlationA": "corr-a-7",
        },
        server,
    )

    assert all(result["connected"].values()), result["connected"]
    assert all(s["receipt"] is not None for s in result["subscriptions"].values())
    after_b = result["afterB"]
    for session in ("b1", "b2"):
        assert len(after_b[session]) == 1, f"B session {session} got {len(after_b[session])} pongs"
        pong = after_b[session][0]
        assert json.loads(pong["text"]) == {"type": "pong"}
        assert pong["headers"]["correlation-id"] == "corr-b-42"
        assert pong["headers"]["content-type"].startswith("application/json")
        assert pong["headers"]["destination"] == "/user/queue/replies"
    assert after_b["a"] == [], "user A received user B's pong"
    # A's own ping reaches A only: A's subscription was live all along.
    final = result["final"]
    assert [m["headers"]["correlation-id"] for m in final["a"]] == ["corr-a-7"]
    assert len(final["b1"]) == 1
    assert len(final["b2"]) == 1


# --- 7. receipts --------------------------------------------------------------------------------


def test_receipts_fire_for_send_and_disconnect(server: ServerProcess) -> None:
    result = run_scenario(
        "pubsub",
        {
            "subscriber": {},
            "publisher": creds(server.token("pub", "publisher")),
            "destination": "/topic/announcements",
            "sends": [{"body": {"text": "with receipt"}, "receipt": True}],
        },
        server,
    )

    publisher = result["publisher"]
    [receipt_id] = result["sendReceipts"]
    assert receipt_id in publisher["receipts"], "watchForReceipt callback never fired"
    assert publisher["receipts"][receipt_id]["receipt-id"] == receipt_id
    # client.deactivate() sends DISCONNECT with a receipt; onDisconnect fires on its RECEIPT.
    assert len(publisher["disconnects"]) == 1
    assert publisher["disconnects"][0]["receipt-id"].startswith("close-")
    assert only_message(result)["text"] == "with receipt"


# --- 8. heart-beats -----------------------------------------------------------------------------


def test_heartbeats_keep_idle_connection_open(make_server: Callable[..., ServerProcess]) -> None:
    node = make_server(heartbeat_ms="1000,1000")
    result = run_scenario(
        "heartbeat",
        {
            "client": {
                **creds(node.token("idle", "user")),
                "config": {"heartbeatIncoming": 1000, "heartbeatOutgoing": 1000},
            },
            "idleMs": 4000,
        },
        node,
    )

    assert result["connected"]
    assert result["client"]["connects"][0]["heart-beat"] == "1000,1000"
    assert result["errorsDuringIdle"] == []
    assert result["closesDuringIdle"] == [], "connection dropped while idle"
    assert result["connectedAfterIdle"]
    assert result["pingsSentDuringIdle"] >= 3, "stompjs did not send heart-beats"
    assert result["pongsReceivedDuringIdle"] >= 2, "server did not send heart-beats"
    assert result["receiptAfterIdle"] is not None, "session unusable after idling"
