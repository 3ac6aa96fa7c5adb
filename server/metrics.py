"""Prometheus metrics of one node, served at ``/metrics``: the catalogue of every family.

Each class below groups one concern's families on the app's registry (one registry per app, so
tests can run many nodes in one process). :class:`NodeMetrics` registers all of them when the
app is created, so a node exports every family from its first scrape: dashboards and alert rules
never name a metric that a running node does not have. Label values that are known up front (an
outcome, a reason) are created at zero, so a rate over them exists before the first event.

Naming follows Prometheus: ``concert_hub_`` prefix, base units in the name (``_seconds``,
``_bytes``), counters end in ``_total`` (prometheus-client adds it), and every label has a
bounded set of values. ``event_id`` is the only label naming a business object, and only on
families of events that are live (on sale, a waiting room open): a node serves a handful at a
time, and the series of an event that ends can be removed. No family carries a user, a seat, a
session or an event name.

Hot paths add counts in bulk (one ``inc(n)`` per fan-out, not one per recipient), so the cost of
measuring does not grow with the audience. What is already in memory (seats by status, the
database pool) is read when Prometheus scrapes, not counted on every change.

Where each family is fed, through the architecture's seams:

* broker and sessions: :mod:`server.broker`, :mod:`server.session` (the broker's own families);
* HTTP: :func:`server.request_metrics.measure_requests`, a middleware around every handler;
* booking: the booking core's :class:`~booking.hooks.BookingHooks`, which
  :meth:`NodeMetrics.booking_hooks` turns into counts (the core imports no metrics);
  ``concert_hub_seats`` from the inventory's seat maps at scrape time (:class:`LiveSeats`);
* waiting room: :mod:`server.queue_stream` (admissions, positions, the store's figures) and the
  ``queue_joined`` hook;
* live data: :mod:`server.seat_stream`;
* infrastructure: :mod:`server.database` (pool), the Redis engine, and the node's periodic work
  in :mod:`server.app` (readiness, event-loop lag).

The table in ``docs/operations.md`` ("Metrics") is this module, row by row; a test keeps the two
equal, and another scrapes a node after a short sale to see every family move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from booking.checkin import Merged, Reason
from booking.hooks import (
    BookingHooks,
    CheckoutOutcome,
    HoldOutcome,
    PaymentCall,
    RefundOutcome,
    RefundReason,
)
from booking.seatmap import STATUSES
from booking.waiting_room import Stats
from server.database import PoolWatch
from server.settings import Settings

# The *_created series double every counter's output and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "concert_hub_"

# The label values of the booking families are the booking core's own outcome enums
# (booking/hooks.py says what each one means).
#: Outcomes of a hold request (``concert_hub_holds_total{outcome}``), one per way it can end.
HOLD_OUTCOMES = tuple(o.value for o in HoldOutcome)
#: Outcomes of a checkout (``concert_hub_checkouts_total{outcome}``).
CHECKOUT_OUTCOMES = tuple(o.value for o in CheckoutOutcome)
#: Answers to door scans and outcomes of offline uploads (``concert_hub_checkin_scans_total``).
CHECKIN_RESULTS = tuple(dict.fromkeys([*(r.value for r in Reason), *(m.value for m in Merged)]))
#: Why a refund was made (``concert_hub_refunds_total{reason}``).
REFUND_REASONS = tuple(r.value for r in RefundReason)
#: How a refund went (``concert_hub_refunds_total{outcome}``).
REFUND_OUTCOMES = tuple(o.value for o in RefundOutcome)
#: Payment provider calls timed by ``concert_hub_payment_duration_seconds{operation}``.
PAYMENT_OPERATIONS = tuple(c.value for c in PaymentCall)
#: Seat statuses of ``concert_hub_seats{status}`` (booking.seatmap's statuses).
SEAT_STATUSES = STATUSES
#: HTTP status classes of ``concert_hub_http_request_duration_seconds{status_class}``.
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: Methods of ``concert_hub_http_request_duration_seconds{method}``; any other is ``other``
#: (a client may send any token as a method: the label set must stay bounded).
HTTP_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
OTHER_METHOD = "other"
#: The ``route`` label of a request that matched no route (404s, probes of random paths, 405s).
UNMATCHED_ROUTE = "unmatched"
#: ``concert_hub_errors_total{reason}`` of the ERROR that closes a slow consumer.
SLOW_CONSUMER_REASON = "slow_consumer"

# Histogram buckets, in the family's unit, around what each measures.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PAYMENT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)
SIZE_BUCKETS = (1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
WAIT_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
LOOP_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class BrokerMetrics:
    """The broker's metric families, on a registry of their own (one per app, test-friendly)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.connections = Gauge("concert_hub_connections", "Open STOMP connections", registry=r)
        self.sessions = Gauge(
            "concert_hub_sessions",
            "Connected STOMP sessions by transport",
            ["transport"],
            registry=r,
        )
        self.subscriptions = Gauge("concert_hub_subscriptions", "Active subscriptions", registry=r)
        self.frames_in = Counter(
            "concert_hub_frames_in", "Client frames received by command", ["command"], registry=r
        )
        self.frames_out = Counter(
            "concert_hub_frames_out", "Frames sent to clients by command", ["command"], registry=r
        )
        self.deliveries = Counter(
            "concert_hub_deliveries", "MESSAGE frames written to sessions", registry=r
        )
        self.errors = Counter(
            "concert_hub_errors", "ERROR frames sent, by reason", ["reason"], registry=r
        )
        self.queue_messages = Counter(
            "concert_hub_queue_messages",
            "/queue/ messages by what happened to them on this node: stored, refused (queue "
            "full), delivered, redelivered, acked, requeued",
            ["outcome"],
            registry=r,
        )
        self.rejected_connections = Counter(
            "concert_hub_rejected_connections",
            "Connections refused over --max-connections",
            registry=r,
        )


