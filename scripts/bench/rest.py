"""REST for benchmarks: a lean keep-alive HTTP/1.1 client for the load, urllib for set-up calls.

:class:`HttpConn` is an asyncio Protocol with one request in flight: at 10,000 joins it costs the
client about 50 µs of CPU per request against about 160 µs for aiohttp's ClientSession, which
matters when the client shares two cores with the server it measures. Answers need a
``Content-Length`` (aiohttp's responses with a body always carry one).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any, cast


class HttpError(Exception):
    pass


class HttpConn(asyncio.Protocol):
    """One keep-alive connection; :meth:`request` writes raw bytes and waits for the answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection lost: {exc!r}" if exc else "closed"))

    def data_received(self, data: bytes) -> None:
        self.buf = self.buf + data if self.buf else data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = buf[:end].lower()
        i = head.find(b"\r\ncontent-length:")
        if i < 0:
            waiter.set_exception(HttpError("answer without content-length"))
            return
        j = head.find(b"\r\n", i + 2)
        try:
            status = int(head[9:12])
            length = int(head[i + 17 : j if j >= 0 else end])
        except ValueError:
            waiter.set_exception(HttpError(f"malformed answer: {buf[:80]!r}"))
            return
        total = end + 4 + length
        if len(buf) < total:
            return
        self.buf = buf[total:]
        waiter.set_result((status, buf[end + 4 : total], b"\r\nconnection: close" not in head))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        """Write one request; the future gives (status, body, keep-alive)."""
        if self.closed or self.transport is None:
            raise HttpError("connection closed")
        self.waiter = self._loop.create_future()
        self.transport.write(raw)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def http_json(
    port: int, method: str, path: str, token: str, body: object = None, *, timeout: float = 15.0
) -> tuple[int, Any]:
    """One REST call to the node on ``port`` as ``token``: (status, decoded body)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=data,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw or b"null")
        except ValueError:
            return error.code, raw[:300].decode("utf-8", "replace")


def iso_in(seconds: float) -> str:
    """An RFC 3339 UTC instant ``seconds`` from now (negative: in the past)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def listed_nodes(port: int, admin: str) -> set[str]:
    """The node ids ``/api/admin/stats`` lists (every worker of every node, once up)."""
    try:
        status, body = http_json(port, "GET", "/api/admin/stats", admin, timeout=5)
    except OSError:
        return set()
    return {n["node_id"] for n in body["nodes"]} if status == 200 else set()
