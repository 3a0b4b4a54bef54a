"""Policies made of sub-policies: `and`, `drop`, `not` and `composite`.

Sub-policies are leaf types; a `composite` may also hold `and` policies, as in the Collector.
"""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from sampler.policies.base import (
    CompositeSubPolicy,
    Decision,
    LeafSubPolicy,
    Policy,
    PolicySettings,
    TraceView,
)


def _all_sample(policies: list[Policy], trace: TraceView) -> bool:
    """Whether every policy samples the trace; stops at the first that does not."""
    return all(policy.evaluate(trace) is Decision.SAMPLED for policy in policies)


def _build(configs: list, clock) -> list[Policy]:  # type: ignore[type-arg]
    from sampler.policies import build_policy

    return [build_policy(config, clock) for config in configs]


class AndSettings(PolicySettings):
    and_sub_policy: list[LeafSubPolicy] = Field(default_factory=list)


class AndPolicy(Policy):
    """Samples a trace when no sub-policy says not sampled (an empty list samples everything).
    Sub-policies run in order and stop at the first not sampled, so a stateful one
    (rate_limiting) only spends its budget on traces the earlier ones accepted."""

    type_name = "and"
    settings_model = AndSettings
    compound = True

    def prepare(self) -> None:
        self.sub_policies = _build(self.settings.and_sub_policy, self.clock)

    def evaluate(self, trace: TraceView) -> Decision:
        return Decision.SAMPLED if _all_sample(self.sub_policies, trace) else Decision.NOT_SAMPLED

    def describe(self) -> str:
        return "and(" + ", ".join(f"{p.name}: {p.describe()}" for p in self.sub_policies) + ")"


class DropSettings(PolicySettings):
    drop_sub_policy: list[LeafSubPolicy] = Field(default_factory=list)


class DropPolicy(Policy):
    """Drops a trace when every sub-policy matches it; a drop overrides every other policy.
    Drop policies are evaluated before all others."""

    type_name = "drop"
    settings_model = DropSettings
    compound = True

    def prepare(self) -> None:
        self.sub_policies = _build(self.settings.drop_sub_policy, self.clock)

    def evaluate(self, trace: TraceView) -> Decision:
        return Decision.DROPPED if _all_sample(self.sub_policies, trace) else Decision.NOT_SAMPLED

    def describe(self) -> str:
        return "drop(" + ", ".join(f"{p.name}: {p.describe()}" for p in self.sub_policies) + ")"


class NotSettings(PolicySettings):
    not_sub_policy: LeafSubPolicy


class NotPolicy(Policy):
    """Samples what its one sub-policy does not sample, and the reverse."""

    type_name = "not"
    settings_model = NotSettings
    compound = True

    def prepare(self) -> None:
        (self.sub_policy,) = _build([self.settings.not_sub_policy], self.clock)

    def evaluate(self, trace: TraceView) -> Decision:
        decision = self.sub_policy.evaluate(trace)
        if decision is Decision.SAMPLED:
            return Decision.NOT_SAMPLED
        if decision is Decision.NOT_SAMPLED:
            return Decision.SAMPLED
        return decision

    def describe(self) -> str:
        return f"not({self.sub_policy.name}: {self.sub_policy.describe()})"


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

    def prepare(self) -> None:
        settings = self.settings
        self.sub_policies = _build(settings.composite_sub_policy, self.clock)
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

    def evaluate(self, trace: TraceView) -> Decision:
        self.last_sampled_by = None
        second = math.floor(self.clock())
        if second != self._second:
            self._second = second
            self._spent = [0] * len(self.sub_policies)
        total = self.settings.max_total_spans_per_second
        for index, policy in enumerate(self.sub_policies):
            if policy.evaluate(trace) is not Decision.SAMPLED:
                continue
            spent = self._spent[index] + trace.span_count
            if spent <= self._budgets[index] and spent <= total:
                self._spent[index] = spent
                self.last_sampled_by = policy.name
                return Decision.SAMPLED
            return Decision.NOT_SAMPLED
        return Decision.NOT_SAMPLED

    def describe(self) -> str:
        shares = zip(self.sub_policies, self._budgets, strict=True)
        parts = ", ".join(f"{p.name}: {p.describe()} ({budget:g} spans/s)" for p, budget in shares)
        return f"composite(max_total_spans_per_second={self.settings.max_total_spans_per_second}; {parts})"
