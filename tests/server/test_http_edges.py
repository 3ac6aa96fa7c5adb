"""The HTTP edge's odd corners (issue 14, item 13): a request head over 8 KiB is a problem
document, a token naming no user is refused for that reason, and ``/metrics`` can want a
bearer token."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import jwt

from tests.conftest import SECRET, ServerProcess, rest
from tests.server.stomp_clients import RawTcp, http_get


def test_a_header_over_8_kib_gets_a_problem_document(server: ServerProcess) -> None:
    for path in ("/api/events", "/healthz", "/"):
        conn = http.client.HTTPConnection(server.host, server.http_port, timeout=5)
        try:
            conn.request("GET", path, headers={"X-Big": "x" * 9000})
            response = conn.getresponse()
            body = response.read()
            assert response.status == 400, body
            assert response.headers["Content-Type"].startswith("application/problem+json"), body
            problem = json.loads(body)
            assert (problem["status"], problem["kind"]) == (400, "bad_request")
            assert "8 KiB" in problem["detail"]
        finally:
            conn.close()


def test_a_malformed_request_line_gets_a_problem_document(server: ServerProcess) -> None:
    with socket.create_connection((server.host, server.http_port), timeout=5) as sock:
        sock.sendall(b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", data
    assert b"application/problem+json" in head.lower(), data
    assert json.loads(body)["kind"] == "bad_request"


def empty_sub_token() -> str:
    now = int(time.time())
    claims = {"sub": "", "role": "user", "iss": "concert-hub", "iat": now, "exp": now + 600}
    # signed as the node signs (server/auth.py: the key is derived from --secret)
    key = hashlib.sha256(b"concert-hub jwt|" + SECRET.encode()).digest()
    return jwt.encode(claims, key, algorithm="HS256")


def test_a_token_with_an_empty_subject_is_refused_for_that(server: ServerProcess) -> None:
    token = empty_sub_token()
    status, problem = rest(server, "GET", "/api/orders/none", token=token)
    assert status == 401, problem
    assert "names no user" in problem["detail"], problem
    assert "too long" not in problem["detail"]
    with RawTcp.to(server) as peer:
        error = peer.connect(token=token)
        assert error.command == "ERROR"
        assert "names no user" in error.body.decode()


def test_metrics_are_open_by_default_and_behind_the_token_when_set(
    server: ServerProcess, make_server: Callable[..., ServerProcess]
) -> None:
    assert http_get(f"{server.http_url}/metrics")[0] == 200
    node = make_server(metrics_token="scrape-me")
    url = f"{node.http_url}/metrics"
    assert http_get(url)[0] == 401
    for wrong in ("Bearer nope", "Basic scrape-me", "scrape-me"):
        status, _ = rest_raw(url, wrong)
        assert status == 401, wrong
    status, body = rest_raw(url, "Bearer scrape-me")
    assert status == 200 and "concert_hub_connections" in body
    assert http_get(f"{node.http_url}/healthz")[0] == 200  # nothing else changes


def rest_raw(url: str, authorization: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": authorization})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
