from pydantic import Field, model_validator

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView, decide


class NumericAttributeSettings(PolicySettings):
    key: str = Field(min_length=1)
    min_value: int = 0
    max_value: int = 0
    invert_match: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> "NumericAttributeSettings":
        if not self.min_value and not self.max_value:
            raise ValueError("set min_value, max_value or both")
        if self.min_value and self.max_value and self.max_value < self.min_value:
            raise ValueError("max_value must be at least min_value")
        return self


class NumericAttributePolicy(Policy):
    """Samples traces where a span or its resource has an integer `key` within
    [min_value, max_value], both inclusive. As in the Collector, a bound that is
    unset or 0 is open.
    With invert_match, samples the traces where none does."""

    type_name = "numeric_attribute"
    settings_model = NumericAttributeSettings

    def prepare(self) -> None:
        self._low = self.settings.min_value or float("-inf")
        self._high = self.settings.max_value or float("inf")

    def evaluate(self, trace: TraceView) -> Decision:
        low, high = self._low, self._high
        matched = any(
            isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
            for value in trace.attribute_values(self.settings.key)
        )
        return decide(matched != self.settings.invert_match)
