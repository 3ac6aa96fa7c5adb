"""STOMP over WebSocket at ``/ws`` (SPEC §2).

aiohttp does the handshake and reads messages; each text or binary message is fed to the session
as bytes, so one message may hold several frames and a frame may span messages (stompjs splits
large frames). Output bypasses aiohttp's writer: broker payloads arrive already framed
(:mod:`server.framing`) and are written straight to the transport, the same bytes for every
recipient. With ``--ws-compress`` each message must be deflated per connection, so those sessions
queue output to one writer task each instead (compression trades CPU for bandwidth).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from aiohttp import WSMsgType, web

from server import framing
from server.client_addresses import FORWARDED_HEADER
from server.keys import STOMP
from server.session import CLOSE_GRACE_S, StompService, StompSession

log = logging.getLogger(__name__)

#: STOMP subprotocols, best first (SPEC §2: the server picks the highest offered).
SUBPROTOCOLS = ("v12.stomp", "v11.stomp", "v10.stomp")

#: How long the server waits for the client's close frame once its own is out (RFC 6455 §7.1.2),
#: reading and discarding whatever comes before it. A client that answers does so within a round
#: trip; one that keeps sending instead (a flood after its ERROR) is cut after this, not after
#: aiohttp's 10 s or the 5 s of ``CLOSE_GRACE_S`` (which still bounds the output's drain).
CLOSE_HANDSHAKE_S = 1.0


def choose_subprotocol(offered: str | None) -> str | None:
    if not offered:
        return None
    names = {p.strip() for p in offered.split(",")}
    return next((p for p in SUBPROTOCOLS if p in names), None)


class WebSocketSession(StompSession):
    """A session on ``/ws``; the handler task that reads its messages is its *reader*.

    Closing follows one rule. When the session fails while handling input (any protocol error),
    the reader itself closes the WebSocket after its loop: aiohttp then reads and discards the
    client's remaining messages until its close frame, so the socket does not close on unread
    input (which would make the kernel send RST and destroy the ERROR frame in flight), for
    ``CLOSE_HANDSHAKE_S`` at most: a client still sending by then is cut. Only when the
    reader is parked in ``receive()`` (a timer, the broker or shutdown closed the session) does a
    separate task close it, which is the only way to wake the reader.
    """

    __slots__ = ("_close_code", "_closer", "_reader", "ws")

    framing = staticmethod(framing.websocket)
    transport_name = "ws"

    def __init__(
        self,
        service: StompService,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        address: str | None = None,
    ) -> None:
        super().__init__(service, transport, address)
        self.ws = ws
        self._reader = asyncio.current_task()
        self._close_code: int | None = None
        self._closer: asyncio.Future[None] | None = None
        self._start_output()

    def _start_output(self) -> None:
        """Output goes straight to the transport (a compressed session queues it instead)."""

    def write(self, data: bytes) -> None:
        try:
            self.transport.write(framing.websocket(data))  # type: ignore[attr-defined]
        except RuntimeError:  # uvloop: the connection is gone, and the session not told yet
            self.closed = True

    def close(self, code: int = 1000) -> None:
        if self.closed:
            return
        self.closed = True
        self._close_code = code
        # The close handshake waits for our output to drain; a client that reads nothing never
        # lets it, so the connection (and what it buffers) is cut after the grace period.
        asyncio.get_running_loop().call_later(CLOSE_GRACE_S, self.transport.abort)  # type: ignore[attr-defined]
        if asyncio.current_task() is not self._reader:
            self._closer = asyncio.ensure_future(self._close_ws(code))

    async def _close_ws(self, code: int) -> None:
        await self.ws.close(code=code)

    async def finish(self) -> None:
        """Complete the close handshake; the reader calls this when its loop ends."""
        if self._closer is not None:
            await asyncio.shield(self._closer)
        elif self._close_code is not None:
            await self._close_ws(self._close_code)


class CompressedWebSocketSession(WebSocketSession):
    """A WebSocket session with permessage-deflate: output goes through aiohttp's writer."""

    __slots__ = ("_idle", "_outbox", "_queued", "_wakeup", "_writer")

    framing = staticmethod(framing.raw)

    def _start_output(self) -> None:
        self._outbox: deque[bytes] = deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer = asyncio.ensure_future(self._drain())

    def write(self, data: bytes) -> None:
        self._outbox.append(data)
        self._queued += len(data)
        self._idle.clear()
        self._wakeup.set()

    def push(self, payload: bytes) -> bool:
        if self.closed:
            return False
        self._send(payload)
        return not self.closed and self.queued_bytes() > self._behind_limit

    def queued_bytes(self) -> int:
        return self._queued + self.transport.get_write_buffer_size()  # type: ignore[attr-defined, no-any-return]

    async def _close_ws(self, code: int) -> None:
        await self._idle.wait()  # what was written before the close goes out first
        self._writer.cancel()
        await self.ws.close(code=code)

    async def _drain(self) -> None:
        """Send queued output in order, one writer task per session."""
        ws = self.ws
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._outbox:
                    data = self._outbox.popleft()
                    self._queued -= len(data)
                    try:
                        await ws.send_str(data.decode("utf-8"))
                    except UnicodeDecodeError:
                        await ws.send_bytes(data)
                self._idle.set()
        except (ConnectionError, RuntimeError):
            self._outbox.clear()
            self._idle.set()

    def connection_lost(self) -> None:
        self._writer.cancel()
        super().connection_lost()


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    service = request.app[STOMP]
    settings = service.settings
    protocol = choose_subprotocol(request.headers.get("Sec-WebSocket-Protocol"))
    ws = web.WebSocketResponse(
        protocols=(protocol,) if protocol else (),
        # A WebSocket message may carry several frames, so this is far above one frame's limit;
        # the STOMP parser answers an oversized frame with ERROR. Beyond this bound aiohttp
        # refuses the message itself (close 1009), keeping one message's memory bounded.
        max_msg_size=max(16 * settings.max_frame_bytes, 4 << 20),
        compress=settings.ws_compress,
        autoping=True,
        timeout=CLOSE_HANDSHAKE_S,
    )
    await ws.prepare(request)
    transport = request.transport
    assert transport is not None
    session_type = CompressedWebSocketSession if ws.compress else WebSocketSession
    address = service.addresses.resolve(request.remote, request.headers.get(FORWARDED_HEADER))
    session = session_type(service, ws, transport, address)
    session.open()
    try:
        if session.closed:  # refused (too many connections, shutting down): close from here
            await session.finish()
            return ws
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                session.data_received(msg.data.encode("utf-8"))
            elif msg.type is WSMsgType.BINARY:
                session.data_received(msg.data)
            if session.closed:
                break
        await session.finish()
    except ConnectionError as exc:
        # The client went away (a reset while aiohttp answered its pings or closed): a normal
        # end of the session, not a server error to log with a traceback.
        log.debug("session %s: connection lost: %r", session.session_id, exc)
    finally:
        session.connection_lost()
    return ws
