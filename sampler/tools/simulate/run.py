"""Deciding recorded traces offline: `tail-sampler simulate`.

Every whole trace (see read.py) is decided by the daemon's own evaluation
(`TailSampler.evaluate`), in order of first appearance. The clock the policies see is
the trace's own start time, so rate-based policies (rate_limiting, bytes_limiting,
composite) spend their budget as they would have live.

Each kept span also counts as the traces its trace stands for at this stage (its adjusted
count from the decision, divided by the one a sampler upstream gave it), so the estimate of
the input's spans can be set beside the true count: an unbiased sampling keeps them close.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import dataclass, field

from sampler.config.tail_sampling import TailSamplingConfig
from sampler.decide.engine import TailSampler
from sampler.policies.base import Decision, TraceView
from sampler.spans.trace import TraceSpans
from sampler.spans.tracestate import adjusted_count
from sampler.telemetry.metrics import Metrics


@dataclass
class PolicyCount:
    name: str
    type: str
    kept_traces: int = 0  # kept traces this policy was the first to sample
    kept_spans: int = 0
    matched_traces: int = 0  # traces it answered sampled (a drop policy: dropped) when evaluated
    evaluated_traces: int = 0  # fewer than all with sample_on_first_match, or after a drop
    errors: int = 0  # evaluations that raised (counted as not sampled, as in the daemon)


@dataclass
class SimulationResult:
    """What one config's policies decide on a set of traces."""

    config: str
    traces: int = 0
    spans: int = 0
    kept_traces: int = 0
    kept_spans: int = 0
    dropped_traces: int = 0  # vetoed by a drop policy
    # The input's spans as estimated from the kept ones: each counts as its trace's adjusted count
    # at this stage (1 for a trace kept for what it is).
    estimated_spans: float = 0.0
    # Its variance, estimated from the kept traces (Horvitz-Thompson, independent decisions):
    # each trace of n spans kept with probability 1/w adds n^2 w (w - 1).
    estimate_variance: float = 0.0
    policies: list[PolicyCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # where the daemon would decide differently
    kept_ids: set[bytes] = field(default_factory=set, repr=False)

    @property
    def keep_rate(self) -> float:
        return self.kept_traces / self.traces if self.traces else 0.0

    @property
    def span_keep_rate(self) -> float:
        return self.kept_spans / self.spans if self.spans else 0.0

    @property
    def estimate_standard_error(self) -> float:
        return float(self.estimate_variance**0.5)

    @property
    def estimate_error(self) -> float:
        """How far the estimated spans are from the true count, as a fraction of it."""
        return (self.estimated_spans - self.spans) / self.spans if self.spans else 0.0


@dataclass
class Overlap:
    only_first: int
    only_second: int
    both: int
    neither: int


class TraceClock:
    """The policies' clock offline: the start of the trace being decided (advance_to), never
    running backwards, as the daemon's monotonic clock does not."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance_to(self, trace: TraceSpans) -> None:
        start = trace.start_min / 1e9
        if start > self.now:
            self.now = start


def offline_sampler(config: TailSamplingConfig, clock: TraceClock, metrics: Metrics) -> TailSampler:
    """The daemon's engine for `config`, deciding nothing on its own: traces go through evaluate()."""
    return TailSampler(config, lambda trace: None, metrics, clock)


def simulate(config: TailSamplingConfig, traces: Iterable[TraceSpans], name: str = "") -> SimulationResult:
    """Decide every trace, in the order given, with the daemon's evaluation of `config`'s policies.

    The policies' clock reads the start of the trace being decided (never running
    backwards, as the daemon's monotonic clock does not). Per policy: the kept traces it
    was the first to sample (tail_sampler_traces_kept_by_policy_total in the daemon),
    and its own answers (tail_sampler_policy_decisions_total), read back from the
    sampler's metrics.
    """
    clock = TraceClock()
    metrics = Metrics()
    sampler = offline_sampler(config, clock, metrics)
    counts = {policy.name: PolicyCount(policy.name, policy.type) for policy in config.policies}
    result = SimulationResult(name, policies=list(counts.values()))
    kept_ids = result.kept_ids
    size_cap = config.maximum_trace_size_bytes or float("inf")
    oversized = 0
    evaluate = sampler.evaluate
    sampled, dropped = Decision.SAMPLED, Decision.DROPPED
    # As when reading: evaluation parses spans into short-lived objects without cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for trace in traces:
            start = trace.start_min / 1e9
            if start > clock.now:
                clock.now = start
            span_count = trace.span_count
            result.traces += 1
            result.spans += span_count
            decision, first, weight = evaluate(trace)
            if decision is sampled:
                result.kept_traces += 1
                result.kept_spans += span_count
                stands_for = 1.0
                if weight is not None:
                    upstream = TraceView(trace).sampling().threshold
                    stands_for = weight.rate / adjusted_count(upstream) if upstream is not None else weight.rate
                result.estimated_spans += span_count * stands_for
                result.estimate_variance += span_count * span_count * stands_for * (stands_for - 1)
                kept_ids.add(trace.trace_id)
                if first is not None:
                    count = counts[first.name]
                    count.kept_traces += 1
                    count.kept_spans += span_count
            elif decision is dropped:
                result.dropped_traces += 1
            if trace.nbytes > size_cap:
                oversized += 1
    finally:
        if collecting:
            gc.enable()
    # What happens outside TailSampler.evaluate in the daemon, on the way in, is not simulated.
    if oversized:
        result.notes.append(
            f"{oversized} traces are larger than maximum_trace_size_bytes ({config.maximum_trace_size_bytes}): "
            "the daemon drops those before any policy runs; here they were evaluated"
        )
    if config.sampling_strategy == "span-ingest":
        result.notes.append(
            "sampling_strategy span-ingest decides traces as their spans arrive; here each trace was decided whole"
        )
    # evaluate() batches its counter increments; deciding the (empty) window flushes them.
    sampler.decide_due()
    registry = metrics.registry
    for count in result.policies:
        answers = {
            decision.value: registry.get_sample_value(
                "tail_sampler_policy_decisions_total", {"policy": count.name, "decision": decision.value}
            )
            or 0.0
            for decision in Decision
        }
        count.matched_traces = int(answers["dropped" if count.type == "drop" else "sampled"])
        count.evaluated_traces = int(sum(answers.values()))
        errors = registry.get_sample_value("tail_sampler_policy_evaluation_errors_total", {"policy": count.name})
        count.errors = int(errors or 0)
    return result


def overlap(first: SimulationResult, second: SimulationResult) -> Overlap:
    """How many traces each result keeps that the other does not, and both keep.
    Both results must come from the same traces."""
    both = len(first.kept_ids & second.kept_ids)
    only_first = len(first.kept_ids) - both
    only_second = len(second.kept_ids) - both
    return Overlap(only_first, only_second, both, first.traces - both - only_first - only_second)
