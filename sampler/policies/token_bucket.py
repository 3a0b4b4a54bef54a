"""The token bucket behind rate_limiting (spans) and bytes_limiting (bytes)."""

from __future__ import annotations

from sampler.clock import Clock


class TokenBucket:
    """Refills at `rate` tokens per second up to `capacity`, starting full."""

    def __init__(self, rate: float, capacity: float, clock: Clock) -> None:
        self._rate = rate
        self._capacity = capacity
        self._tokens = capacity
        self._clock = clock
        self._updated = clock()

    def take(self, amount: float) -> bool:
        """Spend `amount` tokens if the bucket holds that many; False (and nothing spent) if not."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False
