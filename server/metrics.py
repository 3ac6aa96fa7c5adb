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
measuring does not grow with the audience. The table in ``docs/operations.md`` ("Metrics") is
this module, row by row; a test keeps the two equal.
"""

from __future__ import annotations

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

from server.settings import Settings

# The *_created series double every counter's output and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "concert_hub_"

#: Outcomes of a hold request (``concert_hub_holds_total{outcome}``), one per way it can end.
HOLD_OUTCOMES = (
    "granted",  # the seats are held
    "conflict",  # some seat is held or sold (409)
    "over_limit",  # over the per-user seat limit (422)
    "no_admission",  # waiting room on, no valid admission token (403)
    "sale_closed",  # the event is not on sale
    "invalid",  # malformed request or unknown seats (422)
    "not_found",  # no such event
)
#: Outcomes of a checkout (``concert_hub_checkouts_total{outcome}``).
CHECKOUT_OUTCOMES = (
    "paid",  # charged and the order committed
    "declined",  # the gateway declined; nothing charged (402)
    "gateway_error",  # the gateway failed; any charge refunded (502)
    "timeout",  # no answer within --payment-timeout-s; any charge refunded (502)
    "hold_lost",  # the hold expired or lost its seats while paying; charge refunded (409)
    "replayed",  # the Idempotency-Key was seen before: the first answer replayed
    "in_progress",  # a request with the same key is still running (409)
    "rejected",  # anything else refused before paying (mismatched key, not the user's hold…)
)
#: Why a refund was made (``concert_hub_refunds_total{reason}``).
REFUND_REASONS = ("order_cancelled", "payment_error", "hold_lost", "recovery")
#: How a refund went (``concert_hub_refunds_total{outcome}``).
REFUND_OUTCOMES = (
    "refunded",  # the gateway refunded or voided a charge
    "no_charge",  # the gateway had no charge under that payment id
    "failed",  # the gateway call failed; the payment stays for recovery
)
#: Payment provider calls timed by ``concert_hub_payment_duration_seconds{operation}``.
PAYMENT_OPERATIONS = ("charge", "refund")
#: Seat statuses of ``concert_hub_seats{status}`` (booking.seatmap's statuses).
SEAT_STATUSES = ("available", "held", "sold")
#: HTTP status classes of ``concert_hub_http_request_duration_seconds{status_class}``.
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: The ``route`` label of a request that matched no route (404s, probes of random paths).
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


class BookingMetrics:
    """Holds, checkouts, refunds and seats: what a sale does to the inventory.

    ``seats`` has series for live events only (on sale): they go when the event leaves the
    node's seat maps.
    """

    def __init__(self, r: CollectorRegistry) -> None:
        self.holds = _counter(r, "holds", "Hold requests decided, by outcome", "outcome")
        self.hold_decision = _histogram(
            r, "hold_decision_seconds", "Hold request: validation to commit or refusal",
            LATENCY_BUCKETS,
        )  # fmt: skip
        self.holds_expired = _counter(r, "holds_expired", "Holds the reaper marked expired")
        self.seats = _gauge(r, "seats", "Seats of a live event by status", "event_id", "status")
        self.checkouts = _counter(r, "checkouts", "Checkouts by outcome", "outcome")
        self.payment_duration = _histogram(
            r, "payment_duration_seconds", "Payment provider call time by operation",
            PAYMENT_BUCKETS, "operation",
        )  # fmt: skip
        self.refunds = _counter(r, "refunds", "Refunds by reason and outcome", "reason", "outcome")
        self.orders_cancelled = _counter(r, "orders_cancelled", "Paid orders cancelled")
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
    gauges with ``max``, not ``sum``. The counters count what this node did.
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


def node_metrics(broker: BrokerMetrics, settings: Settings) -> NodeMetrics:
    """Every family of the catalogue, on the broker metrics' registry (see the module doc)."""
    engine = "redis" if settings.redis_url else "in-process"
    return NodeMetrics(broker, node_id=settings.node_id, engine=engine)
