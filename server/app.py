"""The aiohttp application of one node, composed in one factory (:func:`create_app`).

Resources with a lifetime are ``cleanup_ctx`` generators, set up in order and torn down in
reverse: database engine, message engine, then the STOMP service that uses both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from booking.admission import AdmissionSigner
from booking.migrate import upgrade
from booking.payments import TestGateway
from booking.service import BookingPolicy, BookingService
from booking.tickets import TicketSigner
from booking.waiting_room import InProcessWaitingRoom, WaitingRoom
from booking.waiting_room_redis import RedisWaitingRoom
from server import api, app_commands
from server import web as web_ui
from server.auth import TokenAuthority
from server.background import keep_long_lived_objects_out_of_gc, run_every
from server.broker import Broker
from server.database import check_database, make_engine
from server.destinations import Kind
from server.engine import Engine, InProcessEngine
from server.logs import request_context
from server.metrics import BrokerMetrics, register_node_metrics
from server.queue_stream import QueueStream
from server.redis_engine import RedisEngine
from server.seat_sequencer import InProcessSequencer, RedisSequencer, SeatSequencer
from server.seat_stream import SeatStream, SeatSync
from server.session import StompService
from server.settings import Settings
from server.websocket import STOMP_SERVICE, websocket_handler

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", AsyncEngine)
ENGINE = web.AppKey("engine", Engine)
METRICS = web.AppKey("metrics", BrokerMetrics)
BOOKING = web.AppKey("booking", BookingService)
SEQUENCER = web.AppKey("seat_sequencer", SeatSequencer)
SECRET = web.AppKey("secret", str)


def create_app(settings: Settings, secret: str) -> web.Application:
    app = web.Application(client_max_size=1 << 20, middlewares=[request_context])
    app[SETTINGS] = settings
    app[SECRET] = secret
    app[METRICS] = BrokerMetrics()
    register_node_metrics(app, app[METRICS], settings)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_message_engine)
    app.cleanup_ctx.append(_booking)
    app.cleanup_ctx.append(_stomp_service)
    app.cleanup_ctx.append(_background)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    api.setup(app)
    web_ui.setup(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = make_engine(app[SETTINGS].database_url, app[SETTINGS].db_pool_size)
    app[DATABASE] = engine
    yield
    await engine.dispose()


async def _booking(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = app[DATABASE]
    if settings.embedded:
        await upgrade(engine)
    secret = app[SECRET]
    messages = app[ENGINE]
    room: WaitingRoom = (
        RedisWaitingRoom(messages.redis) if isinstance(messages, RedisEngine)
        else InProcessWaitingRoom()
    )  # fmt: skip
    booking = BookingService(
        engine,
        TestGateway(engine, settings.payment_latency_ms / 1000),
        TicketSigner(secret),
        AdmissionSigner(secret),
        BookingPolicy(
            hold_ttl_s=settings.hold_ttl_s,
            max_seats_per_user=settings.max_seats_per_user,
            payment_timeout_s=settings.payment_timeout_s,
            crash_after_charge=settings.fault_crash_after_charge,
            admission_ttl_s=settings.admission_ttl_s,
        ),
        room,
    )
    if settings.demo:
        seeded = await booking.ensure_demo()
        if seeded is not None:
            log.info("seeded demo event %d: %s (%d seats)", seeded.id, seeded.name,
                     len(seeded.seats))  # fmt: skip
    await booking.recover()
    app[BOOKING] = booking
    yield


async def _message_engine(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis_url
    engine: Engine = RedisEngine(url) if url else InProcessEngine()
    app[ENGINE] = engine
    yield
    await engine.close()


async def _stomp_service(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    broker = Broker(app[ENGINE], app[METRICS], settings.node_id)
    await app[ENGINE].start(broker.deliver)
    service = StompService(settings, TokenAuthority(app[SECRET]), broker, app[METRICS])
    app_commands.register(service, app[BOOKING])
    app[STOMP_SERVICE] = service
    yield
    service.shutdown()


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The node's periodic work: seat-map deltas, admissions and positions, hold expiry,
    payment recovery."""
    booking = app[BOOKING]
    service = app[STOMP_SERVICE]
    settings = app[SETTINGS]
    messages = app[ENGINE]
    sequencer: SeatSequencer = (
        RedisSequencer(messages.redis, booking, settings.node_id)
        if isinstance(messages, RedisEngine)
        else InProcessSequencer(booking)
    )
    app[SEQUENCER] = sequencer
    SeatSync(booking, service.broker, sequencer, settings.node_id)
    stream = SeatStream(booking, service.broker, sequencer, settings.seat_tick_ms)
    service.subscribe_listeners[Kind.SEATS] = stream.on_subscribe
    queue = QueueStream(booking, service.broker, settings.position_interval_s)
    service.subscribe_listeners[Kind.USER] = queue.on_subscribe
    tasks = [
        asyncio.create_task(stream.run(), name="seat-ticker"),
        asyncio.create_task(queue.run_admissions(), name="admissions"),
        asyncio.create_task(queue.run_positions(), name="queue-positions"),
        asyncio.create_task(queue.run_stats(), name="queue-stats"),
        asyncio.create_task(run_every(1.0, booking.reap), name="hold-reaper"),
        asyncio.create_task(run_every(30.0, booking.recover), name="payment-recovery"),
        asyncio.create_task(keep_long_lived_objects_out_of_gc(), name="gc-freeze"),
    ]
    yield
    for task in tasks:
        task.cancel()
    # Bounded: a client library that swallows a cancellation must not hold up the stop past
    # SPEC §1's 10 seconds.
    _, stuck = await asyncio.wait(tasks, timeout=2.0)
    for task in stuck:
        log.warning("background task %s did not stop in time", task.get_name())


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """200 when the database (and the message engine) answer, else 503 naming what failed."""
    app = request.app
    checks = {
        "database": await check_database(app[DATABASE]),
        "engine": await app[ENGINE].check_ready(),
    }
    failed = {name: why for name, why in checks.items() if why is not None}
    status = 503 if failed else 200
    body = {"status": "ready" if not failed else "not ready", "failed": failed}
    return web.json_response(body, status=status)


async def metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[METRICS].registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})