def _counter(r: CollectorRegistry, name: str, doc: str, *labels: str) -> Counter:
    return Counter(PREFIX + name, doc, labels, registry=r)


def _gauge(r: CollectorRegistry, name: str, doc: str, *labels: str) -> Gauge:
    return Gauge(PREFIX + name, doc, labels, registry=r)


def _histogram(
    r: CollectorRegistry, name: str, doc: str, buckets: tuple[float, ...], *labels: str
) -> Histogram:
    return Histogram(PREFIX + name, doc, labels, buckets=buckets, registry=r)


class HttpMetrics:
    """REST and UI requests, measured by one middleware around every handler.

    ``route`` is the resource's template (``/api/events/{event_id}/holds``), never the path
    itself, or ``unmatched``; ``method`` is the request's; ``status_class`` is ``2xx``…
    """

    def __init__(self, r: CollectorRegistry) -> None:
        doc = "HTTP request handling time by method, route template and status class"
        labels = ("method", "route", "status_class")
        self.request_duration = _histogram(
            r, "http_request_duration_seconds", doc, LATENCY_BUCKETS, *labels
        )
        self.in_flight = _gauge(r, "http_requests_in_flight", "HTTP requests being handled")
        self.refused_connections = _counter(
            r,
            "http_refused_connections",
            "HTTP connections refused over --max-http-connections-per-ip",
        )


#: Seats by status of each live event: ``(event id, {status: count})``.
SeatCounts = Iterable[tuple[int, Mapping[str, int]]]


def _no_seats() -> SeatCounts:
    return ()


class LiveSeats:
    """``concert_hub_seats{event_id,status}``, counted when Prometheus scrapes.

    The seat maps are in memory already, so counting them at scrape time (once per scrape, not
    once per seat change) keeps the hold path free of metric calls; series exist for live events
    only (:meth:`~booking.catalog.EventInfo.live`) and go when the event stops being live.
    ``source`` is set once the booking core exists (:meth:`~booking.inventory.Inventory.
    live_seat_counts`).
    """

    NAME = PREFIX + "seats"
    DOC = "Seats of a live event by status"

    def __init__(self, registry: CollectorRegistry) -> None:
        self.source: Callable[[], SeatCounts] = _no_seats
        registry.register(self)

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.NAME, self.DOC, labels=("event_id", "status"))

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for event_id, counts in self.source():
            for status in SEAT_STATUSES:
                family.add_metric((str(event_id), status), counts.get(status, 0))
        yield family


