"""TailSampler: decisions when due, combining rules, decision caches, late spans, overflow, metrics."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.config.tail_sampling import TailSamplingConfig
from sampler.decide.engine import ForwardRoom, TailSampler, combine, combine_weights
from sampler.policies.base import Decision, TraceView, Weight
from sampler.policies.registry import POLICIES
from sampler.receive.split import RequestSplitter
from sampler.receive.split_logs import LogSplitter
from sampler.spans.trace import DecodedBatch, TraceSpans
from sampler.spans.tracestate import ot_fields, probability_to_threshold
from sampler.telemetry.metrics import Metrics
from sampler.window.window import memory_of
from tests.support import make_request, make_span, make_trace
from tests.unit.helpers import FakeClock

WAIT = 10.0
KEEP_ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}
KEEP_ALL = {"name": "all", "type": "always_sample"}

# --- combine ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list(Decision)), max_size=8))
def test_combine_rules(decisions: list[Decision]) -> None:
    final = combine(decisions)
    if Decision.DROPPED in decisions:
        assert final is Decision.DROPPED
    elif Decision.SAMPLED in decisions:
        assert final is Decision.SAMPLED
    else:
        assert final is Decision.NOT_SAMPLED
    assert combine(list(reversed(decisions))) is final  # order does not matter


def test_combine_examples() -> None:
    assert combine([]) is Decision.NOT_SAMPLED
    assert combine([Decision.NOT_SAMPLED, Decision.SAMPLED]) is Decision.SAMPLED
    assert combine([Decision.SAMPLED, Decision.DROPPED, Decision.SAMPLED]) is Decision.DROPPED
    assert combine([Decision.NOT_SAMPLED] * 3) is Decision.NOT_SAMPLED


# A policy giving each answer to a trace without errors.
ANSWERING: dict[Decision, dict[str, Any]] = {
    Decision.SAMPLED: {"type": "always_sample"},
    Decision.NOT_SAMPLED: {"type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
    Decision.DROPPED: {"type": "drop", "drop": {"drop_sub_policy": [{"name": "any", "type": "always_sample"}]}},
}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(list(Decision)), min_size=1, max_size=6))
def test_the_sampler_decides_by_the_rule_combine_states(answers: list[Decision]) -> None:
    """evaluate() applies the rule inline, for the hot path (it stops at a drop and keeps no list
    of answers): over policies answering anything in any order it agrees with combine(), and
    credits the first policy that sampled."""
    h = Harness([{"name": f"p{index}", **ANSWERING[answer]} for index, answer in enumerate(answers)])
    (trace,) = h.batch(make_trace(spans=2)[1]).traces.values()
    decision, credited, _ = h.sampler.evaluate(trace)
    assert decision is combine(answers)
    if decision is Decision.SAMPLED:
        assert credited is not None and credited.name == f"p{answers.index(Decision.SAMPLED)}"


def test_combine_weights() -> None:
    five, ten = Weight.of_threshold(probability_to_threshold(0.05)), Weight.of_threshold(probability_to_threshold(0.1))
    assert combine_weights([]) is None
    assert combine_weights([five, None]) is None  # one sampled for what it is: kept for certain
    assert combine_weights([five, ten]) == ten  # both share the randomness: it passed the lower threshold
    assert combine_weights([Weight(None, 4.0), ten]) == Weight(None, 4.0)


# --- the sampler ---------------------------------------------------------------------


class Harness:
    """A TailSampler on a fake clock, with kept traces collected in a list."""

    def __init__(self, policies: list[dict[str, Any]], forward: ForwardRoom | None = None, **sampling: Any) -> None:
        self.clock = FakeClock(0.0)
        self.metrics = Metrics()
        self.kept: list[TraceSpans] = []
        self.splitter = RequestSplitter()
        body: dict[str, Any] = {
            "decision_wait": f"{WAIT:g}s",
            "num_traces": 1000,
            "num_shards": 1,
            "policies": [POLICIES.validate(policy) for policy in policies],
        }
        body.update(sampling)
        self.sampler = TailSampler(
            TailSamplingConfig.model_validate(body), self.kept.append, self.metrics, self.clock, forward
        )

    def batch(self, spans: list[Span], **request: Any) -> DecodedBatch:
        return self.splitter.split(make_request(spans, **request))

    def ingest(self, spans: list[Span], **request: Any) -> int:
        return self.sampler.ingest(self.batch(spans, **request))

    def value(self, name: str, **labels: str) -> float:
        sample = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if sample is None else sample

    def kept_ids(self) -> list[bytes]:
        return [trace.trace_id for trace in self.kept]

    def kept_spans(self, trace_id: bytes) -> int:
        return sum(trace.span_count for trace in self.kept if trace.trace_id == trace_id)


def test_traces_are_decided_when_due() -> None:
    h = Harness([KEEP_ERRORS])
    bad_id, bad = make_trace(spans=3, error=True)
    good_id, good = make_trace(spans=2)
    assert h.ingest(bad + good) == 2
    assert h.sampler.window.trace_count == 2

    h.clock.advance(WAIT - 0.001)
    assert h.sampler.decide_due() == 0
    assert h.kept == []

    h.clock.advance(0.001)
    assert h.sampler.decide_due() == 2
    assert h.kept_ids() == [bad_id]
    assert h.kept[0].span_count == 3
    assert h.sampler.window.trace_count == 0
    assert bad_id in h.sampler.sampled_cache and bad_id not in h.sampler.not_sampled_cache
    assert good_id in h.sampler.not_sampled_cache and good_id not in h.sampler.sampled_cache

    assert h.value("tail_sampler_traces_decided_total", decision="kept", trigger="wait") == 1
    assert h.value("tail_sampler_traces_decided_total", decision="dropped", trigger="wait") == 1
    assert h.value("tail_sampler_spans_decided_total", decision="kept") == 3
    assert h.value("tail_sampler_spans_decided_total", decision="dropped") == 2
    assert h.value("tail_sampler_policy_decisions_total", policy="errors", decision="sampled") == 1
    assert h.value("tail_sampler_policy_decisions_total", policy="errors", decision="not_sampled") == 1
    assert h.value("tail_sampler_traces_kept_by_policy_total", policy="errors") == 1
    assert h.value("tail_sampler_decision_lag_seconds_count") == 2
    assert h.value("tail_sampler_trace_age_at_decision_seconds_sum") == 2 * WAIT
    assert h.sampler.decide_due() == 0


def test_fragments_join_their_buffered_trace() -> None:
    h = Harness([KEEP_ERRORS])
    trace_id, spans = make_trace(spans=4, error=True)
    assert h.ingest(spans[:1]) == 1
    h.clock.advance(5)
    assert h.ingest(spans[1:3], service="other") == 0  # not a new trace
    assert h.ingest(spans[3:]) == 0  # carries the error
    assert h.sampler.window.span_count == 4
    h.clock.advance(WAIT - 5)  # due WAIT after the first span, not the last
    assert h.sampler.decide_due() == 1
    assert h.kept_ids() == [trace_id]
    assert h.kept[0].span_count == 4
    assert len(h.kept[0].groups) == 2


def test_late_spans_follow_the_cached_decision() -> None:
    h = Harness([KEEP_ERRORS])
    kept_id, kept_spans = make_trace(spans=2, error=True)
    dropped_id, dropped_spans = make_trace(spans=2)
    h.ingest(kept_spans + dropped_spans)
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    assert h.kept_ids() == [kept_id]

    late_kept = [make_span(kept_id, name="late-1"), make_span(kept_id, name="late-2")]
    late_dropped = [make_span(dropped_id, name="late", error=True)]  # an error now changes nothing
    assert h.ingest(late_kept + late_dropped) == 0
    assert h.kept_ids() == [kept_id, kept_id]  # the late fragment is passed on at once
    assert h.kept[1].span_count == 2
    assert h.sampler.window.trace_count == 0  # neither trace is buffered again
    assert h.value("tail_sampler_late_spans_total", decision="kept") == 2
    assert h.value("tail_sampler_late_spans_total", decision="dropped") == 1
    h.clock.advance(100 * WAIT)
    assert h.sampler.decide_due() == 0
    assert h.sampler.decide_all() == 0


def test_a_trace_forgotten_by_the_cache_starts_again() -> None:
    h = Harness([KEEP_ALL], decision_cache={"sampled_cache_size": 1, "non_sampled_cache_size": 1})
    first_id, first = make_trace(spans=1)
    second_id, second = make_trace(spans=1)
    h.ingest(first)
    h.ingest(second)
    h.clock.advance(WAIT)
    assert h.sampler.decide_due() == 2
    assert first_id not in h.sampler.sampled_cache  # evicted by the second
    assert second_id in h.sampler.sampled_cache
    assert len(h.sampler.sampled_cache) == 1

    assert h.ingest([make_span(second_id)]) == 0  # late span of a remembered trace
    assert h.ingest([make_span(first_id)]) == 1  # a new trace, buffered again
    assert h.sampler.window.get(first_id) is not None


def test_zero_sized_caches_remember_nothing() -> None:
    h = Harness([KEEP_ALL], decision_cache={"sampled_cache_size": 0, "non_sampled_cache_size": 0})
    trace_id, spans = make_trace(spans=1)
    h.ingest(spans)
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    assert h.ingest([make_span(trace_id)]) == 1
    assert h.value("tail_sampler_late_spans_total", decision="kept") == 0


def _corrupt(batch: DecodedBatch) -> DecodedBatch:
    """Make every trace of the batch hold bytes its policies cannot parse."""
    for trace in batch.traces.values():
        (key, spans), *_ = trace.groups.items()
        # A resource field whose length runs past the end; it holds the bytes of key "k" so that
        # attribute lookups cannot skip parsing it.
        trace.groups = {(b"\x0a\xff\x0a\x01k", key[1]): spans}
    return batch


def test_a_failing_policy_counts_as_not_sampled() -> None:
    route = {"name": "route", "type": "string_attribute", "string_attribute": {"key": "k", "values": ["v"]}}
    h = Harness([route, {"name": "any", "type": "span_count", "span_count": {"min_spans": 1}}])
    trace_id, spans = make_trace(spans=2)
    h.sampler.ingest(_corrupt(h.batch(spans)))
    h.clock.advance(WAIT)
    assert h.sampler.decide_due() == 1  # the failure did not escape
    assert h.kept_ids() == [trace_id]  # the other policy still kept it
    assert h.value("tail_sampler_policy_evaluation_errors_total", policy="route") == 1
    assert h.value("tail_sampler_policy_evaluation_errors_total", policy="any") == 0
    assert h.value("tail_sampler_policy_decisions_total", policy="route", decision="not_sampled") == 1
    assert h.value("tail_sampler_traces_kept_by_policy_total", policy="any") == 1


def test_a_failing_policy_alone_drops_the_trace() -> None:
    route = {"name": "route", "type": "string_attribute", "string_attribute": {"key": "k", "values": ["v"]}}
    h = Harness([route])
    trace_id, spans = make_trace(spans=2)
    h.sampler.ingest(_corrupt(h.batch(spans)))
    h.clock.advance(WAIT)
    assert h.sampler.decide_due() == 1
    assert h.kept == []
    assert trace_id in h.sampler.not_sampled_cache
    assert h.value("tail_sampler_policy_evaluation_errors_total", policy="route") == 1
    assert h.value("tail_sampler_traces_decided_total", decision="dropped", trigger="wait") == 1


def test_overflow_decides_the_oldest_trace_early() -> None:
    h = Harness([KEEP_ALL], num_traces=2)
    ids = []
    for _ in range(3):
        trace_id, spans = make_trace(spans=1)
        ids.append(trace_id)
        assert h.ingest(spans) == 1
        h.clock.advance(1)
    assert h.kept_ids() == [ids[0]]  # decided at once, 8 s before it was due
    assert h.sampler.window.trace_count == 2
    assert h.sampler.window.get(ids[0]) is None
    assert ids[0] in h.sampler.sampled_cache
    assert h.value("tail_sampler_early_decisions_total", reason="overflow") == 1
    assert h.value("tail_sampler_traces_decided_total", decision="kept", trigger="overflow") == 1
    assert h.value("tail_sampler_window_traces") == 2


def test_overflow_within_one_batch() -> None:
    h = Harness([KEEP_ERRORS], num_traces=2)
    traces = [make_trace(spans=1, error=index == 0) for index in range(5)]
    assert h.ingest([span for _, spans in traces for span in spans]) == 5
    assert h.kept_ids() == [traces[0][0]]
    assert h.value("tail_sampler_early_decisions_total", reason="overflow") == 3
    assert h.value("tail_sampler_traces_decided_total", decision="dropped", trigger="overflow") == 2
    assert h.sampler.window.trace_count == 2


def test_root_span_triggers_an_earlier_decision() -> None:
    h = Harness([KEEP_ALL], decision_wait_after_root_received="2s")
    rooted_id, rooted = make_trace(spans=2, root=True)
    rootless_id, rootless = make_trace(spans=2, root=False)
    h.ingest(rooted + rootless)
    h.clock.advance(2)
    assert h.sampler.decide_due() == 1
    assert h.kept_ids() == [rooted_id]
    assert h.value("tail_sampler_traces_decided_total", decision="kept", trigger="root") == 1
    h.clock.advance(WAIT)
    assert h.sampler.decide_due() == 1
    assert h.kept_ids() == [rooted_id, rootless_id]
    assert h.value("tail_sampler_traces_decided_total", decision="kept", trigger="wait") == 1


def test_decide_all_decides_every_buffered_trace() -> None:
    h = Harness([KEEP_ERRORS], num_shards=4)
    traces = [make_trace(spans=2, error=index % 2 == 0) for index in range(10)]
    for _, spans in traces:
        h.ingest(spans)
    assert h.sampler.decide_all() == 10
    assert sorted(h.kept_ids()) == sorted(tid for index, (tid, _) in enumerate(traces) if index % 2 == 0)
    assert h.sampler.window.trace_count == 0
    assert h.value("tail_sampler_traces_decided_total", decision="kept", trigger="shutdown") == 5
    assert h.value("tail_sampler_traces_decided_total", decision="dropped", trigger="shutdown") == 5


def test_first_sampling_policy_gets_the_credit() -> None:
    big = {"name": "big", "type": "span_count", "span_count": {"min_spans": 3}}
    h = Harness([KEEP_ERRORS, big, KEEP_ALL])
    error_id, error = make_trace(spans=3, error=True)
    big_id, big_trace = make_trace(spans=3)
    small_id, small = make_trace(spans=1)
    h.ingest(error + big_trace + small)

    final, first, _ = h.sampler.evaluate(h.sampler.window.get(error_id))  # type: ignore[arg-type]
    assert final is Decision.SAMPLED and first is not None and first.name == "errors"
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    assert h.value("tail_sampler_traces_kept_by_policy_total", policy="errors") == 2  # 1 + the evaluate above
    assert h.value("tail_sampler_traces_kept_by_policy_total", policy="big") == 1
    assert h.value("tail_sampler_traces_kept_by_policy_total", policy="all") == 1
    assert h.value("tail_sampler_policy_decisions_total", policy="all", decision="sampled") == 4
    assert sorted(h.kept_ids()) == sorted([error_id, big_id, small_id])


def test_set_policies_replaces_the_policies() -> None:
    h = Harness([KEEP_ALL])
    h.sampler.set_policies([POLICIES.validate(KEEP_ERRORS)])
    _, spans = make_trace(spans=1)
    h.ingest(spans)
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    assert h.kept == []
    assert [policy.name for policy in h.sampler.policies] == ["errors"]


def test_window_gauges_follow_the_window() -> None:
    h = Harness([KEEP_ALL], num_traces=64, num_shards=4)
    _, spans = make_trace(spans=3)
    h.ingest(spans)
    assert h.value("tail_sampler_window_traces") == 1
    assert h.value("tail_sampler_window_spans") == 3
    assert h.value("tail_sampler_window_bytes") == sum(len(s.SerializeToString()) for s in spans)
    assert h.value("tail_sampler_window_capacity_traces") == 64
    h.sampler.decide_all()
    assert h.value("tail_sampler_window_traces") == 0
    assert h.value("tail_sampler_decision_cache_traces", decision="sampled") == 1


# --- drop policies and processor options ------------------------------------------------

DROP_HEALTH = {
    "name": "no-health",
    "type": "drop",
    "drop": {
        "drop_sub_policy": [
            {"name": "health", "type": "string_attribute", "string_attribute": {"key": "route", "values": ["/health"]}}
        ]
    },
}


def test_a_drop_vetoes_every_other_policy_and_runs_first() -> None:
    h = Harness([KEEP_ALL, DROP_HEALTH])
    health_id, health = make_trace(spans=2, attributes={"route": "/health"})
    orders_id, orders = make_trace(spans=2, attributes={"route": "/orders"})
    h.ingest(health + orders)
    assert [policy.name for policy in h.sampler.policies] == ["no-health", "all"]
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    assert h.kept_ids() == [orders_id]
    assert health_id in h.sampler.not_sampled_cache
    # Evaluation stopped at the drop: keep-all never saw the health trace.
    assert h.value("tail_sampler_policy_decisions_total", policy="no-health", decision="dropped") == 1
    assert h.value("tail_sampler_policy_decisions_total", policy="all", decision="sampled") == 1


def test_sample_on_first_match_stops_at_the_first_sampled() -> None:
    big = {"name": "big", "type": "span_count", "span_count": {"min_spans": 1}}
    h = Harness([KEEP_ERRORS, big, KEEP_ALL], sample_on_first_match=True)
    _, error = make_trace(spans=2, error=True)
    _, plain = make_trace(spans=2)
    h.ingest(error + plain)
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    assert len(h.kept) == 2
    assert h.value("tail_sampler_policy_decisions_total", policy="errors", decision="sampled") == 1
    assert h.value("tail_sampler_policy_decisions_total", policy="big", decision="sampled") == 1  # only the plain trace
    assert h.value("tail_sampler_policy_decisions_total", policy="all", decision="sampled") == 0


def test_without_sample_on_first_match_every_policy_runs() -> None:
    big = {"name": "big", "type": "span_count", "span_count": {"min_spans": 1}}
    h = Harness([KEEP_ERRORS, big, KEEP_ALL])
    _, error = make_trace(spans=2, error=True)
    h.ingest(error)
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    assert h.value("tail_sampler_policy_decisions_total", policy="all", decision="sampled") == 1


def test_drop_pending_traces_on_shutdown_drops_without_deciding() -> None:
    h = Harness([KEEP_ALL], drop_pending_traces_on_shutdown=True)
    _, spans = make_trace(spans=3)
    h.ingest(spans)
    assert h.sampler.decide_all() == 1
    assert h.kept == []
    assert h.value("tail_sampler_traces_decided_total", decision="dropped", trigger="shutdown") == 1
    assert h.value("tail_sampler_policy_decisions_total", policy="all", decision="sampled") == 0


# --- maximum_trace_size_bytes ------------------------------------------------------------


def _sized_trace(spans: int, blob: int = 500) -> tuple[bytes, list[Span]]:
    trace_id, result = make_trace(spans=spans)
    for span in result:
        span.attributes.add(key="blob", value={"string_value": "x" * blob})
    return trace_id, result


def test_a_trace_growing_past_the_size_cap_is_dropped_at_once_and_stays_dropped() -> None:
    h = Harness([KEEP_ALL], maximum_trace_size_bytes=2000)
    trace_id, spans = _sized_trace(6)
    h.ingest(spans[:2])
    assert h.sampler.window.trace_count == 1
    h.ingest(spans[2:5])  # now over 2000 bytes
    assert h.sampler.window.trace_count == 0
    assert trace_id in h.sampler.not_sampled_cache
    assert h.value("tail_sampler_traces_dropped_too_large_total") == 1
    assert h.value("tail_sampler_traces_decided_total", decision="dropped", trigger="too_large") == 1
    h.ingest(spans[5:])
    assert h.value("tail_sampler_late_spans_total", decision="dropped") == 1
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    assert h.kept == []


def test_a_single_request_over_the_cap_is_dropped_without_buffering() -> None:
    h = Harness([KEEP_ALL], maximum_trace_size_bytes=1000)
    _, spans = _sized_trace(4)
    assert h.ingest(spans) == 1
    assert h.sampler.window.trace_count == 0
    assert h.value("tail_sampler_traces_dropped_too_large_total") == 1


def test_the_cap_still_holds_for_late_spans_of_a_kept_trace() -> None:
    h = Harness([KEEP_ALL], maximum_trace_size_bytes=2500)
    trace_id, spans = _sized_trace(8)
    h.ingest(spans[:3])
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    assert h.kept_ids() == [trace_id]
    h.ingest(spans[3:4])  # still under the cap with what was forwarded: forwarded
    assert h.kept_spans(trace_id) == 4
    h.ingest(spans[4:8])  # would pass the cap: not forwarded, counted
    assert h.kept_spans(trace_id) == 4
    assert h.value("tail_sampler_late_spans_total", decision="too_large") == 4


# --- sampling_strategy: span-ingest ---------------------------------------------------------


def test_span_ingest_keeps_a_trace_as_soon_as_a_policy_samples_it() -> None:
    h = Harness([KEEP_ERRORS], sampling_strategy="span-ingest")
    trace_id, spans = make_trace(spans=3, error=True)  # the error is on the last span
    h.ingest(spans[:2])
    assert h.kept == [] and h.sampler.window.trace_count == 1
    h.ingest(spans[2:])
    # Kept at once, with the spans that arrived before the deciding one.
    assert h.kept_ids() == [trace_id] and h.kept_spans(trace_id) == 3
    assert h.sampler.window.trace_count == 0
    assert h.value("tail_sampler_traces_decided_total", decision="kept", trigger="ingest") == 1
    h.ingest([make_span(trace_id, name="late")])
    assert h.kept_spans(trace_id) == 4  # late spans follow the decision


def test_span_ingest_drops_what_nothing_sampled_when_due_without_evaluating_again() -> None:
    h = Harness([KEEP_ERRORS], sampling_strategy="span-ingest")
    _, spans = make_trace(spans=2)
    h.ingest(spans)
    evaluations = h.value("tail_sampler_policy_decisions_total", policy="errors", decision="not_sampled")
    h.clock.advance(WAIT)
    assert h.sampler.decide_due() == 1
    assert h.kept == []
    assert h.value("tail_sampler_traces_decided_total", decision="dropped", trigger="wait") == 1
    assert h.value("tail_sampler_policy_decisions_total", policy="errors", decision="not_sampled") == evaluations


def test_span_ingest_drop_policies_act_at_once() -> None:
    drop = {
        "name": "no-health",
        "type": "drop",
        "drop": {
            "drop_sub_policy": [
                {"name": "h", "type": "string_attribute", "string_attribute": {"key": "route", "values": ["/health"]}}
            ]
        },
    }
    h = Harness([KEEP_ALL, drop], sampling_strategy="span-ingest")
    health_id, health = make_trace(spans=2, attributes={"route": "/health"})
    h.ingest(health)
    assert h.kept == [] and health_id in h.sampler.not_sampled_cache


# --- memory limit, span limit, forward backpressure ------------------------------------


def test_a_trace_reaching_max_spans_per_trace_is_decided_at_once_and_its_late_spans_follow() -> None:
    h = Harness([KEEP_ALL], max_spans_per_trace=5)
    trace_id, spans = make_trace(spans=7)
    h.ingest(spans[:3])
    assert h.kept == [] and h.sampler.window.trace_count == 1
    h.ingest(spans[3:5])
    assert h.kept_ids() == [trace_id] and h.kept_spans(trace_id) == 5
    assert h.sampler.window.trace_count == 0
    assert h.value("tail_sampler_early_decisions_total", reason="span_limit") == 1
    assert h.value("tail_sampler_traces_decided_total", decision="kept", trigger="span_limit") == 1
    h.ingest(spans[5:])
    assert h.kept_spans(trace_id) == 7
    assert h.value("tail_sampler_late_spans_total", decision="kept") == 2
    assert h.sampler.window.trace_count == 0


def test_a_request_carrying_more_than_max_spans_per_trace_is_decided_without_buffering() -> None:
    h = Harness([KEEP_ERRORS], max_spans_per_trace=4)
    big_id, big = make_trace(spans=6)
    small_id, small = make_trace(spans=3)
    assert h.ingest(big + small) == 2
    assert h.sampler.window.trace_count == 1
    assert h.sampler.window.get(small_id) is not None
    assert big_id in h.sampler.not_sampled_cache
    assert h.value("tail_sampler_traces_decided_total", decision="dropped", trigger="span_limit") == 1
    assert h.value("tail_sampler_spans_decided_total", decision="dropped") == 6


def test_the_memory_limit_decides_the_oldest_traces_early() -> None:
    limit_mib = 0.01
    limit = int(limit_mib * 1024 * 1024)
    h = Harness([KEEP_ERRORS], memory_limit_mib=limit_mib, num_shards=4)
    ids = []
    for index in range(40):
        trace_id, spans = make_trace(spans=3, error=index % 2 == 0)
        ids.append(trace_id)
        h.ingest(spans)
        assert h.sampler.window.memory_bytes <= limit
        h.clock.advance(0.1)
    window = h.sampler.window
    buffered = [trace_id for trace_id in ids if window.get(trace_id) is not None]
    early = len(ids) - len(buffered)
    assert early > 0 and buffered == ids[early:]  # the newest stay, the oldest went first
    assert h.value("tail_sampler_early_decisions_total", reason="memory") == early
    assert h.value("tail_sampler_traces_decided_total", decision="kept", trigger="memory") == len(h.kept)
    assert h.kept_ids() == [trace_id for index, trace_id in enumerate(ids[:early]) if index % 2 == 0]
    assert h.value("tail_sampler_window_memory_bytes") == window.memory_bytes
    assert h.value("tail_sampler_window_memory_limit_bytes") == limit
    # One more trace takes the room of the oldest that are left.
    one_more = make_trace(spans=3)[1]
    h.ingest(one_more)
    assert window.get(buffered[0]) is None and window.memory_bytes <= limit


def test_a_trace_larger_than_the_memory_limit_is_decided_at_once() -> None:
    h = Harness([KEEP_ALL], memory_limit_mib=0.001)
    trace_id, spans = make_trace(spans=30, attributes={"payload": "x" * 2000})
    h.ingest(spans)
    assert h.kept_ids() == [trace_id]
    assert h.sampler.window.trace_count == 0
    assert h.value("tail_sampler_early_decisions_total", reason="memory") == 1


async def test_block_on_overflow_waits_for_memory_instead_of_deciding_early() -> None:
    trace_id, spans = make_trace(spans=3)
    one_trace = memory_of(Harness([KEEP_ALL]).batch(spans).traces[trace_id])
    h = Harness([KEEP_ALL], memory_limit_mib=2.5 * one_trace / (1024 * 1024), block_on_overflow=True)
    for _ in range(2):
        batch = h.batch(make_trace(spans=3)[1])
        assert await h.sampler.wait_for_room(batch, 0.05)
        h.sampler.ingest(batch)
    third = h.batch(make_trace(spans=3)[1])
    assert not await h.sampler.wait_for_room(third, 0.05)
    assert h.value("tail_sampler_early_decisions_total", reason="memory") == 0
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    assert await h.sampler.wait_for_room(third, 0.05)


class Forward:
    """The exporters' side as the sampler sees it: room for `capacity` kept traces in all."""

    def __init__(self, capacity: int = 1000) -> None:
        self.kept: list[TraceSpans] = []  # the harness's list of kept traces, once it exists
        self.capacity = capacity
        self.backed = False

    def has_room(self) -> bool:
        return len(self.kept) < self.capacity

    def backed_up(self) -> bool:
        return self.backed


