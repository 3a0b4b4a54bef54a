"""and: samples a trace when every one of its sub-policies does."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sampler.policies.base import Decision, LeafSubPolicy, Policy, PolicySettings, TraceView, Weight
from sampler.policies.sub_policies import (
    all_sample,
    build_sub_policies,
    stateful_sub_policy,
    sub_policies_for_workers,
)


class AndSettings(PolicySettings):
    and_sub_policy: list[LeafSubPolicy] = Field(default_factory=list)


class AndPolicy(Policy):
    """Samples a trace when no sub-policy says not sampled (an empty list samples everything).
    Sub-policies run in order and stop at the first not sampled, so a stateful one
    (rate_limiting) only spends its budget on traces the earlier ones accepted."""

    type_name = "and"
    settings_model = AndSettings
    compound = True

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        return stateful_sub_policy(settings.and_sub_policy)

    @classmethod
    def settings_for_workers(cls, settings: Any, workers: int) -> Any:
        return settings.model_copy(
            update={"and_sub_policy": sub_policies_for_workers(settings.and_sub_policy, workers)}
        )

    def prepare(self) -> None:
        self.sub_policies = build_sub_policies(self.settings.and_sub_policy, self.clock)

    def evaluate(self, trace: TraceView) -> Decision:
        return Decision.SAMPLED if all_sample(self.sub_policies, trace) else Decision.NOT_SAMPLED

    def weight(self) -> Weight | None:
        # Kept when every sub-policy samples: consistent probability sub-policies pass together
        # above the highest threshold, which is also the highest adjusted count.
        weights = [w for w in (policy.weight() for policy in self.sub_policies) if w is not None]
        return max(weights, key=lambda w: w.rate) if weights else None

    def describe(self) -> str:
        return "and(" + ", ".join(f"{p.name}: {p.describe()}" for p in self.sub_policies) + ")"