class BookingMetrics:
    """Holds, checkouts, refunds and seats: what a sale does to the inventory (fed by the booking
    core's hooks, :meth:`NodeMetrics.booking_hooks`)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.holds = _counter(r, "holds", "Hold requests decided, by outcome", "outcome")
        self.hold_decision = _histogram(
            r, "hold_decision_seconds", "Hold request: validation to commit or refusal",
            LATENCY_BUCKETS,
        )  # fmt: skip
        self.holds_expired = _counter(r, "holds_expired", "Holds the reaper marked expired")
        self.seats = LiveSeats(r)
        self.checkouts = _counter(r, "checkouts", "Checkouts by outcome", "outcome")
        self.payment_duration = _histogram(
            r, "payment_duration_seconds", "Payment provider call time by operation",
            PAYMENT_BUCKETS, "operation",
        )  # fmt: skip
        self.refunds = _counter(r, "refunds", "Refunds by reason and outcome", "reason", "outcome")
        self.orders_cancelled = _counter(r, "orders_cancelled", "Paid orders cancelled")
        self.checkin_scans = _counter(
            r, "checkin_scans", "Door scans (online, and offline uploads), by result", "result"
        )
        for result in CHECKIN_RESULTS:
            self.checkin_scans.labels(result)
        for outcome in HOLD_OUTCOMES:
            self.holds.labels(outcome)
        for outcome in CHECKOUT_OUTCOMES:
            self.checkouts.labels(outcome)
        for operation in PAYMENT_OPERATIONS:
            self.payment_duration.labels(operation)
        for reason in REFUND_REASONS:
            for outcome in REFUND_OUTCOMES:
                self.refunds.labels(reason, outcome)


class QueueMetrics:
    """The waiting room: who waits, who shops, how fast the queue moves.

    In cluster mode the queue is one for all nodes and every node reports it: aggregate the two
    gauges with ``max``, not ``sum``. The counters count what this node did. The gauges have
    series for live events with a waiting room only (:meth:`report` drops the others).
    """

    def __init__(self, r: CollectorRegistry) -> None:
        self.waiting = _gauge(r, "queue_waiting", "Users waiting in an event's queue", "event_id")
        self.active_shoppers = _gauge(
            r, "queue_active_shoppers", "Admitted users, admission neither expired nor used",
            "event_id",
        )  # fmt: skip
        self.admissions = _counter(r, "queue_admissions", "Users admitted by this node", "event_id")
        self.joins = _counter(r, "queue_joins", "Queue joins handled by this node", "event_id")
        self.position_lateness = _histogram(
            r, "queue_position_push_lateness_seconds",
            "How far past --position-interval-s a position push went out", LATENESS_BUCKETS,
        )  # fmt: skip
        self._reported: set[str] = set()

    def report(self, figures: Mapping[int, Stats]) -> None:
        """The waiting rooms' current figures, by event: those of live events (once a second,
        from the store; the series of an event no longer given are removed)."""
        labels = set()
        for event_id, stats in figures.items():
            label = str(event_id)
            labels.add(label)
            self.waiting.labels(label).set(stats.waiting)
            self.active_shoppers.labels(label).set(stats.active)
        for gone in self._reported - labels:
            self.waiting.remove(gone)
            self.active_shoppers.remove(gone)
        self._reported = labels


class LiveMetrics:
    """Seat-map streaming. Slow-consumer closes are ``concert_hub_errors_total{reason=
    "slow_consumer"}`` of :class:`BrokerMetrics`, not a family of their own."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.deltas = _counter(r, "seatmap_deltas", "Seat-map deltas published by this node")
        self.snapshot_size = _histogram(
            r, "seatmap_snapshot_bytes", "Encoded size of seat-map snapshots sent", SIZE_BUCKETS
        )
        self.delta_lag = _histogram(
            r, "seatmap_delta_lag_seconds", "Seat change commit to its delta sent", LAG_BUCKETS
        )
        self.resumes = _counter(
            r, "seatmap_resumes", "Seat-map SUBSCRIBEs with resume-seq, by answer", "answer"
        )
        doc = "Seat-map subscribers sent a catch-up snapshot after falling behind"
        self.catch_ups = _counter(r, "seatmap_catch_ups", doc)


