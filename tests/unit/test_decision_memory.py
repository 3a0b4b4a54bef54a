"""What one remembered decision costs, measured with tracemalloc: the decision caches' per-entry
estimates (tail_sampler_decision_cache_memory_bytes, the memory-sizing rule of the deploy
manifests) must hold every measurement, and stay close to the worst one."""

from __future__ import annotations

import gc
import os
import tracemalloc

import pytest

from sampler.decide.cache import NOT_SAMPLED_ENTRY_BYTES, SAMPLED_ENTRY_BYTES, DecisionCache
from sampler.decide.outcome import answer_bits, pack
from sampler.policies.base import Decision

# A dict's table grows by doubling, so the cost per entry depends on how full the table is:
# 44 000 falls just past a growth (the worst case), 66 000 near the next one (the best).
SIZES = (10_000, 44_000, 66_000)
# Policies: the note's answers take 2 bits each; up to 16 keep the int at the same size.
POLICIES = 16


def measure_entry_bytes(kept: bool, entries: int, policies: int = POLICIES) -> float:
    """Bytes allocated per entry while filling a cache as the engine fills it: a fresh 16-byte
    trace ID per entry, a note per decision, for kept traces the bytes forwarded and the
    decision record and sampling threshold, both shared (a policy's records and weight are)."""
    cache = DecisionCache(entries)
    record = b"r" * 80  # one shared decision record, as DecisionRecorder shares them
    threshold = (1 << 55) + 12345  # one policy's weight, shared by the traces it keeps
    answers = answer_bits([Decision.NOT_SAMPLED] * (policies - 1) + [Decision.SAMPLED])
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(entries):
            note = pack("wait", 3, policies - 1, None, 3_600_000 + index, 20, 5_000 + index, answers)
            cache.add(os.urandom(16), (record, 5_000 + index, threshold, note) if kept else note)
        allocated = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return allocated / entries


@pytest.mark.parametrize(("kept", "estimate"), [(True, SAMPLED_ENTRY_BYTES), (False, NOT_SAMPLED_ENTRY_BYTES)])
def test_the_estimate_per_remembered_decision_holds_every_measurement(kept, estimate):
    measured = [measure_entry_bytes(kept, size) for size in SIZES]
    assert max(measured) <= estimate, f"measured {measured} B per entry; the estimate is {estimate} B"
    assert estimate <= 1.1 * max(measured), f"the estimate {estimate} B is far above the measured {measured}"


def test_the_note_costs_the_same_for_few_policies_as_for_sixteen():
    few, many = measure_entry_bytes(False, 44_000, 1), measure_entry_bytes(False, 44_000, 16)
    assert many - few <= 8
