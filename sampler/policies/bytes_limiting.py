from typing import Any

from pydantic import Field

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView, decide
from sampler.policies.token_bucket import TokenBucket


class BytesLimitingSettings(PolicySettings):
    bytes_per_second: int = Field(gt=0)
    burst_capacity: int | None = Field(None, gt=0)


class BytesLimitingPolicy(Policy):
    """Samples traces while a token bucket of bytes allows: it refills at
    bytes_per_second up to burst_capacity (default: twice bytes_per_second), and a
    trace is sampled when the bucket holds at least its size (its spans' protobuf bytes)."""

    type_name = "bytes_limiting"
    settings_model = BytesLimitingSettings

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        return f"{cls.type_name} keeps state across traces"

    @classmethod
    def settings_for_workers(cls, settings: Any, workers: int) -> Any:
        # Each worker decides 1/workers of the traces: its bucket refills at that share of the rate.
        burst = settings.burst_capacity
        return settings.model_copy(
            update={
                "bytes_per_second": settings.bytes_per_second / workers,
                "burst_capacity": burst and burst / workers,
            }
        )

    def prepare(self) -> None:
        rate = self.settings.bytes_per_second
        self._bucket = TokenBucket(rate, self.settings.burst_capacity or 2 * rate, self.clock)

    def evaluate(self, trace: TraceView) -> Decision:
        return decide(self._bucket.take(trace.trace.nbytes))
