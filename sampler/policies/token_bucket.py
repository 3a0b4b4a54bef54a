"""The token bucket behind rate_limiting (spans) and bytes_limiting (bytes), and the policy
both are: sample a trace while the bucket holds what the trace costs."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

from sampler.clock import Clock
from sampler.policies.base import Decision, Policy, TraceView, decide


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


class TokenBucketPolicy(Policy):
    """Samples a trace when the bucket holds its `cost` (and spends it). The bucket refills at the
    setting named `rate_setting` per second, up to `burst_capacity` (default: `burst_seconds`
    of the rate). Subclasses name the setting and the cost."""

    rate_setting: ClassVar[str]
    burst_seconds: ClassVar[float] = 1.0

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        return f"{cls.type_name} keeps state across traces"

    @classmethod
    def settings_for_workers(cls, settings: Any, workers: int) -> Any:
        # Each worker decides 1/workers of the traces: its bucket refills at that share of the rate.
        burst = settings.burst_capacity
        return settings.model_copy(
            update={
                cls.rate_setting: getattr(settings, cls.rate_setting) / workers,
                "burst_capacity": burst and burst / workers,
            }
        )

    def prepare(self) -> None:
        rate = getattr(self.settings, self.rate_setting)
        self._bucket = TokenBucket(rate, self.settings.burst_capacity or self.burst_seconds * rate, self.clock)

    def evaluate(self, trace: TraceView) -> Decision:
        return decide(self._bucket.take(self.cost(trace)))

    @abstractmethod
    def cost(self, trace: TraceView) -> int:
        """The tokens the trace takes."""
