"""The Python SDK: Concert-Hub over STOMP on WebSocket, for integrations and scripts.

::

    async with connect("ws://127.0.0.1:8080/ws", token=token) as client:  # role publisher
        async with await client.subscribe("/topic/news") as news:
            await client.send("/topic/news", b"hello", receipt=True)
            message = await anext(news)
        seats = await client.seat_map(1)         # kept up to date, resumed after reconnects
        await client.ping()                      # an /app command, answered by correlation-id

(README, "Python SDK", for holds behind a waiting room and which role each call needs.)

Built on the ``websockets`` library (its asyncio client) and the project's sans-I/O STOMP client
(:mod:`protocol.client`), with the SDK's own state in :mod:`concert_hub_client.state`. One
:class:`Client` is one logical connection: it reconnects by itself (to the next URL given, with a
backoff) and subscribes again to everything it had, seat maps with ``resume-seq`` and user queues
with ``resume-after``, so a subscriber sees no gap and misses no reply. Receipts are futures;
``/app`` commands are requests answered on ``/user/queue/replies`` or ``errors`` by
``correlation-id``.

The benchmarks do not use this: :mod:`concert_hub_client.connection` is the cheap hand-written
core that reads 10,000 connections in one process with no task per connection (README, "Python
SDK", for which tests and benchmarks use which client, and why).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection as WebSocket
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.typing import Subprotocol

from concert_hub_client.state import (
    Applied,
    CommandError,
    Hold,
    QueuePosition,
    ResumePoint,
    SeatMapState,
    parse_reply,
    seats_destination,
)
from protocol.client import ClientConnection, Connected, Error, Message, Receipt
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)

SUBPROTOCOLS = ("v12.stomp",)
REPLIES = "/user/queue/replies"
ERRORS = "/user/queue/errors"
#: Failures after which the client connects again.
TRANSIENT = (WebSocketException, OSError, ProtocolError, TimeoutError)
#: Longest wait between two reconnect attempts.
MAX_BACKOFF_S = 5.0
#: The ERROR for a refused token: it ends the client (on any connection, not only the first).
AUTHENTICATION_FAILED = "authentication failed"


class ConnectionLost(Exception):
    """The connection went away before the awaited answer came (it may be reconnecting)."""


class ServerError(Exception):
    """The server answered with ERROR (and closed the connection)."""

    def __init__(self, message: str, detail: str) -> None:
        self.message = message
        self.detail = detail
        super().__init__(f"{message}: {detail}" if detail else message)


class Subscription:
    """One subscription: an async iterator of its MESSAGEs (``async for m in sub``)."""

    def __init__(self, client: Client, sub_id: str, destination: str, ack: str,
                 headers: Sequence[tuple[str, str]]) -> None:  # fmt: skip
        self.client = client
        self.id = sub_id
        self.destination = destination
        self.ack = ack
        self.headers = list(headers)
        self.resume = ResumePoint(destination)
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self.closed = False
        #: Why the client ended (a :class:`ServerError` such as a token refused on a reconnect):
        #: raised by the iteration once the messages before it are taken.
        self.error: BaseException | None = None
        #: Called with each MESSAGE before it is queued (a seat map applies it).
        self.on_message: Callable[[Message], None] | None = None

    def _deliver(self, message: Message) -> None:
        self.resume.last_message_id = message.message_id
        if self.on_message is not None:
            self.on_message(message)
        self._queue.put_nowait(message)

    def _end(self, why: BaseException | None = None) -> None:
        self.closed = True
        if why is not None and self.error is None:
            self.error = why
        self._queue.put_nowait(None)

    def resume_headers(self) -> list[tuple[str, str]]:
        return self.resume.headers()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        if not (self.closed and self._queue.empty()):
            message = await self._queue.get()
            if message is not None:
                return message
        if self.error is not None:
            raise self.error
        raise StopAsyncIteration

    async def get(self, timeout: float | None = None) -> Message:  # noqa: ASYNC109
        """The next MESSAGE, waiting at most ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    async def unsubscribe(self) -> None:
        await self.client._unsubscribe(self)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.unsubscribe()


