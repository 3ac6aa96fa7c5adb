"""Prometheus metrics of one node, served at ``/metrics``.

Hot paths add counts in bulk (one ``inc(n)`` per fan-out, not one per recipient), so the cost of
measuring does not grow with the audience.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics

# The *_created series double every counter's output and no dashboard here uses them.
disable_created_metrics()  # type: ignore[no-untyped-call]


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
