from typing import Any

from pydantic import Field, model_validator

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView, decide


class SpanCountSettings(PolicySettings):
    min_spans: int = Field(ge=0)
    max_spans: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _max_above_min(self) -> "SpanCountSettings":
        if self.max_spans and self.max_spans < self.min_spans:
            raise ValueError("max_spans must be 0 (no upper bound) or at least min_spans")
        return self


class SpanCountPolicy(Policy):
    """Samples traces with at least min_spans spans and, when max_spans is set, at most that many."""

    type_name = "span_count"
    settings_model = SpanCountSettings

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        if settings.max_spans:
            return "span_count with max_spans can change its answer as spans arrive"
        return None

    def evaluate(self, trace: TraceView) -> Decision:
        count = trace.span_count
        upper = self.settings.max_spans
        return decide(count >= self.settings.min_spans and (not upper or count <= upper))
