"""always_sample: every trace is sampled."""

from __future__ import annotations

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.policies.always_sample import AlwaysSamplePolicy
from sampler.policies.base import Decision, Policy
from tests.support import make_trace
from tests.unit.helpers import config_errors, decide, make_policy


@pytest.mark.parametrize(
    "trace",
    [
        make_trace(spans=1)[1],
        make_trace(spans=5, error=True)[1],
        make_trace(spans=2, root=False, duration_ms=0)[1],
    ],
)
def test_samples_every_trace(trace: list[Span]) -> None:
    policy = make_policy("always_sample")
    assert isinstance(policy, AlwaysSamplePolicy)
    assert decide(policy, trace) is Decision.SAMPLED


def test_builds_without_a_settings_block() -> None:
    policy: Policy = make_policy("always_sample", name="keep-all")
    assert policy.name == "keep-all"
    assert policy.settings is None
    assert policy.describe() == "always_sample"


def test_config_errors() -> None:
    assert config_errors({"name": "a", "type": "always_sample", "always_sample": {}}) == [
        (("always_sample",), "extra_forbidden", "Extra inputs are not permitted")
    ]
    assert [loc for loc, _, _ in config_errors({"type": "always_sample"})] == [("name",)]
    assert [kind for _, kind, _ in config_errors({"name": "a", "type": "always_sample", "extra": 1})] == [
        "extra_forbidden"
    ]
