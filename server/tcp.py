"""STOMP over raw TCP (SPEC §2): an asyncio Protocol feeding a :class:`StompSession`."""

from __future__ import annotations

import asyncio

from server import framing
from server.session import CLOSE_GRACE_S, StompService, StompSession


class TcpSession(StompSession):
    __slots__ = ()

    framing = staticmethod(framing.raw)
    transport_name = "tcp"

    def write(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]

    def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        transport = self.transport
        transport.close()
        # close() waits for the buffer to drain; a peer that never reads must not pin it.
        asyncio.get_running_loop().call_later(CLOSE_GRACE_S, transport.abort)  # type: ignore[attr-defined]


class StompTcpProtocol(asyncio.Protocol):
    def __init__(self, service: StompService) -> None:
        self.service = service
        self.session: TcpSession | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.session = TcpSession(self.service, transport)
        self.session.open()

    def data_received(self, data: bytes) -> None:
        if self.session is not None:
            self.session.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session is not None:
            self.session.connection_lost()
            self.session = None


async def start_tcp_listener(service: StompService, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: StompTcpProtocol(service), host, port, reuse_address=True, backlog=4096
    )
