from pydantic import Field

from sampler.policies.base import PolicySettings, TraceView
from sampler.policies.token_bucket import TokenBucketPolicy


class RateLimitingSettings(PolicySettings):
    spans_per_second: int = Field(gt=0)
    burst_capacity: int | None = Field(None, gt=0)


class RateLimitingPolicy(TokenBucketPolicy):
    """Samples traces while a token bucket of spans allows: it refills at
    spans_per_second up to burst_capacity (default: spans_per_second), and a
    trace is sampled when the bucket holds at least its span count."""

    type_name = "rate_limiting"
    settings_model = RateLimitingSettings
    rate_setting = "spans_per_second"

    def cost(self, trace: TraceView) -> int:
        return trace.span_count
