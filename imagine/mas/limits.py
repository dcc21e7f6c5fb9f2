"""Per-endpoint concurrency and requests-per-minute limits.

Providers throttle per key and endpoint, not per role, so roles that share a base URL share one
limiter: otherwise two Judges and a Reasoner on the same key would each believe they own the quota.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager


class RateLimiter:
    """At most ``concurrency`` calls in flight and at most ``rpm`` call starts per minute.

    The rpm part is a token bucket refilled continuously at rpm/60 per second, holding at most
    ``burst`` tokens (default: one second's worth), so a cold start cannot fire a minute's quota at once.
    """

    def __init__(self, concurrency: int, rpm: float = 0.0, burst: float | None = None,
                 clock=time.monotonic):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.concurrency = concurrency
        self.rpm = float(rpm)
        self._sem = asyncio.Semaphore(concurrency)
        self._rate = self.rpm / 60.0
        self._capacity = max(1.0, burst if burst is not None else self._rate)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = asyncio.Lock()

    async def _take_token(self) -> None:
        if self._rate <= 0:
            return
        async with self._lock:  # one waiter at a time keeps starts evenly spaced
            while True:
                now = self._clock()
                self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
                self._last = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self._rate)

    @asynccontextmanager
    async def slot(self):
        async with self._sem:
            await self._take_token()
            yield


class LimiterRegistry:
    """One :class:`RateLimiter` per endpoint key; the first role to ask sets its limits."""

    def __init__(self):
        self._limiters: dict[str, RateLimiter] = {}

    def get(self, key: str, concurrency: int, rpm: float = 0.0) -> RateLimiter:
        if key not in self._limiters:
            self._limiters[key] = RateLimiter(concurrency, rpm)
        return self._limiters[key]
