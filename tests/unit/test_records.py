"""Decision records and the OpenTelemetry tracestate threshold (ot=th) of kept traces."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from sampler.decide.records import DecisionRecorder
from sampler.policies.base import Decision, TraceView, Weight
from sampler.spans.trace import TraceSpans
from sampler.spans.tracestate import ot_fields, probability_to_threshold
from tests.support import make_trace
from tests.unit.helpers import make_policy, trace_of


def spans_of_trace(trace: TraceSpans) -> list[Span]:
    found = []
    for (_, scope), spans in trace.groups.items():
        found.extend(ScopeSpans.FromString(scope + bytes(spans)).spans)
    return found


def attributes(record: bytes) -> dict[str, object]:
    """The decision record's attributes: framed InstrumentationScope.attributes fields."""
    scope = InstrumentationScope.FromString(record)
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in scope.attributes}


def with_randomness(randomness: int, state: str = "", spans: int = 3) -> TraceSpans:
    """A trace whose trace ID carries `randomness` in its last 7 bytes, its spans `state`."""
    _, made = make_trace(spans=spans)
    trace_id = b"\x01" + bytes(8) + randomness.to_bytes(7, "big")
    for span in made:
        span.trace_id = trace_id
        span.trace_state = state
    return trace_of(made)


def kept_by(policy_settings: dict, trace: TraceSpans, records: bool = True) -> tuple[bytes, list[Span]]:
    policy = make_policy("probabilistic", policy_settings)
    assert policy.evaluate(TraceView(trace)) is Decision.SAMPLED
    record = DecisionRecorder(records).mark(trace, policy, "wait", policy.weight())
    return record, spans_of_trace(trace)


TEN_PERCENT = probability_to_threshold(0.1)  # e6666666666666


def test_a_kept_trace_gets_the_threshold_of_its_decision_on_every_span():
    trace = with_randomness(TEN_PERCENT)  # exactly at the threshold: R >= T keeps it
    record, spans = kept_by({"sampling_percentage": 10}, trace)
    assert {span.trace_state for span in spans} == {"ot=th:e6666666666666"}
    assert attributes(record)["tailsampling.sample_rate"] == 10
    assert trace.span_count == 3 and trace.nbytes == sum(len(s.SerializeToString()) for s in spans)


def test_equalizing_never_lowers_a_higher_upstream_threshold():
    # Kept upstream at 5 % (th f333...), which R passes; 10 % here cannot raise the probability.
    trace = with_randomness(0xF4000000000000, "rojo=1,ot=th:f3333333333333")
    before = [bytes(framed) for framed in trace.groups.values()]
    record, spans = kept_by({"sampling_percentage": 10}, trace)
    assert [bytes(framed) for framed in trace.groups.values()] == before  # the bytes they arrived in
    assert {span.trace_state for span in spans} == {"rojo=1,ot=th:f3333333333333"}  # untouched


def test_equalizing_raises_a_lower_upstream_threshold_and_keeps_rv():
    trace = with_randomness(0, "ot=th:8;rv:f0000000000000")  # 50 % upstream; rv says R = 0xf0...
    _, spans = kept_by({"sampling_percentage": 10}, trace)
    assert {span.trace_state for span in spans} == {"ot=th:e6666666666666;rv:f0000000000000"}


def test_proportional_multiplies_the_upstream_probability():
    trace = with_randomness(0xF0000000000000, "ot=th:c")  # 25 % upstream
    record, spans = kept_by({"sampling_percentage": 50, "mode": "proportional"}, trace)
    assert {span.trace_state for span in spans} == {"ot=th:e"}  # 12.5 %
    assert attributes(record)["tailsampling.sample_rate"] == 8


def test_an_upstream_threshold_its_randomness_contradicts_is_replaced():
    trace = with_randomness(0xF0000000000000, "ot=th:f8")  # R < th: not what a consistent sampler writes
    assert TraceView(trace).sampling().threshold is None
    _, spans = kept_by({"sampling_percentage": 10}, trace)
    assert {span.trace_state for span in spans} == {"ot=th:e6666666666666"}


def test_the_threshold_is_written_with_records_off():
    trace = with_randomness(0xFFFFFFFFFFFFFF)
    record, spans = kept_by({"sampling_percentage": 10}, trace, records=False)
    assert record == b""
    assert {span.trace_state for span in spans} == {"ot=th:e6666666666666"}


def test_hash_seed_mode_writes_no_threshold():
    _, made = make_trace(spans=2)
    trace = trace_of(made)
    before = [bytes(v) for v in trace.groups.values()]
    policy = make_policy("probabilistic", {"sampling_percentage": 100, "mode": "hash_seed"})
    assert policy.evaluate(TraceView(trace)) is Decision.SAMPLED
    weight = policy.weight()
    assert weight == Weight(None, 1.0)
    DecisionRecorder(False).mark(trace, policy, "wait", weight)
    assert [bytes(v) for v in trace.groups.values()] == before


def test_late_spans_get_the_threshold_and_the_cached_record():
    recorder = DecisionRecorder(True)
    late = with_randomness(TEN_PERCENT, spans=1)
    recorder.apply_late(late, b"", TEN_PERCENT)
    (span,) = spans_of_trace(late)
    assert ot_fields(span.trace_state).threshold == TEN_PERCENT
    assert any(b"tailsampling.cached_decision" in scope for _, scope in late.groups)


def test_policies_without_a_weight_leave_spans_untouched():
    _, spans = make_trace(spans=2)
    trace = trace_of(spans)
    before = [bytes(v) for v in trace.groups.values()]
    DecisionRecorder(True).mark(trace, make_policy("always_sample"), "wait", None)
    assert [bytes(v) for v in trace.groups.values()] == before


def test_records_off_change_nothing_without_a_threshold():
    _, spans = make_trace(spans=2)
    trace = trace_of(spans)
    before = dict(trace.groups)
    assert DecisionRecorder(False).mark(trace, make_policy("always_sample"), "wait", None) == b""
    assert trace.groups == before