def test_with_block_on_overflow_decisions_pause_while_the_exporters_have_no_room() -> None:
    forward = Forward(capacity=0)
    h = Harness([KEEP_ALL], forward=forward, block_on_overflow=True)
    forward.kept = h.kept
    ids = [make_trace(spans=1)[0] for _ in range(3)]
    for trace_id in ids:
        h.ingest([make_span(trace_id)])
    h.clock.advance(WAIT)
    assert h.sampler.decide_due() == 0
    assert h.sampler.window.trace_count == 3
    forward.capacity = 1
    assert h.sampler.decide_due() == 1  # the decision that filled the room was the last one
    assert h.sampler.window.trace_count == 2
    forward.capacity = 10
    assert h.sampler.decide_due() == 2
    assert h.kept_ids() == ids


def test_without_block_on_overflow_the_exporters_room_is_not_asked() -> None:
    h = Harness([KEEP_ALL], forward=Forward(capacity=0))
    h.ingest(make_trace(spans=1)[1])
    h.clock.advance(WAIT)
    assert h.sampler.decide_due() == 1


async def test_block_on_overflow_refuses_while_the_exporters_are_backed_up() -> None:
    forward = Forward()
    h = Harness([KEEP_ALL], forward=forward, block_on_overflow=True)
    batch = h.batch(make_trace(spans=1)[1])
    forward.backed = True
    assert not await h.sampler.wait_for_room(batch, 0.05)
    forward.backed = False
    assert await h.sampler.wait_for_room(batch, 0.05)


