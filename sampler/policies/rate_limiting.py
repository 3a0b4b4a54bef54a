from pydantic import Field

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView


class RateLimitingSettings(PolicySettings):
    spans_per_second: int = Field(gt=0)
    burst_capacity: int | None = Field(None, gt=0)


class RateLimitingPolicy(Policy):
    """Samples traces while a token bucket of spans allows: it refills at
    spans_per_second up to burst_capacity (default: spans_per_second), and a
    trace is sampled when the bucket holds at least its span count."""

    type_name = "rate_limiting"
    settings_model = RateLimitingSettings

    def prepare(self) -> None:
        self._rate = float(self.settings.spans_per_second)
        self._capacity = float(self.settings.burst_capacity or self.settings.spans_per_second)
        self._tokens = self._capacity
        self._updated = self.clock()

    def evaluate(self, trace: TraceView) -> Decision:
        now = self.clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= trace.span_count:
            self._tokens -= trace.span_count
            return Decision.SAMPLED
        return Decision.NOT_SAMPLED
