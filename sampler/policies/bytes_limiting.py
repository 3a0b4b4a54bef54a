from pydantic import Field

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView


class BytesLimitingSettings(PolicySettings):
    bytes_per_second: int = Field(gt=0)
    burst_capacity: int | None = Field(None, gt=0)


class BytesLimitingPolicy(Policy):
    """Samples traces while a token bucket of bytes allows: it refills at
    bytes_per_second up to burst_capacity (default: twice bytes_per_second), and a
    trace is sampled when the bucket holds at least its size (its spans' protobuf bytes)."""

    type_name = "bytes_limiting"
    settings_model = BytesLimitingSettings

    def prepare(self) -> None:
        self._rate = float(self.settings.bytes_per_second)
        self._capacity = float(self.settings.burst_capacity or 2 * self.settings.bytes_per_second)
        self._tokens = self._capacity
        self._updated = self.clock()

    def evaluate(self, trace: TraceView) -> Decision:
        now = self.clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        size = trace.trace.nbytes
        if self._tokens >= size:
            self._tokens -= size
            return Decision.SAMPLED
        return Decision.NOT_SAMPLED