class SeatMap(Subscription):
    """An event's live seat map: :attr:`statuses` as of :attr:`seq`, kept up to date."""

    def __init__(self, client: Client, sub_id: str, event_id: int) -> None:
        super().__init__(client, sub_id, seats_destination(event_id), "auto", ())
        self.state = SeatMapState(event_id)
        #: How the latest message was applied (a resume's answer is a ``DELTA``).
        self.last_applied: Applied | None = None
        #: Why the map never got its first message (then it is not subscribed again).
        self.failed: BaseException | None = None
        self._changed = asyncio.Event()
        self.on_message = self._apply

    @property
    def seq(self) -> int:
        return self.state.seq

    @property
    def statuses(self) -> dict[str, str]:
        return self.state.statuses

    def resume_headers(self) -> list[tuple[str, str]]:
        return self.resume.headers(self.state.seq)

    def _apply(self, message: Message) -> None:
        self.last_applied = self.state.apply(message.body)
        if self.last_applied is Applied.GAP:
            log.warning("seat map %d: seq gap after %d; subscribing again", self.state.event_id,
                        self.state.seq)  # fmt: skip
            self.state.forget()
            self.client._resubscribe(self)
        self._changed.set()

    async def changed(self) -> dict[str, str]:
        """Wait for the next message applied; the map after it."""
        if not self.closed:
            self._changed.clear()
            await self._changed.wait()
        if self.failed is not None:
            raise self.failed
        if self.closed:
            raise ConnectionLost("the seat map is closed")
        return self.statuses

    def _fail(self, why: BaseException) -> None:
        """The connection died before the first message (the server refused the event, say)."""
        self.failed = why
        self._changed.set()
        super()._end()

    def _end(self, why: BaseException | None = None) -> None:
        if why is not None and self.failed is None:
            self.failed = why
        super()._end(why)
        self._changed.set()

    async def until(self, check: Callable[[dict[str, str]], bool]) -> dict[str, str]:
        """Wait until ``check(statuses)`` holds."""
        while not (self.state.ready and check(self.statuses)):
            await self.changed()
        return self.statuses


class Transaction:
    """``async with client.transaction() as tx``: SENDs and ACKs take effect at COMMIT (on a
    clean exit, awaited by receipt), or are dropped by ABORT (on an exception)."""

    def __init__(self, client: Client, tx_id: str) -> None:
        self.client = client
        self.id = tx_id

    async def send(self, destination: str, body: bytes | str = b"", **kw: Any) -> None:
        await self.client.send(destination, body, transaction=self.id, **kw)

    async def ack(self, message: Message) -> None:
        await self.client.ack(message, transaction=self.id)

    async def nack(self, message: Message) -> None:
        await self.client.nack(message, transaction=self.id)

    async def __aenter__(self) -> Transaction:
        await self.client.wait_connected()  # during a reconnect, as every call does
        self.client._stomp().begin(self.id)
        await self.client._flush()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:  # fmt: skip
        if kind is None:
            client = self.client
            await client._with_receipt(lambda r: client._stomp().commit(self.id, receipt=r))
        else:
            with contextlib.suppress(ConnectionLost, ServerError):
                self.client._stomp().abort(self.id)
                await self.client._flush()