def test_decision_cache_memory_is_estimated_per_entry_and_bounded_by_capacity() -> None:
    h = Harness([KEEP_ERRORS], decision_cache={"sampled_cache_size": 2, "non_sampled_cache_size": 3})
    for index in range(10):
        h.ingest(make_trace(spans=1, error=index % 2 == 0)[1])
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    sampled = h.value("tail_sampler_decision_cache_memory_bytes", decision="sampled")
    not_sampled = h.value("tail_sampler_decision_cache_memory_bytes", decision="not_sampled")
    assert sampled == 2 * h.sampler.sampled_cache.entry_bytes > 0
    assert not_sampled == 3 * h.sampler.not_sampled_cache.entry_bytes > 0


def test_a_trace_also_kept_for_certain_counts_once_and_keeps_its_tracestate() -> None:
    """Errors are kept whatever the randomness says: an error trace the probabilistic policy also
    sampled must not count as 1/p traces, or estimates from adjusted counts are biased."""
    percent = {"name": "percent", "type": "probabilistic", "probabilistic": {"sampling_percentage": 50}}
    h = Harness([percent, KEEP_ERRORS])
    high = (0x01).to_bytes(9, "big") + (0xFFFFFFFFFFFFFF).to_bytes(7, "big")  # passes any threshold
    spans = [make_span(high, error=True), make_span(high[:-1] + b"\xfe")]
    h.ingest(spans)
    h.clock.advance(WAIT + 1)
    h.sampler.decide_due()
    by_id = {trace.trace_id: trace for trace in h.kept}
    error_states = {record.span.trace_state for record in TraceView(by_id[high]).spans()}
    plain_states = {record.span.trace_state for record in TraceView(by_id[high[:-1] + b"\xfe"]).spans()}
    assert error_states == {""}  # kept for certain: no threshold written
    assert {ot_fields(state).threshold for state in plain_states} == {probability_to_threshold(0.5)}


