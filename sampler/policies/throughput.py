"""throughput: about goal_throughput_per_sec traces kept per second, adapting to the incoming
rate (see adaptive.py)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sampler.policies.adaptive import AdaptivePolicy, AdaptiveSettings


class ThroughputSettings(AdaptiveSettings):
    goal_throughput_per_sec: float = Field(gt=0)


class ThroughputPolicy(AdaptivePolicy):
    """Keeps about goal_throughput_per_sec traces per second, adapting to the incoming rate
    (spread over keys when key_fields are given) instead of keeping the first ones each second."""

    type_name = "throughput"
    settings_model = ThroughputSettings

    @classmethod
    def settings_for_workers(cls, settings: Any, workers: int) -> Any:
        # Each worker sees 1/workers of the traces and keeps its share of the goal.
        return settings.model_copy(update={"goal_throughput_per_sec": settings.goal_throughput_per_sec / workers})

    def goal_rate(self, traces_per_second: float) -> float:
        return max(1.0, traces_per_second / self.settings.goal_throughput_per_sec)
