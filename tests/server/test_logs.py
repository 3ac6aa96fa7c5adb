"""Structured logs (issue 9): node id on every line, request id on the lines of a request and
echoed as ``X-Request-Id``, session id on the lines about a session."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server import logs
from tests.conftest import ServerProcess
from tests.server.stomp_clients import RawTcp

log = logging.getLogger("tests.logs")


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Everything logged during the test, formatted as a node with --log-format json would."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("node-7"))
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def entries(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_lines_of_a_request_carry_its_id_and_the_response_echoes_it(
    json_lines: io.StringIO,
) -> None:
    async def background(n: int) -> None:
        log.info("background %d", n)

    async def handler(request: web.Request) -> web.Response:
        log.info("handling %s", request.path)
        await asyncio.create_task(background(1))  # a task started here inherits the id
        return web.json_response({"ok": True})

    async def missing(_: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    app = web.Application(middlewares=[logs.request_context])
    app.router.add_get("/a", handler)
    app.router.add_get("/missing", missing)
    async with TestClient(TestServer(app)) as client:
        given = await client.get("/a", headers={"X-Request-Id": "edge-42.a"})
        made = await client.get("/a")
        refused = await client.get("/a", headers={"X-Request-Id": "no spaces, please"})
        not_found = await client.get("/missing", headers={"X-Request-Id": "nf-1"})
    log.info("outside any request")

    assert given.headers["X-Request-Id"] == "edge-42.a"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-Id"])
    assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["X-Request-Id"])
    assert not_found.status == 404
    assert not_found.headers["X-Request-Id"] == "nf-1"

    lines = [e for e in entries(json_lines) if e["logger"] == "tests.logs"]
    assert all(e["node"] == "node-7" for e in lines)
    ids = [(e["msg"], e.get("request_id")) for e in lines]
    assert ids == [
        ("handling /a", "edge-42.a"),
        ("background 1", "edge-42.a"),
        ("handling /a", made.headers["X-Request-Id"]),
        ("background 1", made.headers["X-Request-Id"]),
        ("handling /a", refused.headers["X-Request-Id"]),
        ("background 1", refused.headers["X-Request-Id"]),
        ("outside any request", None),
    ]


def test_lines_about_a_session_carry_its_id(json_lines: io.StringIO) -> None:
    log.warning("slow consumer", extra=logs.session_extra("node-7-s12"))
    log.warning("not about a session")
    first, second = entries(json_lines)[-2:]
    assert first["session_id"] == "node-7-s12"
    assert "session_id" not in second


def test_text_lines_name_the_request_and_the_session() -> None:
    formatter = logs.TextFormatter("node-7")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, None)
    record.session_id = "node-7-s3"
    token = logs.request_id.set("r-1")
    try:
        line = formatter.format(record)
    finally:
        logs.request_id.reset(token)
    assert "[node-7]" in line
    assert line.endswith("boom request=r-1 session=node-7-s3")


def test_a_running_node_echoes_request_ids_on_rest_responses(server: ServerProcess) -> None:
    request = urllib.request.Request(
        f"{server.http_url}/api/events", headers={"X-Request-Id": "probe-1"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["X-Request-Id"] == "probe-1"
    # Problems (here 404 route_not_found) carry it too.
    request = urllib.request.Request(f"{server.http_url}/api/nowhere")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=10)
    assert error.value.code == 404
    assert re.fullmatch(r"[0-9a-f]{32}", error.value.headers["X-Request-Id"])


def test_a_running_node_names_the_session_on_its_lines_about_one(
    make_server: Callable[..., ServerProcess],
) -> None:
    node = make_server(log_format="json")
    with RawTcp.to(node) as peer:
        connected = peer.connect()
        assert connected.command == "CONNECTED", connected
        session = connected["session"]
        peer.send("SEND", [("destination", "/queue/nowhere")], b"x")
        assert peer.expect_error()["message"] == "forbidden destination"

    def about_the_session() -> list[dict[str, str]]:
        lines = [json.loads(line) for line in node.log().splitlines() if line.startswith("{")]
        return [e for e in lines if "forbidden destination" in e["msg"]]

    deadline = time.monotonic() + 10
    while not about_the_session() and time.monotonic() < deadline:
        time.sleep(0.05)
    (line,) = about_the_session()
    assert line["session_id"] == session
    assert line["node"]
