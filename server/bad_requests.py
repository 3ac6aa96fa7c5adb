"""Requests aiohttp refuses before any handler or middleware sees them, answered as problems.

A request head aiohttp cannot parse — a request line or header field over 8 KiB, a malformed
line, a bad method — is answered by aiohttp's ``RequestHandler.handle_error`` with a
``text/plain`` page, and so is a failure outside every middleware. Every other error of the
node is an RFC 9457 document (:mod:`server.errors`), so :class:`NodeRunner` makes these the
same: the connection's handler is one whose ``handle_error`` answers with the problem document
of the status (``bad_request``: 400, ``internal``: 500 …) and closes the connection, as aiohttp
does. The log gets one line, not a traceback: a client's bad bytes are not a server fault.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from server.api.problems import problem_response
from server.errors import HTTP_KINDS, Problem
from server.http_connections import ConnectionGate

log = logging.getLogger(__name__)


def problem_for(status: int, exc: BaseException | None) -> Problem:
    if status >= 500:
        return Problem.of("internal", "the server failed; see its log")
    if isinstance(exc, LineTooLong):
        detail = "the request line or a header is over the 8 KiB limit"
    else:
        detail = "the HTTP request is malformed"
    kind = next((k for k, (s, _) in HTTP_KINDS.items() if s == status), "bad_request")
    return Problem(status, kind, detail)


class _ProblemRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("error handling a request from %s", request.remote, exc_info=exc)
        else:
            log.info("refused a bad request from %s: %s", request.remote, exc or message)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was sent already: cannot send the error")
        response = problem_response(problem_for(status, exc))
        response.force_close()
        return response


class _ProblemServer(web.Server):
    #: Set by :class:`NodeRunner` (the class is swapped onto aiohttp's own Server).
    gate: ConnectionGate

    def __call__(self) -> RequestHandler:
        return _ProblemRequestHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.gate.admit(handler, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.gate.release(handler)


class NodeRunner(web.AppRunner):
    """The node's runner: an :class:`aiohttp.web.AppRunner` whose connections answer the
    errors aiohttp raises itself with problem documents, and count against their client
    address's cap (:mod:`server.http_connections`)."""

    def __init__(self, app: web.Application, gate: ConnectionGate, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._gate = gate

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds its Server inside the app; only what it does per connection differs
        # here, so the Server is given those methods.
        server.__class__ = _ProblemServer
        assert isinstance(server, _ProblemServer)
        server.gate = self._gate
        return server
