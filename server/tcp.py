"""STOMP over raw TCP (SPEC §2): an asyncio Protocol feeding a :class:`StompSession`.

The listener is an aiohttp site beside the HTTP one, so the runner starts and stops both the same
way: on SIGTERM both stop accepting at once, before the sessions are drained. The workers of one
node (``--workers``) each open it with ``SO_REUSEPORT`` on the same port.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.tcp_helpers import tcp_keepalive

from server import framing
from server.session import CLOSE_GRACE_S, StompService, StompSession


class TcpSession(StompSession):
    __slots__ = ()

    framing = staticmethod(framing.raw)
    transport_name = "tcp"

    def write(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def close(self, code: int = 1000) -> None:
        """Lingering close: flush, half-close, and discard input until the peer closes.

        Closing a socket that still has unread input makes the kernel send RST, and a peer that
        was still sending (a large frame, a flood) would then lose the ERROR frame we just sent.
        So the write side is shut after the buffer drains, input is read and dropped, and the
        socket closes on the peer's EOF or after a grace period, whichever comes first.
        """
        if self.closed:
            return
        self.closed = True
        transport = self.transport
        if transport.can_write_eof():  # type: ignore[attr-defined]
            transport.write_eof()  # type: ignore[attr-defined]
        else:
            transport.close()
        asyncio.get_running_loop().call_later(CLOSE_GRACE_S, transport.abort)  # type: ignore[attr-defined]


class StompTcpProtocol(asyncio.Protocol):
    def __init__(self, service: StompService) -> None:
        self.service = service
        self.session: TcpSession | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A client that vanished without a FIN (a phone off the network) leaves a half-open
        # socket: a subscribed session without heart-beats is never idle, so only TCP
        # keep-alive finds it (aiohttp does the same for HTTP and so for /ws).
        tcp_keepalive(transport)  # type: ignore[arg-type]
        peer = transport.get_extra_info("peername")
        address = self.service.addresses.resolve(peer[0] if peer else None)
        self.session = TcpSession(self.service, transport, address)
        self.session.open()

    def data_received(self, data: bytes) -> None:
        if self.session is not None:
            self.session.data_received(data)

    def eof_received(self) -> bool:
        return False  # the peer is done sending: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None:
            self.session.connection_lost()
            self.session = None


class StompTcpSite(web.BaseSite):
    """The STOMP/TCP listener (``--stomp-port``) as a site of the node's runner."""

    __slots__ = ("_host", "_port", "_reuse_port", "_service")

    def __init__(
        self,
        runner: web.BaseRunner,
        service: StompService,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, backlog=4096)
        self._service = service
        self._host = host
        self._port = port
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"tcp://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: StompTcpProtocol(self._service),
            self._host,
            self._port,
            reuse_address=True,
            reuse_port=self._reuse_port or None,
            backlog=self._backlog,
        )
