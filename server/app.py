"""The aiohttp application of one node, composed in one factory (:func:`create_app`).

Resources with a lifetime are ``cleanup_ctx`` generators, set up in order and torn down in
reverse: database engine, message engine, then the STOMP service that uses both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine

from server import app_commands
from server.auth import TokenAuthority
from server.broker import Broker
from server.database import check_database, make_engine
from server.engine import Engine, InProcessEngine
from server.metrics import BrokerMetrics
from server.session import StompService
from server.settings import Settings
from server.websocket import STOMP_SERVICE, websocket_handler

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", AsyncEngine)
ENGINE = web.AppKey("engine", Engine)
METRICS = web.AppKey("metrics", BrokerMetrics)


def create_app(settings: Settings, secret: str) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    app[SETTINGS] = settings
    app[METRICS] = BrokerMetrics()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_message_engine)
    app.cleanup_ctx.append(lambda app: _stomp_service(app, secret))
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = make_engine(app[SETTINGS].database_url)
    app[DATABASE] = engine
    yield
    await engine.dispose()


async def _message_engine(app: web.Application) -> AsyncIterator[None]:
    engine: Engine = InProcessEngine()
    app[ENGINE] = engine
    yield
    await engine.close()


async def _stomp_service(app: web.Application, secret: str) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    broker = Broker(app[ENGINE], app[METRICS], settings.node_id)
    await app[ENGINE].start(broker.deliver)
    service = StompService(settings, TokenAuthority(secret), broker, app[METRICS])
    app_commands.register(service)
    app[STOMP_SERVICE] = service
    yield
    service.shutdown()


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
