"""ottl_condition: samples a trace when an OTTL condition holds on one of its spans or span events,
as the Collector's policy takes them (the language: sampler/ottl/)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sampler.ottl.compile import Context, Evaluator, OttlError, compile_condition, holds
from sampler.policies.base import Decision, Policy, PolicySettings, TraceView


class OttlConditionSettings(PolicySettings):
    error_mode: Literal["propagate", "ignore", "silent"] = "propagate"
    span: list[str] = Field(default_factory=list)
    spanevent: list[str] = Field(default_factory=list)

    @field_validator("span", "spanevent")
    @classmethod
    def _conditions_compile(cls, conditions: list[str], info: Any) -> list[str]:
        for index, condition in enumerate(conditions):
            try:
                compile_condition(condition, info.field_name)
            except ValueError as exc:
                raise ValueError(f"condition [{index}]: {exc}") from None
        return conditions

    @model_validator(mode="after")
    def _some_condition(self) -> OttlConditionSettings:
        if not self.span and not self.spanevent:
            raise ValueError("expected at least one condition in span or spanevent")
        return self


class OttlConditionPolicy(Policy):
    """Samples a trace when any span satisfies any `span` condition, or any span
    event satisfies any `spanevent` condition. error_mode says what an evaluation
    error does: propagate (the policy fails for that trace), ignore or silent
    (the condition counts as false)."""

    type_name = "ottl_condition"
    settings_model = OttlConditionSettings

    def prepare(self) -> None:
        self._span = [compile_condition(text, "span") for text in self.settings.span]
        self._event = [compile_condition(text, "spanevent") for text in self.settings.spanevent]
        self._propagate = self.settings.error_mode == "propagate"

    def _holds(self, condition: Evaluator, context: Context) -> bool:
        try:
            return holds(condition, context)
        except OttlError:
            if self._propagate:
                raise
            return False

    def evaluate(self, trace: TraceView) -> Decision:
        for record in trace.spans():
            context = Context(record)
            for condition in self._span:
                if self._holds(condition, context):
                    return Decision.SAMPLED
            if self._event:
                for event in record.span.events:
                    event_context = Context(record, event)
                    for condition in self._event:
                        if self._holds(condition, event_context):
                            return Decision.SAMPLED
        return Decision.NOT_SAMPLED
