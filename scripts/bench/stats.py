"""Percentile summaries and latency histograms: how every benchmark reports a distribution."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "max": 1.0}


def percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    """Nearest-rank percentiles of ``values`` (any order); ``None`` for an empty sequence."""
    if not values:
        return [None for _ in qs]
    ordered = sorted(values)
    n = len(ordered)
    return [ordered[min(n - 1, max(0, math.ceil(q * n) - 1))] for q in qs]


def ms_summary(
    seconds: Iterable[float],
    names: Sequence[str] = ("p50", "p99", "max"),
    *,
    digits: int = 1,
) -> dict[str, float | None]:
    """``{name: milliseconds}`` for percentile names of :data:`QUANTILES` and ``mean``."""
    values = list(seconds)
    found = percentiles(values, [QUANTILES.get(n, 1.0) for n in names])
    out: dict[str, float | None] = {}
    for name, found_value in zip(names, found, strict=True):
        value = (sum(values) / len(values) if values else None) if name == "mean" else found_value
        out[name] = None if value is None else round(value * 1000, digits)
    return out


# -- a log-bucketed latency histogram --------------------------------------------------------
# Exact below 128 µs, then 64 sub-buckets per power of two (about 1.6 % error): counting a
# delivery is one list increment, and workers ship only the non-empty buckets.

HIST_SIZE = 64 * 128


def hist_index(us: int) -> int:
    if us < 128:
        return us if us > 0 else 0
    e = us.bit_length() - 7
    idx = (e << 7) + (us >> e)
    return idx if idx < HIST_SIZE else HIST_SIZE - 1


def hist_value(idx: int) -> float:
    """Midpoint (in microseconds) of the bucket ``idx``."""
    if idx < 128:
        return float(idx)
    e, m = idx >> 7, idx & 127
    return float((m << e) + ((1 << e) >> 1))


def hist_percentiles(hist: dict[int, int], qs: Sequence[float]) -> list[float | None]:
    total = sum(hist.values())
    if total == 0:
        return [None for _ in qs]
    out: list[float | None] = []
    keys = sorted(hist)
    for q in qs:
        rank = max(1, math.ceil(q * total))
        seen = 0
        for k in keys:
            seen += hist[k]
            if seen >= rank:
                out.append(hist_value(k))
                break
    return out


def hist_ms(hist: dict[int, int], names: Sequence[str]) -> dict[str, float | None]:
    """``{name: milliseconds}`` of a histogram for percentile names of :data:`QUANTILES`."""
    found = hist_percentiles(hist, [QUANTILES[n] for n in names])
    return {
        n: (None if v is None else round(v / 1000, 3)) for n, v in zip(names, found, strict=True)
    }


def merge_hists(hists: Iterable[dict[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for hist in hists:
        for k, c in hist.items():
            out[k] = out.get(k, 0) + c
    return out


# -- errors ----------------------------------------------------------------------------------


class Errors(Counter[str]):
    """Error texts and how often each happened (a run may hit the same one thousands of times)."""

    def add(self, what: str) -> None:
        self[what[:300]] += 1

    def merge(self, parts: Iterable[dict[str, int]]) -> None:
        for part in parts:
            self.update(part)

    def as_list(self) -> list[str]:
        return [f"{text}: {count} x" if count > 1 else text for text, count in self.most_common(20)]
