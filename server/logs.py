"""Logging set-up: human text by default, one JSON object per line with ``--log-format json``.

Every line carries the node id. A line that concerns one HTTP request carries its request id,
and a line that concerns one STOMP session its session id, so an operator can follow one of
either across a cluster's logs:

* The request id comes from :func:`request_context`, the outermost middleware: it takes the
  client's (or the proxy's) ``X-Request-Id`` when it is a short token, else makes one, keeps it
  in a context variable for everything the handler logs (tasks it starts inherit it), and
  echoes it on the response, error responses included. A WebSocket's handler runs for the whole
  connection, so its lines carry the request id of the upgrade.
* The session id is passed with the record, ``log.info(..., extra=session_extra(id))``: a TCP
  session's callbacks run outside any task of its own, so a context variable cannot carry it.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from aiohttp import web

REQUEST_ID_HEADER = "X-Request-Id"
#: What a request id taken from a client may look like (else the node makes its own).
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

#: The id of the HTTP request being handled, if any.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def session_extra(session_id: str) -> dict[str, Any]:
    """``extra=`` for a log call about one STOMP session."""
    return {"session_id": session_id}


class JsonFormatter(logging.Formatter):
    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "node": self.node_id,
            "msg": record.getMessage(),
        }
        request = getattr(record, "request_id", None) or request_id.get()
        if request:
            entry["request_id"] = request
        session = getattr(record, "session_id", None)
        if session:
            entry["session_id"] = session
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL [node] logger: message``, then ``request=…`` / ``session=…`` when known."""

    def __init__(self, node_id: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s [{node_id}] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request = getattr(record, "request_id", None) or request_id.get()
        session = getattr(record, "session_id", None)
        tags = [f"request={request}" if request else "", f"session={session}" if session else ""]
        tail = " ".join(t for t in tags if t)
        if not tail:
            return line
        first, newline, rest = line.partition("\n")  # keep a traceback below the tags
        return f"{first} {tail}{newline}{rest}"


def configure(level: str, fmt: str, node_id: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(node_id))
    else:
        handler.setFormatter(TextFormatter(node_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log is noise at info level for a WebSocket-heavy server.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def new_request_id(given: str | None) -> str:
    """The client's id when it is a short token, else a fresh one."""
    if given is not None and _VALID_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give the request an id for its log lines, and echo it as ``X-Request-Id``."""
    rid = new_request_id(request.headers.get(REQUEST_ID_HEADER))
    token = request_id.set(rid)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = rid
        raise
    finally:
        request_id.reset(token)
    if not response.prepared:  # a WebSocket or a stream has sent its headers already
        response.headers[REQUEST_ID_HEADER] = rid
    return response
