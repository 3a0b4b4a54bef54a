from typing import Any

from pydantic import Field, model_validator

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView, decide


class LatencySettings(PolicySettings):
    threshold_ms: int = Field(ge=0)
    upper_threshold_ms: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _upper_above_lower(self) -> "LatencySettings":
        if self.upper_threshold_ms and self.upper_threshold_ms < self.threshold_ms:
            raise ValueError("upper_threshold_ms must be 0 (no upper bound) or at least threshold_ms")
        return self


class LatencyPolicy(Policy):
    """Samples traces whose duration (latest span end minus earliest span start,
    in whole milliseconds) is above threshold_ms and, when upper_threshold_ms is
    set, at most that: the Collector's bounds since v0.155 (exclusive lower, inclusive upper)."""

    type_name = "latency"
    settings_model = LatencySettings

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        if settings.upper_threshold_ms:
            return "latency with upper_threshold_ms can change its answer as spans arrive"
        return None

    def evaluate(self, trace: TraceView) -> Decision:
        duration_ms = trace.duration_ns // 1_000_000
        upper = self.settings.upper_threshold_ms
        return decide(self.settings.threshold_ms < duration_ms and (not upper or duration_ms <= upper))
