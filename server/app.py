"""The composition root: one node's aiohttp application, built in one factory.

:func:`create_app` is the only place that knows every part of the node; nothing imports this
module but the runner (and tests that build an app). Resources with a lifetime are
``cleanup_ctx`` generators, set up in this order and torn down in reverse:

1. the database engine;
2. the backplane — in-process or Redis, chosen once from ``--redis-url`` — with the message
   engine, the waiting-room store and the seat sequencer;
3. the booking core (migrated first in embedded mode; demo data; payment recovery);
4. the STOMP service: broker, sessions, ``/app`` commands, the seat and queue streams;
5. the node's periodic work.

The metric families (:mod:`server.metrics`) are registered first, and each resource is handed
the ones it feeds as it is built: the request middleware, the pool, the Redis engine, the
booking hooks, the seat and queue streams, and the readiness and loop-lag timers.

Stopping has one path (SPEC §1): the runner calls :func:`stop_accepting` (``/readyz`` 503 at
once), closes both listeners and drains the STOMP sessions (ERROR, then up to 2 s to flush;
what is left is cut) while connections it already has are still served; then its cleanup runs
:func:`_drain` (``on_shutdown``, a no-op by then), aiohttp lets in-flight requests finish, and
the contexts above are torn down.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from booking import core
from booking.core import BookingPolicy
from booking.customers import SignInPolicy
from booking.holds import HoldCaps
from booking.hooks import HoldOutcome
from booking.keyring import Keyring
from booking.migrate import require_current, upgrade
from booking.outflow import Budget
from booking.payments import TestGateway
from booking.retention import RetentionPolicy
from protocol.events import Subscription
from server import app_commands
from server import web as web_ui
from server.api import routes as api
from server.auth import TokenAuthority
from server.background import keep_long_lived_objects_out_of_gc, measure_loop_lag, run_every
from server.backplane import open_backplane
from server.broker import Broker
from server.checkin_stream import CheckinStream
from server.database import check_database, make_engine, pool_watch
from server.destinations import Kind
from server.event_sync import EventSync
from server.integrations import IntegrationSender
from server.keys import (
    BACKPLANE,
    BOOKING,
    CLIENT_ADDRESSES,
    DATABASE,
    EXPOSITION,
    HEALTH,
    METRICS,
    NODE_METRICS,
    NODES,
    RATE_LIMITS,
    SEATS,
    SETTINGS,
    STOMP,
    TOKENS,
)
from server.logs import request_context
from server.mail.sender import MailSender
from server.mail.transport import open_transport
from server.metrics import BrokerMetrics, node_metrics
from server.node_roster import NodeFigures, NodeRoster
from server.outflow import FileDelay, Health, run_outflow
from server.queue_stream import DISCOVER_S, QueueStream
from server.queues import QueueBroker
from server.request_metrics import measure_requests
from server.seat_stream import SeatStream
from server.session import StompService, StompSession, SubscribeListener
from server.settings import Settings
from server.user_replay import UserReplay
from server.websocket import websocket_handler

log = logging.getLogger(__name__)

#: Exit status of the crashes injected by ``--fault-crash-after-charge`` and
#: ``--fault-crash-after-commit`` (tests only).
CRASH_EXIT = 70
#: How often ``concert_hub_ready`` is brought up to date (``/readyz`` also does, when asked).
READY_EVERY_S = 5.0


def create_app(settings: Settings, keyring: Keyring) -> web.Application:
    broker_metrics = BrokerMetrics()
    measured = node_metrics(broker_metrics, settings)
    app = web.Application(
        client_max_size=settings.max_request_bytes,
        middlewares=[request_context, measure_requests(measured.http)],
    )
    app[SETTINGS] = settings
    app[TOKENS] = TokenAuthority(keyring)
    app[METRICS] = broker_metrics
    app[NODE_METRICS] = measured
    app[HEALTH] = Health()
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_backplane)
    app.cleanup_ctx.append(functools.partial(_booking, keyring=keyring))
    app.cleanup_ctx.append(_stomp)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_drain)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    api.setup(app)
    web_ui.setup(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = make_engine(
        app[SETTINGS].database_url, app[SETTINGS].db_pool_size, app[SETTINGS].db_pool_timeout_s
    )
    watch = pool_watch(engine)
    app[NODE_METRICS].infra.watch_pool(watch)
    observe, health = watch.waited, app[HEALTH]

    def waited(seconds: float) -> None:
        observe(seconds)
        health.pool_wait(seconds)

    watch.waited = waited
    app[DATABASE] = engine
    yield
    await engine.dispose()


async def _backplane(app: web.Application) -> AsyncIterator[None]:
    backplane = open_backplane(app[SETTINGS], app[DATABASE], app[NODE_METRICS].infra)
    app[BACKPLANE] = backplane
    yield
    await backplane.close()


def _crash_after_charge(payment_id: str) -> None:
    log.critical("crash injected after charge of %s", payment_id)
    os._exit(CRASH_EXIT)


def _crash_after_commit(order_id: str) -> None:
    log.critical("crash injected after the commit of %s", order_id)
    os._exit(CRASH_EXIT)


async def _booking(app: web.Application, *, keyring: Keyring) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = app[DATABASE]
    # Embedded, the node migrates its own file; else `concert-hub migrate` does (the deploy's
    # job), and a node refuses a database it cannot reach or that lacks migrations.
    await (upgrade if settings.embedded else require_current)(engine)
    hooks = app[NODE_METRICS].booking_hooks()
    if settings.fault_crash_after_charge:
        hooks.charged = _crash_after_charge
    if settings.fault_crash_after_commit:
        hooks.order_committed = _crash_after_commit
    if settings.fault_hold_delay_file:
        hooks.hold_delay = FileDelay(settings.fault_hold_delay_file)
    health, measured_hold = app[HEALTH], hooks.hold_ended

    def hold_ended(outcome: HoldOutcome, seconds: float) -> None:
        measured_hold(outcome, seconds)
        health.hold(seconds)

    hooks.hold_ended = hold_ended
    hold_caps = HoldCaps(
        per_ip=settings.max_held_seats_per_ip, per_email=settings.max_held_seats_per_email
    )
    booking = core.build(
        engine,
        TestGateway(engine, settings.payment_latency_ms / 1000, settings.fault_refund_failures),
        keyring,
        policy=BookingPolicy(
            hold_ttl_s=settings.hold_ttl_s,
            max_seats_per_user=settings.max_seats_per_user,
            hold_caps=hold_caps,
            payment_timeout_s=settings.payment_timeout_s,
            admission_ttl_s=settings.admission_ttl_s,
            retry_max_s=settings.retry_max_s,
            outbox_lease_s=settings.outbox_lease_s,
            sign_in=SignInPolicy(
                ttl=timedelta(seconds=settings.sign_in_ttl_s),
                max_attempts=settings.sign_in_max_attempts,
                per_address_per_hour=settings.sign_in_rate_per_address,
            ),
            retention=RetentionPolicy(
                idempotency_ttl=timedelta(seconds=settings.idempotency_ttl_s),
                sign_in_kept=timedelta(seconds=settings.sign_in_retention_s),
                outbox_kept=timedelta(seconds=settings.outbox_retention_s),
                holds_kept=timedelta(seconds=settings.hold_retention_s),
            ),
        ),
        waiting_room=app[BACKPLANE].waiting_room,
        hooks=hooks,
    )
    if settings.demo:
        seeded = await booking.inventory.ensure_demo()
        if seeded is not None:
            log.info("seeded demo event %d: %s (%d seats)", seeded.id, seeded.name,
                     len(seeded.seats))  # fmt: skip
    await booking.checkout.recover()
    booking.admissions.outflow.budget = Budget(
        settings.outflow_hold_p99_ms / 1000,
        settings.outflow_pool_wait_ms / 1000,
        settings.outflow_loop_lag_ms / 1000,
    )
    app[NODE_METRICS].booking.seats.source = booking.inventory.live_seat_counts
    app[BOOKING] = booking
    await _refresh_revocations(app)
    yield


async def _stomp(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    booking = app[BOOKING]
    backplane = app[BACKPLANE]
    broker = Broker(backplane.engine, app[METRICS], settings.node_id)
    await backplane.engine.start(broker.deliver)
    queues = QueueBroker(
        backplane.queue_store,
        broker,
        app[METRICS],
        settings.queue_policy,
        default_prefetch=settings.queue_prefetch,
        max_unacked=settings.max_unacked,
        poll_s=settings.queue_poll_s,
    )
    service = StompService(
        settings, app[TOKENS], broker, app[METRICS], queues,
        commands_per_user=app[RATE_LIMITS].per_user,
    )  # fmt: skip
    app_commands.register(service, booking)
    if settings.user_replay_count and settings.user_replay_s:
        kept = backplane.user_messages(
            settings.user_replay_count, settings.user_replay_s, settings.user_replay_max_bytes
        )
        broker.keep_user_messages(kept.publish)
        service.subscribe_listeners[Kind.USER] = UserReplay(broker, kept).on_subscribe
    seats = SeatStream(
        booking.inventory,
        broker,
        backplane.seat_sequencer(booking.inventory),
        settings.seat_tick_ms,
        app[NODE_METRICS].live,
        replay_deltas=settings.seat_replay_deltas,
        delivery_budget=settings.seat_delivery_budget,
        audience=lambda: max(seats.followers(), roster.most_seat_followers()),
    )
    service.subscribe_listeners[Kind.SEATS] = seats.on_subscribe
    events = EventSync(booking.inventory, broker, backplane.engine, settings.node_id)
    service.subscribe_listeners[Kind.STATUS] = events.on_subscribe
    service.subscribe_listeners[Kind.ANNOUNCEMENTS] = events.on_event_topic_subscribe
    service.subscribe_listeners[Kind.QUEUE_STATS] = events.on_event_topic_subscribe

    def figures() -> NodeFigures:
        subscriptions = app[METRICS].registry.get_sample_value("concert_hub_subscriptions")
        return NodeFigures(
            settings.node_id, len(service.sessions), int(subscriptions or 0), seats.followers()
        )

    roster = NodeRoster(broker, figures)
    app[STOMP] = service
    app[CLIENT_ADDRESSES] = service.addresses
    app[SEATS] = seats
    app[NODES] = roster
    yield


def _both(first: SubscribeListener, then: SubscribeListener) -> SubscribeListener:
    def both(
        session: StompSession, subscription: Subscription, route: str
    ) -> Awaitable[object] | None:
        effects = [
            effect
            for listener in (first, then)
            if (effect := listener(session, subscription, route)) is not None
        ]
        return asyncio.gather(*effects) if effects else None

    return both


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The node's periodic work: seat-map deltas, admissions and positions, door check-in
    progress, hold expiry, payment recovery, the e-mail outbox, refund retries, token
    revocations, retention (old idempotency keys, sign-ins, sent messages and holds forgotten), and
    the timers behind ``concert_hub_ready`` and the event-loop lag."""
    settings = app[SETTINGS]
    booking = app[BOOKING]
    service = app[STOMP]
    measured = app[NODE_METRICS]
    mail = MailSender(booking, open_transport(settings), settings)
    integrations = IntegrationSender(booking, service.queues, settings)
    revocations = functools.partial(_refresh_revocations, app)
    queue = QueueStream(
        booking.admissions, service.broker, settings.position_interval_s, measured.queue
    )
    replay = service.subscribe_listeners.get(Kind.USER)
    service.subscribe_listeners[Kind.USER] = (
        queue.on_subscribe if replay is None else _both(replay, queue.on_subscribe)
    )
    checkin = CheckinStream(booking.door, service.broker)
    service.subscribe_listeners[Kind.ADMIN] = checkin.on_subscribe
    health = app[HEALTH]

    def lagged(seconds: float) -> None:
        measured.infra.loop_lag.observe(seconds)
        health.lag(seconds)

    tasks = [
        asyncio.create_task(app[SEATS].run(), name="seat-ticker"),
        asyncio.create_task(queue.run_admissions(), name="admissions"),
        asyncio.create_task(queue.run_positions(), name="queue-positions"),
        asyncio.create_task(queue.run_stats(), name="queue-stats"),
        asyncio.create_task(
            run_every(DISCOVER_S, queue.discover, at_once=True), name="waiting-room-discovery"
        ),
        asyncio.create_task(checkin.run(), name="checkin-progress"),
        asyncio.create_task(run_every(1.0, booking.holds.reap), name="hold-reaper"),
        asyncio.create_task(run_every(30.0, booking.checkout.recover), name="payment-recovery"),
        asyncio.create_task(app[NODES].run(), name="node-figures"),
        asyncio.create_task(mail.run(), name="mail-sender"),
        asyncio.create_task(service.queues.run(), name="queue-writer"),
        asyncio.create_task(integrations.run(), name="integration-sender"),
        asyncio.create_task(run_every(1.0, booking.refunds.retry_due), name="refund-retries"),
        asyncio.create_task(
            run_every(RETENTION_EVERY_S, booking.retention.sweep, at_once=True), name="retention"
        ),
        asyncio.create_task(run_every(REVOCATIONS_EVERY_S, revocations), name="revocations"),
        asyncio.create_task(keep_long_lived_objects_out_of_gc(), name="gc-freeze"),
        asyncio.create_task(measure_loop_lag(lagged), name="loop-lag"),
        asyncio.create_task(
            run_outflow(booking.admissions, health, app[BACKPLANE].outflow),
            name="adaptive-outflow",
        ),
        asyncio.create_task(_watch_readiness(app), name="readiness"),
    ]
    yield
    for task in tasks:
        task.cancel()
    # Bounded: a client library that swallows a cancellation must not hold up the stop past
    # SPEC §1's 10 seconds.
    _, stuck = await asyncio.wait(tasks, timeout=2.0)
    for task in stuck:
        log.warning("background task %s did not stop in time", task.get_name())


