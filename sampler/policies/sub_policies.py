"""What the policy types made of sub-policies (and, drop, not, composite) share.

Sub-policies are leaf types; a `composite` may also hold `and` policies, as in the Collector.
"""

from __future__ import annotations

from collections.abc import Iterable

from sampler.clock import Clock
from sampler.policies.base import Decision, Policy, PolicyConfig, TraceView


def all_sample(policies: list[Policy], trace: TraceView) -> bool:
    """Whether every policy samples the trace; stops at the first that does not."""
    return all(policy.evaluate(trace) is Decision.SAMPLED for policy in policies)


def build_sub_policies(configs: Iterable[PolicyConfig], clock: Clock) -> list[Policy]:
    return [config.build(clock) for config in configs]


def stateful_sub_policy(configs: Iterable[PolicyConfig]) -> str | None:
    """Why the first sub-policy that cannot decide span by span cannot, or None if all can."""
    for sub in configs:
        reason = sub.stateful_reason()
        if reason:
            return f"its sub-policy {sub.name!r}: {reason}"
    return None


def sub_policies_for_workers(configs: Iterable[PolicyConfig], workers: int) -> list[PolicyConfig]:
    """The sub-policies as each of `workers` worker processes runs them (PolicyConfig.for_workers)."""
    return [config.for_workers(workers) for config in configs]
