"""Rate limits of the REST API (SPEC §7): token buckets per client IP, per user, and for guest
identities.

Each bucket holds at most one second's worth of requests (at least one) and refills at the
configured rate: ``--rest-rate-per-ip`` for every ``/api`` request by client IP,
``--rest-rate-per-user`` for every authenticated request by user, ``--guest-rate-per-ip`` for
``POST /api/auth/guest``, ``--sign-in-rate-per-ip`` for sign-in e-mails and code attempts
(``/api/auth/email…``). Over the limit the answer is a 429 problem with ``Retry-After``.

A bucket left alone long enough to refill is indistinguishable from no bucket, so the map drops
such buckets in a sweep every few seconds: its size is bounded by the clients of the last few
seconds, not by every client ever seen. The client IP is the TCP peer's address; behind a
reverse proxy that is the proxy's (``X-Forwarded-For`` is not trusted, since any client can send
it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from server.settings import Settings

#: How often idle buckets are dropped.
SWEEP_EVERY_S = 5.0


class TokenBuckets:
    """Token buckets by key; :meth:`take` answers how long to wait (0: go ahead)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._clock = clock
        #: key → (tokens left, when counted)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._refill_s = self.capacity / rate
        self._swept = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        now = self._clock()
        if now - self._swept >= SWEEP_EVERY_S:
            self._sweep(now)
        tokens, counted = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - counted) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0

    def _sweep(self, now: float) -> None:
        self._swept = now
        full_after = self._refill_s
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


@dataclass
class RateLimits:
    per_ip: TokenBuckets
    per_user: TokenBuckets
    guests_per_ip: TokenBuckets
    sign_ins_per_ip: TokenBuckets

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(
            TokenBuckets(settings.rest_rate_per_ip),
            TokenBuckets(settings.rest_rate_per_user),
            TokenBuckets(settings.guest_rate_per_ip),
            TokenBuckets(settings.sign_in_rate_per_ip),
        )
