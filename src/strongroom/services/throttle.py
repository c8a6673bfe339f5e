"""Throttling of failed client authentication, per client id and per source address.

Each key (a client id, an address) has a bucket of ``burst`` failures that refills at one per
``refill_seconds``. A failed attempt takes one from the buckets of both its client id and its
address; a request whose client id or address has an empty bucket is refused before its
credentials are checked (no hashing, and no answer to learn from) until a failure's worth has
refilled. Successes take nothing. The table is bounded: when it is full, buckets that have
refilled completely are dropped, and if that is not enough, the oldest half.

State is per process: with several server processes, each allows its own ``burst``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class FailureThrottle:
    MAX_KEYS = 100_000

    def __init__(
        self,
        burst: int = 20,
        refill_seconds: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._burst = float(burst)
        self._refill = refill_seconds
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, as of)
        self._lock = threading.Lock()

    def _tokens(self, key: str, now: float) -> float:
        found = self._buckets.get(key)
        if found is None:
            return self._burst
        tokens, since = found
        return min(self._burst, tokens + (now - since) / self._refill)

    def retry_after(self, *keys: str) -> int:
        """Seconds to wait before any of ``keys`` may try again; 0 if all may now."""
        now = self._clock()
        with self._lock:
            short = max((1.0 - self._tokens(k, now) for k in keys), default=0.0)
        return 0 if short <= 0 else max(1, int(short * self._refill + 0.999))

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._buckets) >= self.MAX_KEYS:
                self._prune(now)
            for key in keys:
                self._buckets[key] = (max(0.0, self._tokens(key, now) - 1.0), now)

    def _prune(self, now: float) -> None:
        full = [k for k in self._buckets if self._tokens(k, now) >= self._burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.MAX_KEYS:
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            for key in oldest[: len(oldest) // 2]:
                del self._buckets[key]
