"""dynamic: about one trace in goal_sample_rate kept, rare keys more often (see adaptive.py)."""

from __future__ import annotations

from pydantic import Field

from sampler.policies.adaptive import AdaptivePolicy, AdaptiveSettings


class DynamicSettings(AdaptiveSettings):
    goal_sample_rate: int = Field(ge=1)
    key_fields: list[str] = Field(min_length=1)


class DynamicPolicy(AdaptivePolicy):
    """Keeps about one in goal_sample_rate traces overall, rare keys more often than frequent ones."""

    type_name = "dynamic"
    settings_model = DynamicSettings

    def goal_rate(self, traces_per_second: float) -> float:
        return float(self.settings.goal_sample_rate)
