"""BatchedHistogram: many observations at once expose exactly what one observe() each would."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from sampler.telemetry.histograms import BatchedHistogram

BUCKETS = (0.005, 0.1, 1.0, 2.5, 10.0)
amounts = st.lists(st.one_of(st.sampled_from([0.0, *BUCKETS]), st.floats(0, 1e6, allow_nan=False)), max_size=50)


@settings(max_examples=200, deadline=None)
@given(st.lists(amounts, max_size=5))
def test_observe_many_exposes_what_observe_would(batches: list[list[float]]) -> None:
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    single = Histogram("h_seconds", "h", buckets=BUCKETS, registry=one_by_one)
    many = BatchedHistogram("h_seconds", "h", buckets=BUCKETS, registry=batched)
    for batch in batches:
        for amount in batch:
            single.observe(amount)
        many.observe_many(batch)

    def exposed(registry: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]

    # Counts exactly; the sum up to the order of float additions.
    assert [line for line in exposed(batched) if "_sum " not in line] == [
        line for line in exposed(one_by_one) if "_sum " not in line
    ]
    total = one_by_one.get_sample_value("h_seconds_sum")
    assert batched.get_sample_value("h_seconds_sum") == pytest.approx(total, rel=1e-12, abs=1e-12)
