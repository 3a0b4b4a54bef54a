"""not: samples what its one sub-policy does not sample, and the reverse."""

from __future__ import annotations

from typing import Any

from sampler.policies.base import Decision, LeafSubPolicy, Policy, PolicySettings, TraceView
from sampler.policies.sub_policies import build_sub_policies, sub_policies_for_workers


class NotSettings(PolicySettings):
    not_sub_policy: LeafSubPolicy


class NotPolicy(Policy):
    """Samples what its one sub-policy does not sample, and the reverse."""

    type_name = "not"
    settings_model = NotSettings
    compound = True

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        return "not can change its answer as spans arrive"

    @classmethod
    def settings_for_workers(cls, settings: Any, workers: int) -> Any:
        (shared,) = sub_policies_for_workers([settings.not_sub_policy], workers)
        return settings.model_copy(update={"not_sub_policy": shared})

    def prepare(self) -> None:
        (self.sub_policy,) = build_sub_policies([self.settings.not_sub_policy], self.clock)

    def evaluate(self, trace: TraceView) -> Decision:
        decision = self.sub_policy.evaluate(trace)
        if decision is Decision.SAMPLED:
            return Decision.NOT_SAMPLED
        if decision is Decision.NOT_SAMPLED:
            return Decision.SAMPLED
        return decision

    def describe(self) -> str:
        return f"not({self.sub_policy.name}: {self.sub_policy.describe()})"
