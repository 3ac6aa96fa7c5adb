"""STOMP over WebSocket on asyncio: thin glue around the two sans-I/O cores.

:class:`Client` is an :class:`asyncio.Protocol`. Received bytes go to the WebSocket core
(:class:`~concert_hub_client.websocket.WebSocketClient`), the payloads it hands out to the STOMP
core (:class:`protocol.client.ClientConnection`), and the events that come out are dispatched:
a MESSAGE to the connection's message handler, CONNECTED, RECEIPT and ERROR to the futures
waiting for them. What the cores want written is written at once.

There is no task and no coroutine per connection or per message: a MESSAGE is one call of the
handler from ``data_received``, made by the STOMP core as it reads the frame. That is what lets
the fan-out benchmark hold 10,000 subscribers in one process. Without a handler, messages queue
in :attr:`Client.messages`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

from concert_hub_client.websocket import Opcode, WebSocketClient, WebSocketError
from protocol.client import (
    ClientConnection,
    Connected,
    Error,
    Headers,
    HeartBeat,
    Message,
    Receipt,
    ReceivedFrame,
)
from protocol.errors import ProtocolError
from protocol.limits import Limits

#: Subprotocols offered by default: STOMP 1.2 over WebSocket.
SUBPROTOCOLS = ("v12.stomp",)

MessageHandler = Callable[[Message], None]


class ClientError(Exception):
    """The connection failed, timed out, or the server answered with ERROR.

    The text starts with the step that failed when it happened while connecting or subscribing
    (``"WebSocket upgrade: no answer (timeout)"``).
    """


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer (timeout)"
    if isinstance(exc, ClientError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Client(asyncio.Protocol):
    """One STOMP-over-WebSocket connection (made by :func:`connect`)."""

    __slots__ = (
        "_beat",
        "_is_open",
        "_loop",
        "_receipts",
        "_ws",
        "connected",
        "error",
        "messages",
        "on_close",
        "opened",
        "stomp",
        "transport",
    )

    def __init__(
        self,
        ws: WebSocketClient,
        stomp: ClientConnection,
        on_message: MessageHandler | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._ws = ws
        self.stomp = stomp
        self.transport: asyncio.Transport | None = None
        #: Where MESSAGEs wait when no handler was given (``None`` with one).
        self.messages: asyncio.Queue[Message] | None = None
        if on_message is None:
            self.messages = asyncio.Queue()
            on_message = self.messages.put_nowait
        stomp.on_message = on_message
        #: Called once when the connection is gone (after :attr:`error` is set).
        self.on_close: Callable[[Client], None] | None = None
        #: Why the connection failed or ended (``None`` while it is up).
        self.error: str | None = None
        self.opened: asyncio.Future[None] = self._loop.create_future()
        self.connected: asyncio.Future[Connected] = self._loop.create_future()
        self._receipts: dict[str, asyncio.Future[Receipt]] = {}
        self._beat: asyncio.TimerHandle | None = None
        self._is_open = False

    # -- state ---------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.error is not None

    @property
    def subprotocol(self) -> str | None:
        return self._ws.subprotocol

    def _fail(self, error: str) -> None:
        """Record why the connection ends and fail everything still waiting."""
        if self.error is None:
            self.error = error
        waiting: list[asyncio.Future[Any]] = [self.opened, self.connected]
        waiting += self._receipts.values()
        self._receipts = {}
        for future in waiting:
            if not future.done():
                future.set_exception(ClientError(self.error))
                future.exception()  # nobody may be waiting any more; self.error keeps the reason

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)
        self.transport.write(self._ws.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        if self._beat is not None:
            self._beat.cancel()
        code = self._ws.close_code
        if exc is not None:
            self._fail(f"connection lost: {exc!r}")
        elif code is not None:
            reason = f"WebSocket closed by server: code={code} {self._ws.close_reason}"
            self._fail(reason.rstrip())
        else:
            self._fail("connection closed by server")
        if self.on_close is not None:
            self.on_close(self)

    def data_received(self, data: bytes) -> None:
        # The hot path of a subscriber: one WebSocket frame holding one MESSAGE, per socket;
        # the STOMP core hands the MESSAGE straight to the handler.
        ws = self._ws
        try:
            for _, payload in ws.receive_data(data):
                for event in self.stomp.receive_data(payload):
                    if not isinstance(event, HeartBeat):
                        self._on_frame(event)
        except (WebSocketError, ProtocolError) as exc:
            self._abort(f"bad input from the server: {_describe(exc)}")
            return
        if ws.has_data_to_send:  # pongs, the echo of a close frame
            self._write(ws.data_to_send())
        if ws.closed and self.transport is not None:
            self.transport.close()
        elif not self._is_open and ws.open:
            self._is_open = True
            if not self.opened.done():  # a refused upgrade already failed it
                self.opened.set_result(None)

    def _on_frame(self, event: ReceivedFrame) -> None:
        if isinstance(event, Receipt):
            waiter = self._receipts.pop(event.receipt_id or "", None)
            if waiter is not None and not waiter.done():
                waiter.set_result(event)
        elif isinstance(event, Connected):
            if not self.connected.done():
                self.connected.set_result(event)
            if self.stomp.heartbeat_out_ms:
                self._schedule_beat()
        elif isinstance(event, Error):
            detail = event.body.decode("utf-8", "replace").strip()
            self._fail(f"ERROR {event.message or ''}" + (f" ({detail[:200]})" if detail else ""))

    def _abort(self, error: str) -> None:
        self._fail(error)
        if self.transport is not None:
            self.transport.abort()

    # -- sending -------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _flush(self) -> None:
        """Write what the STOMP core queued as one WebSocket message."""
        if self.transport is None or self.transport.is_closing():
            raise ClientError(self.error or "connection closed")
        data = self.stomp.data_to_send()
        if data:
            self._ws.send(data, Opcode.TEXT)
            self.transport.write(self._ws.data_to_send())

    def _schedule_beat(self) -> None:
        # Beat at half the promised interval, so network delay never makes one late.
        self._beat = self._loop.call_later(self.stomp.heartbeat_out_ms / 2000, self._heartbeat)

    def _heartbeat(self) -> None:
        if self.closed:
            return
        self.stomp.heartbeat()
        with contextlib.suppress(ClientError):
            self._flush()
        self._schedule_beat()

    def expect_receipt(self, receipt_id: str) -> asyncio.Future[Receipt]:
        """A future for the RECEIPT of ``receipt_id``; ask for it before sending the frame."""
        future: asyncio.Future[Receipt] = self._loop.create_future()
        if self.closed:
            future.set_exception(ClientError(self.error))
        else:
            self._receipts[receipt_id] = future
        return future

    def send(
        self,
        destination: str,
        body: bytes = b"",
        *,
        content_type: str | None = None,
        receipt: str | None = None,
        transaction: str | None = None,
        headers: Headers = (),
    ) -> None:
        """SEND; wait for delivery with :meth:`expect_receipt` and a ``receipt`` id."""
        self.stomp.send(
            destination,
            body,
            content_type=content_type,
            receipt=receipt,
            transaction=transaction,
            headers=headers,
        )
        self._flush()

    async def subscribe(
        self,
        destination: str,
        sub_id: str,
        *,
        ack: str = "auto",
        headers: Headers = (),
        timeout: float | None = 10.0,  # noqa: ASYNC109  (the error names the step that ran out)
    ) -> Receipt:
        """SUBSCRIBE and wait for its RECEIPT, so that what is published next reaches it."""
        receipt = f"sub-{sub_id}"
        waiter = self.expect_receipt(receipt)
        self.stomp.subscribe(destination, sub_id, ack=ack, receipt=receipt, headers=headers)
        self._flush()
        try:
            return await asyncio.wait_for(waiter, timeout)
        except Exception as exc:
            raise ClientError(f"SUBSCRIBE receipt: {_describe(exc)}") from exc

    def unsubscribe(self, sub_id: str, *, receipt: str | None = None) -> None:
        self.stomp.unsubscribe(sub_id, receipt=receipt)
        self._flush()

    def ack(self, message: Message, *, transaction: str | None = None) -> None:
        self.stomp.ack(message, transaction=transaction)
        self._flush()

    def nack(self, message: Message, *, transaction: str | None = None) -> None:
        self.stomp.nack(message, transaction=transaction)
        self._flush()

    async def disconnect(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109  (best effort)
        """DISCONNECT politely: wait for its RECEIPT (all earlier frames took effect), close."""
        if not self.closed:
            waiter = self.expect_receipt("disconnect")
            self.stomp.disconnect(receipt="disconnect")
            with contextlib.suppress(ClientError, TimeoutError):
                self._flush()
                await asyncio.wait_for(waiter, timeout)
        self.close()

    def close(self) -> None:
        """Close the WebSocket (code 1000) without a STOMP goodbye."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self._ws.close(1000)
            transport.write(self._ws.data_to_send())
            transport.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()


