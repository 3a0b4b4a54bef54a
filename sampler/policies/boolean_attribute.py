from pydantic import Field

from sampler.policies.base import Decision, Policy, PolicySettings, TraceView, decide


class BooleanAttributeSettings(PolicySettings):
    key: str = Field(min_length=1)
    value: bool
    invert_match: bool = False


class BooleanAttributePolicy(Policy):
    """Samples traces where a span or its resource has the boolean `key` equal to `value`.
    With invert_match, samples the traces where none does."""

    type_name = "boolean_attribute"
    settings_model = BooleanAttributeSettings

    def evaluate(self, trace: TraceView) -> Decision:
        wanted = self.settings.value
        matched = any(
            isinstance(value, bool) and value is wanted for value in trace.attribute_values(self.settings.key)
        )
        return decide(matched != self.settings.invert_match)
