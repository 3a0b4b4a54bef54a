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

    def prepare(self) -> None:
        rate = self.settings.bytes_per_second
        self._bucket = TokenBucket(rate, self.settings.burst_capacity or 2 * rate, self.clock)

    def evaluate(self, trace: TraceView) -> Decision:
        return decide(self._bucket.take(trace.trace.nbytes))
