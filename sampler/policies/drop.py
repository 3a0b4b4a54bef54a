"""drop: vetoes a trace when every one of its sub-policies matches it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sampler.policies.base import Decision, LeafSubPolicy, Policy, PolicySettings, TraceView
from sampler.policies.sub_policies import (
    all_sample,
    build_sub_policies,
    stateful_sub_policy,
    sub_policies_for_workers,
)


class DropSettings(PolicySettings):
    drop_sub_policy: list[LeafSubPolicy] = Field(default_factory=list)


class DropPolicy(Policy):
    """Drops a trace when every sub-policy matches it; a drop overrides every other policy.
    Drop policies are evaluated before all others."""

    type_name = "drop"
    settings_model = DropSettings
    compound = True
    runs_first = True

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        return stateful_sub_policy(settings.drop_sub_policy)

    @classmethod
    def settings_for_workers(cls, settings: Any, workers: int) -> Any:
        return settings.model_copy(
            update={"drop_sub_policy": sub_policies_for_workers(settings.drop_sub_policy, workers)}
        )

    def prepare(self) -> None:
        self.sub_policies = build_sub_policies(self.settings.drop_sub_policy, self.clock)

    def evaluate(self, trace: TraceView) -> Decision:
        return Decision.DROPPED if all_sample(self.sub_policies, trace) else Decision.NOT_SAMPLED

    def describe(self) -> str:
        return "drop(" + ", ".join(f"{p.name}: {p.describe()}" for p in self.sub_policies) + ")"
