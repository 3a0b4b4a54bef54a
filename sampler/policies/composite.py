"""composite: a budget of spans per second shared between sub-policies."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, model_validator

from sampler.policies.base import CompositeSubPolicy, Decision, Policy, PolicySettings, TraceView, Weight
from sampler.policies.sub_policies import build_sub_policies, sub_policies_for_workers


class RateAllocation(PolicySettings):
    policy: str
    percent: int = 0


class CompositeSettings(PolicySettings):
    max_total_spans_per_second: int = Field(gt=0)
    policy_order: list[str] = Field(default_factory=list)
    composite_sub_policy: list[CompositeSubPolicy] = Field(min_length=1)
    rate_allocation: list[RateAllocation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_exist(self) -> CompositeSettings:
        names = [policy.name for policy in self.composite_sub_policy]
        for field, referenced in (
            ("policy_order", self.policy_order),
            ("rate_allocation", [allocation.policy for allocation in self.rate_allocation]),
        ):
            for name in referenced:
                if name not in names:
                    raise ValueError(
                        f"{field} names {name!r}, which is not a sub-policy; sub-policies: {', '.join(names)}"
                    )
        return self


class CompositePolicy(Policy):
    """Shares a budget of spans per second between sub-policies, in the order of
    composite_sub_policy (policy_order is accepted, and, as in the Collector, does not
    change that order). The first sub-policy that samples a trace decides it: sampled
    while that sub-policy's share of the current second has room for the trace's spans,
    otherwise not sampled. A share is `percent` of max_total_spans_per_second, an equal
    share for percent 0; a sub-policy missing from rate_allocation has no share (the
    Collector's behaviour)."""

    type_name = "composite"
    settings_model = CompositeSettings
    compound = True

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        return f"{cls.type_name} keeps state across traces"

    @classmethod
    def settings_for_workers(cls, settings: Any, workers: int) -> Any:
        # Each worker decides 1/workers of the traces, so it spends that share of the budget.
        return settings.model_copy(
            update={
                "max_total_spans_per_second": settings.max_total_spans_per_second / workers,
                "composite_sub_policy": sub_policies_for_workers(settings.composite_sub_policy, workers),
            }
        )

    def prepare(self) -> None:
        settings = self.settings
        self.sub_policies = build_sub_policies(settings.composite_sub_policy, self.clock)
        total = settings.max_total_spans_per_second
        equal_share = total / len(self.sub_policies)
        percent = {allocation.policy: allocation.percent for allocation in settings.rate_allocation}
        self._budgets = [
            (percent[p.name] / 100 * total if percent[p.name] > 0 else equal_share) if p.name in percent else 0.0
            for p in self.sub_policies
        ]
        self._spent = [0] * len(self.sub_policies)
        self._second = -math.inf
        self.last_sampled_by: str | None = None
        self.last_matched_by: str | None = None
        self._last_weight: Weight | None = None

    def evaluate(self, trace: TraceView) -> Decision:
        self.last_sampled_by = self.last_matched_by = None
        second = math.floor(self.clock())
        if second != self._second:
            self._second = second
            self._spent = [0] * len(self.sub_policies)
        total = self.settings.max_total_spans_per_second
        for index, policy in enumerate(self.sub_policies):
            if policy.evaluate(trace) is not Decision.SAMPLED:
                continue
            self.last_matched_by = policy.name
            spent = self._spent[index] + trace.span_count
            if spent <= self._budgets[index] and spent <= total:
                self._spent[index] = spent
                self.last_sampled_by = policy.name
                self._last_weight = policy.weight()
                return Decision.SAMPLED
            return Decision.NOT_SAMPLED
        return Decision.NOT_SAMPLED

    def credited_sub_policy(self) -> str | None:
        return self.last_sampled_by

    def matched_sub_policy(self) -> str | None:
        return self.last_matched_by

    def weight(self) -> Weight | None:
        # The sub-policy's own: the share of spans per second is a budget, not a probability.
        return self._last_weight

    def describe(self) -> str:
        shares = zip(self.sub_policies, self._budgets, strict=True)
        parts = ", ".join(f"{p.name}: {p.describe()} ({budget:g} spans/s)" for p, budget in shares)
        return f"composite(max_total_spans_per_second={self.settings.max_total_spans_per_second}; {parts})"
