from pydantic import Field

from sampler.policies.base import PolicySettings, TraceView
from sampler.policies.token_bucket import TokenBucketPolicy


class BytesLimitingSettings(PolicySettings):
    bytes_per_second: int = Field(gt=0)
    burst_capacity: int | None = Field(None, gt=0)


class BytesLimitingPolicy(TokenBucketPolicy):
    """Samples traces while a token bucket of bytes allows: it refills at
    bytes_per_second up to burst_capacity (default: twice bytes_per_second), and a
    trace is sampled when the bucket holds at least its size (its spans' protobuf bytes)."""

    type_name = "bytes_limiting"
    settings_model = BytesLimitingSettings
    rate_setting = "bytes_per_second"
    burst_seconds = 2.0

    def cost(self, trace: TraceView) -> int:
        return trace.trace.nbytes
