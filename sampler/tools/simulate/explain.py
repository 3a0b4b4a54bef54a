"""`tail-sampler explain TRACE_ID --input FILE --config FILE`: the decision lookup offline.

The recorded traces (read.py) are decided in order of first appearance by the daemon's own
evaluation with the policies' clock at each trace's start, as `simulate` decides them (run.py),
up to the trace asked about, so rate-based policies have spent what they would have live. The
answer has the daemon's form (sampler.decide.explain), with the trigger "offline".
"""

from __future__ import annotations

from typing import Any

from sampler.config.tail_sampling import TailSamplingConfig
from sampler.decide.explain import describe
from sampler.policies.base import Decision
from sampler.telemetry.metrics import Metrics
from sampler.tools.simulate.read import TraceSet
from sampler.tools.simulate.run import TraceClock, offline_sampler


def explain_recorded(config: TailSamplingConfig, traces: TraceSet, trace_id: bytes) -> dict[str, Any] | None:
    """The answer for one trace of the file, None if the file has no span of it."""
    target = traces.traces.get(trace_id)
    if target is None:
        return None
    clock = TraceClock()
    sampler = offline_sampler(config, clock, Metrics())
    earlier = 0
    final = Decision.NOT_SAMPLED
    for trace in traces.traces.values():
        clock.advance_to(trace)
        final = sampler.evaluate(trace).decision
        if trace is target:
            break
        earlier += 1
    note = sampler.note(target, "offline", evaluated=True)
    answer = describe(trace_id, final is Decision.SAMPLED, note, sampler.policy_set)
    notes = [f"decided from {traces.path}: the whole trace at once, after the {earlier} trace(s) recorded before it"]
    if config.maximum_trace_size_bytes and target.nbytes > config.maximum_trace_size_bytes:
        notes.append(
            f"its spans ({target.nbytes} bytes) exceed maximum_trace_size_bytes "
            f"({config.maximum_trace_size_bytes}): the daemon would drop it before any policy runs"
        )
    if config.max_spans_per_trace and target.span_count >= config.max_spans_per_trace:
        notes.append(
            f"it has {target.span_count} spans: the daemon would decide it early, as soon as it "
            f"reached max_spans_per_trace ({config.max_spans_per_trace})"
        )
    answer["notes"] = notes
    return answer