# --- log records ---------------------------------------------------------------------


def _logs(trace_id: bytes, *bodies: str) -> DecodedBatch:
    request = ExportLogsServiceRequest()
    scope_logs = request.resource_logs.add().scope_logs.add()
    for body in bodies:
        record = scope_logs.log_records.add(trace_id=trace_id)
        record.body.string_value = body
    return LogSplitter().split(request)


def test_log_records_are_held_with_their_trace_and_follow_its_decision() -> None:
    h = Harness([KEEP_ERRORS], memory_limit_mib=1)
    kept_id, kept = make_trace(spans=2, error=True)
    dropped_id, dropped = make_trace(spans=2)
    only_logs = b"\x07" * 16  # records whose spans never come: decided on what there is
    h.sampler.ingest(_logs(kept_id, "before its spans"))
    h.ingest(kept + dropped)
    h.sampler.ingest(_logs(dropped_id, "x", "y"))
    h.sampler.ingest(_logs(only_logs, "alone"))
    window = h.sampler.window
    assert (window.trace_count, window.span_count, window.log_count) == (3, 4, 4)
    assert window.memory_bytes == sum(memory_of(window.get(t)) for t in (kept_id, dropped_id, only_logs))  # type: ignore[arg-type]
    h.clock.advance(WAIT)
    h.sampler.decide_due()
    assert h.kept_ids() == [kept_id]
    assert (h.kept[0].span_count, h.kept[0].log_count) == (2, 1)
    assert h.value("tail_sampler_log_records_total", outcome="kept") == 1
    assert h.value("tail_sampler_log_records_total", outcome="dropped") == 3
    # Late records follow the decision cache, with the decision record on their scope.
    h.sampler.ingest(_logs(kept_id, "late"))
    h.sampler.ingest(_logs(dropped_id, "late"))
    assert h.kept_ids() == [kept_id, kept_id]
    late = h.kept[1]
    assert late.log_count == 1 and late.logs is not None
    assert all(b"tailsampling.cached_decision" in scope for _, scope in late.logs)
    assert h.value("tail_sampler_log_records_total", outcome="late_kept") == 1
    assert h.value("tail_sampler_log_records_total", outcome="late_dropped") == 1


def test_log_records_count_against_the_memory_limit() -> None:
    h = Harness([KEEP_ALL], memory_limit_mib=0.01)  # about 10 KB
    for index in range(40):
        h.sampler.ingest(_logs((index + 1).to_bytes(16, "big"), "x" * 500))
    assert h.sampler.window.memory_bytes <= 0.01 * 1024 * 1024
    assert h.value("tail_sampler_early_decisions_total", reason="memory") > 0
    assert h.value("tail_sampler_log_records_total", outcome="kept") == sum(t.log_count for t in h.kept) > 0
