"""throughput: about goal_throughput_per_sec traces kept per second, adapting to the incoming
rate (see adaptive.py)."""

from __future__ import annotations

from pydantic import Field

from sampler.policies.adaptive import AdaptivePolicy, AdaptiveSettings


class ThroughputSettings(AdaptiveSettings):
    goal_throughput_per_sec: float = Field(gt=0)


class ThroughputPolicy(AdaptivePolicy):
    """Keeps about goal_throughput_per_sec traces per second, adapting to the incoming rate
    (spread over keys when key_fields are given) instead of keeping the first ones each second."""

    type_name = "throughput"
    settings_model = ThroughputSettings

    def goal_rate(self, traces_per_second: float) -> float:
        return max(1.0, traces_per_second / self.settings.goal_throughput_per_sec)