async def connect(
    url: str,
    *,
    login: str | None = None,
    passcode: str | None = None,
    host: str | None = None,
    accept_version: Sequence[str] = ("1.2",),
    heart_beat: tuple[int, int] = (0, 0),
    headers: Headers = (),
    subprotocols: Sequence[str] = SUBPROTOCOLS,
    on_message: MessageHandler | None = None,
    limits: Limits | None = None,
    timeout: float | None = 10.0,  # noqa: ASYNC109  (the error names the step that ran out)
) -> Client:
    """Open a WebSocket to ``url`` (``ws://`` or ``wss://``), CONNECT, and wait for CONNECTED.

    Concert-Hub takes a token as ``passcode`` (any ``login``). ``host`` is the CONNECT ``host``
    header (the URL's host by default; RabbitMQ wants its virtual host, ``/``). Raises
    :class:`ClientError` naming the step that failed: TCP connect, WebSocket upgrade or STOMP
    CONNECT, each bounded by ``timeout``.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ClientError(f"not a ws:// or wss:// URL: {url!r}")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    ws = WebSocketClient(f"{parts.hostname}:{port}", path, subprotocols)
    stomp = ClientConnection(limits)
    stomp.connect(
        host=host or parts.hostname,
        accept_version=accept_version,
        login=login,
        passcode=passcode,
        heart_beat=heart_beat,
        headers=headers,
    )
    loop = asyncio.get_running_loop()
    stage = "TCP connect"
    client: Client | None = None
    try:
        async with asyncio.timeout(timeout):
            _, client = await loop.create_connection(
                lambda: Client(ws, stomp, on_message),
                parts.hostname,
                port,
                ssl=ssl.create_default_context() if secure else None,
            )
            stage = "WebSocket upgrade"
            await client.opened
            stage = "STOMP CONNECT"
            client._flush()
            await client.connected
    except Exception as exc:
        if client is not None and client.transport is not None:
            client.transport.abort()
        raise ClientError(f"{stage}: {_describe(exc)}") from exc
    return client