class Client:
    """One logical STOMP connection to Concert-Hub (made by :func:`connect`)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        token: str | None = None,
        heart_beat: tuple[int, int] = (10000, 10000),
        reconnect: bool = True,
        timeout: float = 10.0,
    ) -> None:
        if not urls:
            raise ValueError("no URL to connect to")
        self.urls = list(urls)
        self.token = token
        self.heart_beat = heart_beat
        self.reconnect = reconnect
        self.timeout = timeout
        #: The CONNECTED frame of the current connection.
        self.connected_frame: Connected | None = None
        #: How many times the connection was made again after it was lost.
        self.reconnects = 0
        self._ids = itertools.count(1)
        self._subscriptions: dict[str, Subscription] = {}
        self._receipts: dict[str, asyncio.Future[Receipt]] = {}
        self._requests: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._replies: list[Subscription] = []
        self._ws: WebSocket | None = None
        self._conn: ClientConnection | None = None
        self._up = asyncio.Event()
        #: Set when the client ended (closed, or a fatal error): wakes what waits for ``_up``.
        self._ended = asyncio.Event()
        self._closing = False
        self._fatal: BaseException | None = None
        self._runner: asyncio.Task[None] | None = None
        self._url_index = 0
        #: Which connection this is (1, 2 …): a MESSAGE of an earlier one cannot be settled.
        self.generation = 0
        self._delivered: dict[str, int] = {}

    # -- the connection --------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.urls[self._url_index % len(self.urls)]

    @property
    def connected(self) -> bool:
        """Whether the connection is up now (not lost, reconnecting or ended)."""
        return self._up.is_set()

    @property
    def user_name(self) -> str | None:
        return self.connected_frame.get("user-name") if self.connected_frame else None

    async def start(self) -> Client:
        await self._open()  # the first connection's failure is the caller's
        self._runner = asyncio.create_task(self._run(), name="concert-hub-client")
        return self

    async def _open(self) -> None:
        ws = await ws_connect(self.url, subprotocols=[Subprotocol(p) for p in SUBPROTOCOLS],
                              open_timeout=self.timeout, ping_interval=None,
                              max_size=16 << 20)  # fmt: skip
        conn = ClientConnection()
        conn.connect(host="/", passcode=self.token, heart_beat=self.heart_beat)
        await ws.send(conn.data_to_send().decode())
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    data = await ws.recv()
                    events = conn.receive_data(data.encode() if isinstance(data, str) else data)
                    error = next((e for e in events if isinstance(e, Error)), None)
                    if error is not None:
                        raise ServerError(error.message or "error", error.body.decode())
                    found = next((e for e in events if isinstance(e, Connected)), None)
                    if found is not None:
                        break
            subscriptions = list(self._subscriptions.values())
            for sub in subscriptions:
                conn.subscribe(sub.destination, sub.id, ack=sub.ack,
                               headers=[*sub.headers, *sub.resume_headers()])  # fmt: skip
            data = conn.data_to_send()
            if data:
                await ws.send(data.decode("utf-8") if data.isascii() else data)
        except BaseException:
            await ws.close()
            raise
        for sub in subscriptions:
            sub.resume.subscribed = True
        self._ws, self._conn, self.connected_frame = ws, conn, found
        self.generation += 1
        self._delivered.clear()
        self._up.set()

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._serve()
            except ServerError as exc:
                self._lost(exc)
                if exc.message == AUTHENTICATION_FAILED or not self.reconnect:
                    self._end_client(exc)
                    return
            except TRANSIENT as exc:
                self._lost(ConnectionLost(str(exc) or type(exc).__name__))
            except Exception as exc:  # a bug here must not leave the client hanging
                log.exception("the connection's reader failed")
                self._lost(ConnectionLost(f"internal error: {exc!r}"))
            if self._closing or not self.reconnect:
                self._end_client(self._fatal or ConnectionLost("the connection is closed"))
                return
            while not self._closing:
                self._url_index += 1
                await asyncio.sleep(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                try:
                    await self._open()
                except (ServerError, *TRANSIENT) as exc:
                    if isinstance(exc, ServerError) and exc.message == AUTHENTICATION_FAILED:
                        # The token expired or was revoked meanwhile: another try would only
                        # be refused again. End the client as the first connection would.
                        log.warning("reconnect to %s refused: %s", self.url, exc)
                        self._end_client(exc)
                        return
                    log.info("reconnect to %s failed: %s", self.url, exc)
                    continue
                self.reconnects += 1
                backoff = 0.1
                break

    async def _serve(self) -> None:
        """Read the connection until it ends; keep heart-beats both ways."""
        ws, conn = self._ws, self._conn
        assert ws is not None and conn is not None
        beats = asyncio.create_task(self._beat(ws, conn)) if conn.heartbeat_out_ms else None
        silence = conn.heartbeat_in_ms * 3 / 1000 or None
        try:
            while True:
                async with asyncio.timeout(silence):
                    data = await ws.recv()
                for event in conn.receive_data(data.encode() if isinstance(data, str) else data):
                    self._dispatch(event)
        finally:
            if beats is not None:
                beats.cancel()
            await ws.close()

    async def _beat(self, ws: WebSocket, conn: ClientConnection) -> None:
        period = conn.heartbeat_out_ms / 2000
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(period)
                await ws.send("\n")

    def _dispatch(self, event: object) -> None:
        if isinstance(event, Message):
            sub = self._subscriptions.get(event.subscription or "")
            if sub is not None:
                if sub.ack != "auto" and len(self._delivered) < 65536:
                    self._delivered[event.message_id or ""] = self.generation
                sub._deliver(event)
        elif isinstance(event, Receipt):
            future = self._receipts.pop(event.receipt_id or "", None)
            if future is not None and not future.done():
                future.set_result(event)
        elif isinstance(event, Error):
            raise ServerError(event.message or "error", event.body.decode("utf-8", "replace"))

    def _lost(self, why: BaseException) -> None:
        self._up.clear()
        self._ws = None
        self._conn = None
        waiting: list[asyncio.Future[Any]] = [*self._receipts.values(), *self._requests.values()]
        for future in waiting:
            if not future.done():
                future.set_exception(why)
        self._receipts.clear()
        self._requests.clear()
        # A seat map still waiting for its first message was likely what the server refused
        # (ERROR unknown event): subscribing it again would only repeat that.
        for sub in list(self._subscriptions.values()):
            if isinstance(sub, SeatMap) and not sub.state.ready:
                del self._subscriptions[sub.id]
                sub._fail(why)

    def _end_all(self, why: BaseException | None = None) -> None:
        for sub in self._subscriptions.values():
            sub._end(why)

    def _end_client(self, why: BaseException) -> None:
        """The client will not connect again: calls waiting for the connection and the
        subscriptions' iterators get ``why`` when it is the server's (a :class:`ServerError`),
        else the iterators just end."""
        self._fatal = self._fatal or why
        self._end_all(self._fatal if isinstance(self._fatal, ServerError) else None)
        self._ended.set()

    def _stomp(self) -> ClientConnection:
        if self._conn is None:
            raise self._fatal or ConnectionLost("not connected (reconnecting)")
        return self._conn

    async def _flush(self) -> None:
        """Send what the STOMP connection has to send; a socket that failed (before the reader
        noticed) raises :class:`ConnectionLost`, never the ``websockets`` exception."""
        conn, ws = self._stomp(), self._ws
        data = conn.data_to_send()
        if data and ws is not None:
            try:
                await ws.send(data.decode("utf-8") if data.isascii() else data)
            except (WebSocketException, OSError) as exc:
                if ws is self._ws:
                    # The connection is lost: later calls wait for the reconnect, and its
                    # deliveries can no longer be settled. The reader finds out on its own.
                    self._up.clear()
                raise ConnectionLost(str(exc) or type(exc).__name__) from exc

    async def wait_connected(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until the connection is up (again); raises the error that ended the client
        (``ServerError`` for a token refused on a reconnect) if it ends instead."""
        if self._up.is_set():
            return
        if self._fatal is not None or self._closing:
            raise self._fatal or ConnectionLost("the client is closed")
        up = asyncio.ensure_future(self._up.wait())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            async with asyncio.timeout(timeout if timeout is not None else self.timeout):
                await asyncio.wait((up, ended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            up.cancel()
            ended.cancel()
        if not self._up.is_set():
            raise self._fatal or ConnectionLost("the client is closed")

    def _next(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    async def _with_receipt(self, emit: Callable[[str], None]) -> Receipt:
        await self.wait_connected()
        receipt = self._next("r")
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._receipts[receipt] = future
        try:
            emit(receipt)
            await self._flush()
            async with asyncio.timeout(self.timeout):
                return await future
        finally:
            self._receipts.pop(receipt, None)

    # -- STOMP -----------------------------------------------------------------------------

    async def send(
        self,
        destination: str,
        body: bytes | str = b"",
        *,
        content_type: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        receipt: bool = False,
        transaction: str | None = None,
    ) -> None:
        """SEND; with ``receipt`` wait until the server says it took effect."""
        data = body.encode() if isinstance(body, str) else body
        if content_type is None and isinstance(body, str):
            content_type = "text/plain;charset=utf-8"

        def emit(r: str | None) -> None:
            self._stomp().send(destination, data, content_type=content_type, receipt=r,
                               transaction=transaction, headers=headers)  # fmt: skip

        if receipt:
            await self._with_receipt(emit)
        else:
            await self.wait_connected()
            emit(None)
            await self._flush()

    async def subscribe(
        self, destination: str, *, ack: str = "auto", headers: Sequence[tuple[str, str]] = ()
    ) -> Subscription:
        """SUBSCRIBE, waiting for its receipt; the subscription is made again after every
        reconnect."""
        sub = Subscription(self, self._next("sub"), destination, ack, headers)
        await self._register(sub)
        return sub

    async def _register(self, sub: Subscription) -> None:
        self._subscriptions[sub.id] = sub
        try:
            await self._with_receipt(lambda r: self._stomp().subscribe(
                sub.destination, sub.id, ack=sub.ack, receipt=r,
                headers=[*sub.headers, *sub.resume_headers()]))  # fmt: skip
        except BaseException:
            self._subscriptions.pop(sub.id, None)
            raise
        sub.resume.subscribed = True

    def _resubscribe(self, sub: Subscription) -> None:
        """UNSUBSCRIBE and SUBSCRIBE again under the same id (after a seat-map gap)."""
        conn = self._conn
        if conn is None:
            return  # the reconnect subscribes again anyway
        conn.unsubscribe(sub.id)
        conn.subscribe(sub.destination, sub.id, ack=sub.ack,
                       headers=[*sub.headers, *sub.resume_headers()])  # fmt: skip
        task = asyncio.ensure_future(self._flush())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _unsubscribe(self, sub: Subscription) -> None:
        if self._subscriptions.pop(sub.id, None) is None:
            return
        sub._end()
        with contextlib.suppress(ConnectionLost):
            await self._with_receipt(lambda r: self._stomp().unsubscribe(sub.id, receipt=r))

    def _settleable(self, message: Message) -> bool:
        """Whether ``message`` came on this connection and it is still up: the server forgot
        the deliveries of a lost one (an ACK of them would be an ERROR), so settling those is a
        no-op, from the moment the loss is seen (by the reader or by a failed send)."""
        generation = self._delivered.pop(message.message_id or "", None)
        return generation == self.generation and self._up.is_set()

    async def _settle(self, message: Message, settle: Callable[[ClientConnection], None]) -> None:
        """ACK or NACK ``message``; a no-op when its connection is lost (it will be redelivered),
        also when the socket fails under this very frame."""
        if self._settleable(message):
            with contextlib.suppress(ConnectionLost):
                settle(self._stomp())
                await self._flush()

    async def ack(self, message: Message, *, transaction: str | None = None) -> None:
        """ACK ``message``; a no-op when its connection is lost (it will be redelivered)."""
        await self._settle(message, lambda conn: conn.ack(message, transaction=transaction))

    async def nack(self, message: Message, *, transaction: str | None = None) -> None:
        """NACK ``message``; a no-op when its connection is lost (it will be redelivered)."""
        await self._settle(message, lambda conn: conn.nack(message, transaction=transaction))

    def transaction(self) -> Transaction:
        return Transaction(self, self._next("tx"))

    # -- seat maps and /app commands --------------------------------------------------------

    async def seat_map(self, event_id: int) -> SeatMap:
        """Subscribe to an event's seat map; returns once its first message is applied."""
        seats = SeatMap(self, self._next("seats"), event_id)
        await self._register(seats)
        await seats.until(lambda _: True)
        return seats

    async def request(
        self, destination: str, body: object = None, headers: Sequence[tuple[str, str]] = ()
    ) -> dict[str, Any]:
        """SEND an ``/app`` command and wait for its reply; a failure raises
        :class:`CommandError`."""
        if not self._replies:
            self._replies = [await self.subscribe(REPLIES), await self.subscribe(ERRORS)]
            for sub in self._replies:
                sub.on_message = self._on_reply
        correlation = self._next("c")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[correlation] = future
        data = b"" if body is None else json.dumps(body).encode()
        try:
            await self.send(destination, data, content_type="application/json",
                            headers=[*headers, ("correlation-id", correlation)])  # fmt: skip
            async with asyncio.timeout(self.timeout):
                reply = await future
        finally:
            self._requests.pop(correlation, None)
        if reply.get("type") == "error":
            raise CommandError(reply)
        return reply

    def _on_reply(self, message: Message) -> None:
        future = self._requests.pop(message.get("correlation-id") or "", None)
        if future is not None and not future.done():
            future.set_result(parse_reply(message.body))

    async def ping(self) -> None:
        await self.request("/app/ping")

    async def hold(
        self,
        event_id: int,
        seats: Sequence[str] | None = None,
        *,
        best_available: dict[str, Any] | None = None,
        admission_token: str | None = None,
    ) -> Hold:
        """Hold named ``seats``, or ``best_available={"count": N, ...}``."""
        body: dict[str, Any] = (
            {"best_available": best_available} if best_available else {"seats": list(seats or ())}
        )
        headers = [("admission-token", admission_token)] if admission_token else []
        return Hold.from_reply(await self.request(f"/app/events/{event_id}/holds", body, headers))

    async def release(self, hold_id: str) -> None:
        await self.request(f"/app/holds/{hold_id}/release")

    async def join_queue(self, event_id: int, *, proof: str | None = None) -> QueuePosition:
        """Join an event's waiting room; ``proof`` answers its proof-of-work challenge when it
        asks for one (:func:`concert_hub_client.proof.solve`; without it such an event refuses
        with ``CommandError`` kind ``proof_required``)."""
        headers = [("queue-proof", proof)] if proof else []
        reply = await self.request(f"/app/events/{event_id}/queue/join", headers=headers)
        return QueuePosition.from_reply(reply)

    # -- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        """DISCONNECT (with a receipt, briefly) and stop reconnecting."""
        self._closing = True
        if self._conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._with_receipt(lambda r: self._stomp().disconnect(receipt=r))
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        self._end_all()
        self._ended.set()

    def drop(self) -> None:
        """Cut the connection without DISCONNECT (as a network failure would); the client
        reconnects if it may. For tests and demos of resumption."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@contextlib.asynccontextmanager
async def connect(
    url: str | Sequence[str],
    *,
    token: str | None = None,
    heart_beat: tuple[int, int] = (10000, 10000),
    reconnect: bool = True,
    timeout: float = 10.0,  # noqa: ASYNC109  (passed to the client: each wait's bound)
) -> AsyncIterator[Client]:
    """``async with connect(url, token=…) as client``: connected, closed on exit. ``url`` may be
    a list: each reconnect tries the next one (the nodes of a cluster)."""
    urls = [url] if isinstance(url, str) else list(url)
    client = Client(urls, token=token, heart_beat=heart_beat, reconnect=reconnect,
                    timeout=timeout)  # fmt: skip
    await client.start()
    try:
        yield client
    finally:
        await client.close()