#: How often a node deletes what its retention lets go (old idempotency keys, spent sign-in
#: requests, sent messages, ended holds): a probe of one index per table when there is nothing
#: to delete.
RETENTION_EVERY_S = 60.0

#: How often a node reads which customers signed out everywhere and which scanners were revoked
#: (so another node's revocation takes effect here within this time).
REVOCATIONS_EVERY_S = 5.0


async def _refresh_revocations(app: web.Application) -> None:
    ttl = timedelta(seconds=app[SETTINGS].customer_token_ttl_s)
    booking = app[BOOKING]
    versions = await booking.customers.revocations(ttl)
    versions.update(await booking.scanners.revocations())
    app[TOKENS].versions = versions


def stop_accepting(app: web.Application) -> None:
    """The node is stopping: ``/readyz`` answers 503 and STOMP refuses new sessions from now
    on (the runner calls this first on SIGTERM, before it closes the listeners)."""
    app[STOMP].accepting = False
    app[NODE_METRICS].infra.ready.set(0)


async def _drain(app: web.Application) -> None:
    stop_accepting(app)
    await app[STOMP].drain()


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readiness(app: web.Application) -> dict[str, str]:
    """What keeps the node from being ready, by dependency (nothing: ready); also sets
    ``concert_hub_ready``. A stopping node is not ready whatever its dependencies say, and is
    answered without asking them (at once, and with nothing left in flight to its teardown)."""
    if not app[STOMP].accepting:
        app[NODE_METRICS].infra.ready.set(0)
        return {"node": "stopping"}
    checks = {
        "database": await check_database(app[DATABASE]),
        "engine": await app[BACKPLANE].check_ready(),
    }
    failed = {name: why for name, why in checks.items() if why is not None}
    app[NODE_METRICS].infra.ready.set(0 if failed else 1)
    return failed


async def _watch_readiness(app: web.Application) -> None:
    """Keep ``concert_hub_ready`` current whether or not anything probes ``/readyz``."""
    while True:
        try:
            await readiness(app)
        except Exception:  # a check that raises instead of answering: not ready
            app[NODE_METRICS].infra.ready.set(0)
            log.exception("readiness check failed")
        await asyncio.sleep(READY_EVERY_S)


async def readyz(request: web.Request) -> web.Response:
    """200 when the database (and the backplane) answer, else 503 naming what failed; 503 at
    once when the node is stopping, so a balancer sends nobody new."""
    failed = await readiness(request.app)
    status = 503 if failed else 200
    body = {"status": "ready" if not failed else "not ready", "failed": failed}
    return web.json_response(body, status=status)


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus exposition; with ``--metrics-token`` only for a bearer of that token."""
    token = request.app[SETTINGS].metrics_token
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return web.Response(
                status=401,
                text="/metrics needs Authorization: Bearer <the --metrics-token>\n",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    expose = request.app.get(EXPOSITION)
    data = expose() if expose is not None else generate_latest(request.app[METRICS].registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})
