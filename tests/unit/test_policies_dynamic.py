"""dynamic: per-key adaptive sample rates toward a goal rate, from EMA-smoothed counts."""

from __future__ import annotations

import os
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from sampler.policies.adaptive import sample_rates
from sampler.policies.base import Decision
from tests.support import make_span
from tests.unit.helpers import FakeClock, config_errors, decide, make_policy


def trace(route: str) -> list:
    return [make_span(os.urandom(16), attributes={"http.route": route})]


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.text(min_size=1, max_size=5), st.floats(min_value=1, max_value=1e6), min_size=1, max_size=30),
    st.integers(2, 100),
)
def test_sample_rates_keep_about_the_goal_and_favour_rare_keys(ema, goal):
    rates = sample_rates(ema, goal)
    assert set(rates) == set(ema)
    assert all(rate >= 1 for rate in rates.values())
    kept = sum(count / rates[key] for key, count in ema.items())
    total = sum(ema.values())
    # Never keeps more than the goal by more than rounding allows (each key keeps at least ~1).
    assert kept <= total / goal + len(ema) + 1
    ordered = sorted(ema, key=ema.get)
    assert rates[ordered[0]] <= rates[ordered[-1]]


def test_dynamic_keeps_everything_until_the_first_adjustment_then_adapts():
    clock = FakeClock(0.0)
    policy = make_policy(
        "dynamic",
        {"goal_sample_rate": 10, "key_fields": ["http.route"], "adjustment_interval": "10s", "weight": 1.0},
        clock,
    )
    first = [decide(policy, trace("/frequent")) for _ in range(2000)] + [
        decide(policy, trace("/rare")) for _ in range(20)
    ]
    assert all(d is Decision.SAMPLED for d in first)
    clock.advance(10.0)
    frequent = sum(decide(policy, trace("/frequent")) is Decision.SAMPLED for _ in range(2000))
    rare = sum(decide(policy, trace("/rare")) is Decision.SAMPLED for _ in range(20))
    # Rare keys are kept at a far higher rate than frequent ones; overall near 1 in 10.
    assert rare / 20 > 3 * frequent / 2000
    assert 0.03 < (frequent + rare) / 2020 < 0.2
    weight = policy.weight()
    assert weight is None or (weight.threshold is not None and weight.rate >= 1)


def test_dynamic_adjusted_counts_add_up_to_the_traces_seen():
    clock = FakeClock(0.0)
    policy = make_policy(
        "dynamic",
        {"goal_sample_rate": 10, "key_fields": ["http.route"], "adjustment_interval": "10s", "weight": 1.0},
        clock,
    )
    routes = ["/frequent"] * 4000 + ["/rare"] * 40
    rng = random.Random(15)  # fixed trace IDs: the figures below are those of this one draw

    def seeded(route: str) -> list:
        return [make_span(rng.randbytes(16), attributes={"http.route": route})]

    for route in routes:
        decide(policy, seeded(route))
    clock.advance(10.0)
    estimate = 0.0
    kept = 0
    for route in routes:
        if decide(policy, seeded(route)) is Decision.SAMPLED:
            kept += 1
            weight = policy.weight()
            estimate += weight.rate if weight is not None else 1.0
    assert kept < len(routes) / 4  # it did sample
    # Each kept trace counts as 1/p of its key's probability: the sum estimates every trace seen.
    # The frequent key's rate r is about 20: the estimate's standard deviation is sqrt(4000 r), ~7 %.
    assert abs(estimate - len(routes)) < 0.25 * len(routes)


def test_dynamic_bounds_its_keys():
    clock = FakeClock(0.0)
    policy = make_policy("dynamic", {"goal_sample_rate": 5, "key_fields": ["http.route"], "max_keys": 10}, clock)
    for index in range(100):
        decide(policy, trace(f"/route/{index}"))
    assert len(policy._counts) <= 11  # ten keys and the shared overflow key


def test_configuration_errors():
    assert config_errors({"name": "d", "type": "dynamic", "dynamic": {"goal_sample_rate": 10}})
    assert config_errors({"name": "d", "type": "dynamic", "dynamic": {"goal_sample_rate": 0, "key_fields": ["a"]}})
