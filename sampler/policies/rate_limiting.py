from typing import Any

from pydantic import Field

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView, decide
from sampler.policies.token_bucket import TokenBucket


class RateLimitingSettings(PolicySettings):
    spans_per_second: int = Field(gt=0)
    burst_capacity: int | None = Field(None, gt=0)


class RateLimitingPolicy(Policy):
    """Samples traces while a token bucket of spans allows: it refills at
    spans_per_second up to burst_capacity (default: spans_per_second), and a
    trace is sampled when the bucket holds at least its span count."""

    type_name = "rate_limiting"
    settings_model = RateLimitingSettings

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        return f"{cls.type_name} keeps state across traces"

    @classmethod
    def settings_for_workers(cls, settings: Any, workers: int) -> Any:
        # Each worker decides 1/workers of the traces: its bucket refills at that share of the rate.
        burst = settings.burst_capacity
        return settings.model_copy(
            update={
                "spans_per_second": settings.spans_per_second / workers,
                "burst_capacity": burst and burst / workers,
            }
        )

    def prepare(self) -> None:
        rate = self.settings.spans_per_second
        self._bucket = TokenBucket(rate, self.settings.burst_capacity or rate, self.clock)

    def evaluate(self, trace: TraceView) -> Decision:
        return decide(self._bucket.take(trace.span_count))
