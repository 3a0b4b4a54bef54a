"""throughput: adaptive sample rates toward a number of kept traces per second."""

from __future__ import annotations

import os

from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import FakeClock, config_errors, decide, make_policy


def trace(route: str) -> list:
    return [make_span(os.urandom(16), attributes={"http.route": route})]


def test_throughput_converges_on_the_goal_rate():
    clock = FakeClock(0.0)
    policy = make_policy(
        "throughput", {"goal_throughput_per_sec": 50, "adjustment_interval": "2s", "weight": 0.5}, clock
    )
    kept_per_second = []
    for _second in range(12):
        kept = 0
        for _ in range(1000):  # 1000 traces per second come in
            kept += decide(policy, trace("/x")) is Decision.SAMPLED
            clock.advance(0.001)
        kept_per_second.append(kept)
    assert kept_per_second[0] == 1000  # nothing to adapt to yet
    steady = kept_per_second[-4:]
    assert all(30 <= kept <= 75 for kept in steady), kept_per_second


def test_configuration_errors():
    assert config_errors({"name": "t", "type": "throughput", "throughput": {"goal_throughput_per_sec": 0}})
