"""What the policy types made of sub-policies (and, drop, not, composite) share.

Sub-policies are leaf types; a `composite` may also hold `and` policies, as in the Collector.
"""

from __future__ import annotations

from sampler.policies.base import Decision, Policy, TraceView


def all_sample(policies: list[Policy], trace: TraceView) -> bool:
    """Whether every policy samples the trace; stops at the first that does not."""
    return all(policy.evaluate(trace) is Decision.SAMPLED for policy in policies)


def build_sub_policies(configs: list, clock) -> list[Policy]:  # type: ignore[type-arg]
    from sampler.policies import build_policy

    return [build_policy(config, clock) for config in configs]
