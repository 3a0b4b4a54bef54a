"""The policy registry and the facts each policy type states about itself: whether it may decide span
by span (span-ingest), whether it runs first, and which sub-policy its kept traces are credited to.
A type from outside the built-ins states them the same way, so a plugin is treated like a built-in."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import Field

from sampler.config import ConfigError, parse_config
from sampler.decide.records import DecisionRecorder
from sampler.policies.base import Decision, Policy, PolicySettings, TraceView
from sampler.policies.registry import BUILTIN_POLICIES, POLICIES, PolicyRegistry, PolicyTypeError
from tests.support import make_trace
from tests.unit.helpers import FakeClock, trace_of


def span_ingest_config(*policies: dict[str, Any]) -> str:
    lines = ["tail_sampling:", "  sampling_strategy: span-ingest", "  policies:"]
    lines += [f"    - {policy}" for policy in policies]
    lines += ["exporters:", "  otlp: {endpoint: 127.0.0.1:4317}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("policy", "reason"),
    [
        (
            {"name": "p", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 10}},
            "rate_limiting keeps state across traces",
        ),
        (
            {"name": "p", "type": "bytes_limiting", "bytes_limiting": {"bytes_per_second": 10}},
            "bytes_limiting keeps state across traces",
        ),
        (
            {"name": "p", "type": "dynamic", "dynamic": {"goal_sample_rate": 10, "key_fields": ["name"]}},
            "dynamic keeps state across traces",
        ),
        (
            {"name": "p", "type": "throughput", "throughput": {"goal_throughput_per_sec": 10}},
            "throughput keeps state across traces",
        ),
        (
            {
                "name": "p",
                "type": "composite",
                "composite": {
                    "max_total_spans_per_second": 10,
                    "composite_sub_policy": [{"name": "all", "type": "always_sample"}],
                    "rate_allocation": [{"policy": "all", "percent": 100}],
                },
            },
            "composite keeps state across traces",
        ),
        (
            {"name": "p", "type": "latency", "latency": {"threshold_ms": 1, "upper_threshold_ms": 5}},
            "latency with upper_threshold_ms can change its answer as spans arrive",
        ),
        (
            {"name": "p", "type": "span_count", "span_count": {"min_spans": 1, "max_spans": 5}},
            "span_count with max_spans can change its answer as spans arrive",
        ),
        (
            {"name": "p", "type": "not", "not": {"not_sub_policy": {"name": "all", "type": "always_sample"}}},
            "not can change its answer as spans arrive",
        ),
        (
            {
                "name": "p",
                "type": "and",
                "and": {
                    "and_sub_policy": [
                        {"name": "all", "type": "always_sample"},
                        {"name": "budget", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 10}},
                    ]
                },
            },
            "its sub-policy 'budget': rate_limiting keeps state across traces",
        ),
        (
            {
                "name": "p",
                "type": "drop",
                "drop": {
                    "drop_sub_policy": [
                        {"name": "long", "type": "span_count", "span_count": {"min_spans": 1, "max_spans": 9}}
                    ]
                },
            },
            "its sub-policy 'long': span_count with max_spans can change its answer as spans arrive",
        ),
    ],
)
def test_span_ingest_refuses_policies_that_can_change_their_answer(policy: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(span_ingest_config(policy), "s.yaml")
    assert (
        f"tail_sampling.policies[0].type: policy 'p' cannot run with sampling_strategy: span-ingest: {reason}"
        in str(caught.value)
    )


def test_span_ingest_takes_policies_that_decide_from_the_spans_so_far() -> None:
    config = parse_config(
        span_ingest_config(
            {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
            {"name": "slow", "type": "latency", "latency": {"threshold_ms": 100}},
            {"name": "big", "type": "span_count", "span_count": {"min_spans": 50}},
            {"name": "both", "type": "and", "and": {"and_sub_policy": [{"name": "all", "type": "always_sample"}]}},
        ),
        "s.yaml",
    )
    assert [policy.stateful_reason() for policy in config.policies] == [None] * 4


class QuotaSettings(PolicySettings):
    per_second: int = Field(gt=0)


class QuotaPolicy(Policy):
    """A type from outside the built-ins that keeps state, and says so."""

    type_name = "quota"
    settings_model = QuotaSettings

    @classmethod
    def stateful_reason(cls, settings: Any) -> str | None:
        return f"quota spends {settings.per_second} per second"

    def evaluate(self, trace: TraceView) -> Decision:
        return Decision.SAMPLED


class FirstPolicy(Policy):
    """A type from outside the built-ins that runs before the others and credits a sub-policy."""

    type_name = "first"
    runs_first = True
    evaluated: ClassVar[list[str]] = []

    def evaluate(self, trace: TraceView) -> Decision:
        FirstPolicy.evaluated.append(self.name)
        return Decision.SAMPLED

    def credited_sub_policy(self) -> str | None:
        return "inner"


EXTENDED = PolicyRegistry([*BUILTIN_POLICIES, QuotaPolicy, FirstPolicy])


def test_a_type_from_outside_states_its_own_statefulness_also_as_a_sub_policy() -> None:
    quota = EXTENDED.validate({"name": "q", "type": "quota", "quota": {"per_second": 5}})
    assert quota.stateful_reason() == "quota spends 5 per second"
    both = EXTENDED.validate(
        {
            "name": "both",
            "type": "and",
            "and": {"and_sub_policy": [{"name": "q", "type": "quota", "quota": {"per_second": 5}}]},
        }
    )
    assert both.stateful_reason() == "its sub-policy 'q': quota spends 5 per second"
    assert EXTENDED.validate({"name": "f", "type": "first"}).stateful_reason() is None


def test_runs_first_and_credit_come_from_the_type() -> None:
    from sampler.config.tail_sampling import TailSamplingConfig
    from sampler.decide.engine import TailSampler
    from sampler.telemetry.metrics import Metrics

    policies = [
        EXTENDED.validate({"name": "q", "type": "quota", "quota": {"per_second": 5}}),
        EXTENDED.validate({"name": "f", "type": "first"}),
    ]
    sampler = TailSampler(TailSamplingConfig(policies=policies), lambda trace: None, Metrics(), FakeClock())
    assert [policy.name for policy in sampler.policies] == ["f", "q"]
    _, spans = make_trace(spans=1)
    trace = trace_of(spans)
    final, first, _ = sampler.evaluate(trace)
    assert final is Decision.SAMPLED and first is not None and first.name == "f"
    record = DecisionRecorder(True).record(first, "wait", root_seen=True)
    assert b"tailsampling.composite_policy" in record and b"inner" in record


def test_built_in_types_pass_the_checks_plugins_pass() -> None:
    class Nameless(Policy):
        type_name = "nameless"
        settings_model = dict  # type: ignore[assignment]

        def evaluate(self, trace: TraceView) -> Decision:
            return Decision.SAMPLED

    with pytest.raises(PolicyTypeError, match="settings_model is not a subclass of PolicySettings"):
        PolicyRegistry([*BUILTIN_POLICIES, Nameless])
    with pytest.raises(PolicyTypeError, match="a policy type of that name exists already"):
        PolicyRegistry([*BUILTIN_POLICIES, BUILTIN_POLICIES[0]])


def test_the_registry_lists_the_built_in_types_in_order() -> None:
    assert list(POLICIES.types)[: len(BUILTIN_POLICIES)] == [policy.type_name for policy in BUILTIN_POLICIES]
    assert "and" not in POLICIES.leaf_types and "composite" not in POLICIES.composite_member_types
    assert "and" in POLICIES.composite_member_types


def test_settings_with_sub_policies_are_validated_only_through_the_registry() -> None:
    from sampler.policies.and_ import AndSettings

    with pytest.raises(TypeError, match="validated through sampler.policies.registry"):
        AndSettings.model_validate({"and_sub_policy": [{"name": "all", "type": "always_sample"}]})
