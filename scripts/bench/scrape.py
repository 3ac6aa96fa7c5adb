"""What the node itself measured: quantiles of its ``/metrics`` histograms after a run.

The clients time a request from the moment they write it to the moment they read the answer,
so a loaded client process (or a full connection pool in it) adds to the figure. The node's own
histograms (``concert_hub_http_request_duration_seconds`` and the rest) time the same work from
inside; reading both tells whether the time went in the server or beside it. Prometheus
histograms give bucket bounds, so the quantiles here are bucket upper bounds (``"≤"`` figures),
as ``histogram_quantile`` would interpolate them between; with ``--workers`` the series of every
worker are summed.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping, Sequence

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "concert_hub_"

#: name in the report → (histogram, the labels a series must have)
WATCHED: dict[str, tuple[str, dict[str, str]]] = {
    "hold": ("http_request_duration_seconds",
             {"method": "POST", "route": "/api/events/{event_id}/holds"}),
    "checkout": ("http_request_duration_seconds",
                 {"method": "POST", "route": "/api/holds/{hold_id}/checkout"}),
    "hold_decision": ("hold_decision_seconds", {}),
    "payment": ("payment_duration_seconds", {"operation": "charge"}),
    "db_pool_wait": ("db_pool_checkout_wait_seconds", {}),
    "loop_lag": ("event_loop_lag_seconds", {}),
    "delta_lag": ("seatmap_delta_lag_seconds", {}),
    "position_lateness": ("queue_position_push_lateness_seconds", {}),
}  # fmt: skip


def fetch(port: int, timeout: float = 10.0) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def buckets(text: str, name: str, labels: Mapping[str, str]) -> dict[float, float]:
    """Cumulative counts by upper bound, summed over every series of ``name`` with ``labels``."""
    counts: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != PREFIX + name:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_bucket"):
                continue
            if any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            bound = float(sample.labels["le"])
            counts[bound] = counts.get(bound, 0.0) + sample.value
    return counts


def quantile_ms(counts: Mapping[float, float], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding quantile ``q``; ``None`` without samples,
    ``inf`` past the last bound."""
    bounds = sorted(counts)
    if not bounds or counts[bounds[-1]] == 0:
        return None
    rank = q * counts[bounds[-1]]
    bound = next(b for b in bounds if counts[b] >= rank)
    return bound * 1000


Counts = dict[str, dict[float, float]]


def collect(ports: Sequence[int]) -> Counts:
    """Every watched histogram's cumulative counts, summed over the nodes on ``ports`` (a node
    that does not answer counts nothing)."""
    texts = []
    for port in ports:
        try:
            texts.append(fetch(port))
        except OSError:
            continue
    out: Counts = {}
    for key, (name, labels) in WATCHED.items():
        counts = out[key] = {}
        for text in texts:
            for bound, value in buckets(text, name, labels).items():
                counts[bound] = counts.get(bound, 0.0) + value
    return out


def summary(
    after: Counts, before: Counts | None = None, quantiles: Sequence[float] = (0.5, 0.99)
) -> dict[str, dict[str, float | None]]:
    """``{name: {"count", "p50_le_ms", "p99_le_ms"}}`` of what was observed between the two
    collections (``before`` taken when the sale opened: the connect phase stays out)."""
    out: dict[str, dict[str, float | None]] = {}
    for key, counts in after.items():
        earlier = (before or {}).get(key, {})
        window = {bound: value - earlier.get(bound, 0.0) for bound, value in counts.items()}
        figures: dict[str, float | None] = {"count": window.get(float("inf"))}
        for q in quantiles:
            figures[f"p{round(q * 100)}_le_ms"] = quantile_ms(window, q)
        out[key] = figures
    return out