class InfraMetrics:
    """What the node runs on: readiness, the database pool, Redis, the event loop.

    ``redis_connected`` means something in cluster mode only
    (``concert_hub_build_info{engine="redis"}``).
    """

    def __init__(self, r: CollectorRegistry) -> None:
        self.ready = _gauge(r, "ready", "1 while /readyz would answer 200 (database, Redis)")
        self.db_pool_size = _gauge(r, "db_pool_size", "Database connections the pool may hold")
        self.db_pool_in_use = _gauge(r, "db_pool_in_use", "Database connections checked out")
        self.db_pool_waiting = _gauge(r, "db_pool_waiting", "Tasks waiting for a connection")
        self.db_pool_wait = _histogram(
            r, "db_pool_checkout_wait_seconds", "Time to get a database connection", WAIT_BUCKETS
        )
        self.redis_connected = _gauge(r, "redis_connected", "1 while Redis is connected")
        self.redis_reconnects = _counter(r, "redis_reconnects", "Reconnections to Redis")
        self.loop_lag = _histogram(
            r, "event_loop_lag_seconds", "How late a periodic timer fired", LOOP_LAG_BUCKETS
        )

    def watch_pool(self, watch: PoolWatch) -> None:
        """Report the pool's figures at every scrape, and time every connection it hands out."""
        self.db_pool_size.set_function(lambda: watch.capacity)
        self.db_pool_in_use.set_function(watch.in_use)
        self.db_pool_waiting.set_function(lambda: watch.waiting)
        watch.waited = self.db_pool_wait.observe


def package_version() -> str:
    try:
        return version("concert-hub")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


class NodeMetrics:
    """Every family beside the broker's, registered on the broker's registry at app creation.

    Also the node's build info (``concert_hub_build_info{version,node_id,engine}`` = 1) and
    prometheus-client's process collector (``process_cpu_seconds_total``,
    ``process_resident_memory_bytes``, ``process_open_fds`` …; Linux only).
    """

    def __init__(self, broker: BrokerMetrics, *, node_id: str, engine: str) -> None:
        r = broker.registry
        self.http = HttpMetrics(r)
        self.booking = BookingMetrics(r)
        self.queue = QueueMetrics(r)
        self.live = LiveMetrics(r)
        self.infra = InfraMetrics(r)
        Info("concert_hub_build", "Version, node id and engine of this node", registry=r).info(
            {"version": package_version(), "node_id": node_id, "engine": engine}
        )
        ProcessCollector(registry=r)
        broker.errors.labels(SLOW_CONSUMER_REASON)

    def booking_hooks(self) -> BookingHooks:
        """Booking hooks that feed the booking families and the waiting room's joins (the
        composition root adds its own, such as the crash injection, to what this returns)."""
        booking, joins = self.booking, self.queue.joins
        holds = {o: booking.holds.labels(o.value) for o in HoldOutcome}
        checkouts = {o: booking.checkouts.labels(o.value) for o in CheckoutOutcome}
        calls = {c: booking.payment_duration.labels(c.value) for c in PaymentCall}
        refunds = {
            (reason, outcome): booking.refunds.labels(reason.value, outcome.value)
            for reason in RefundReason
            for outcome in RefundOutcome
        }
        decision = booking.hold_decision
        scans = {result: booking.checkin_scans.labels(result) for result in CHECKIN_RESULTS}

        def hold_ended(outcome: HoldOutcome, seconds: float) -> None:
            holds[outcome].inc()
            decision.observe(seconds)

        return BookingHooks(
            hold_ended=hold_ended,
            holds_expired=booking.holds_expired.inc,
            checkout_ended=lambda outcome: checkouts[outcome].inc(),
            payment_called=lambda call, seconds: calls[call].observe(seconds),
            refunded=lambda reason, outcome: refunds[(reason, outcome)].inc(),
            order_cancelled=lambda _: booking.orders_cancelled.inc(),
            queue_joined=lambda event_id: joins.labels(str(event_id)).inc(),
            ticket_scanned=lambda _, result: scans[result].inc(),
        )


def node_metrics(broker: BrokerMetrics, settings: Settings) -> NodeMetrics:
    """Every family of the catalogue, on the broker metrics' registry (see the module doc)."""
    engine = "redis" if settings.redis_url else "in-process"
    return NodeMetrics(broker, node_id=settings.node_id, engine=engine)
