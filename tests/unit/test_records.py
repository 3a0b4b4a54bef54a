"""Decision records: sample rates and the OpenTelemetry tracestate threshold (ot=th)."""

from __future__ import annotations

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

from sampler.decide.records import DecisionRecorder, ot_threshold, upstream_probability, with_threshold
from tests.support import make_trace
from tests.unit.helpers import make_policy, trace_of


@pytest.mark.parametrize(
    ("state", "threshold"),
    [
        ("ot=th:c", 0xC0000000000000),  # the specification's 25 % example
        ("ot=th:8", 0x80000000000000),
        ("rojo=00f067aa0ba902b7,ot=rv:abcdef01234567;th:e666", 0xE6660000000000),
        ("ot=th:0", 0),
        ("rojo=1", None),
        ("ot=th:zz", None),
        ("", None),
    ],
)
def test_ot_threshold(state, threshold):
    assert ot_threshold(state) == threshold


def test_with_threshold_keeps_other_members_and_fields():
    assert with_threshold("", 0xC0000000000000) == "ot=th:c"
    assert with_threshold("rojo=1,ot=th:8;rv:abcdef01234567", 0xE0000000000000) == "rojo=1,ot=th:e;rv:abcdef01234567"
    assert with_threshold("rojo=1", 0) == "ot=th:0,rojo=1"


def spans_of_trace(trace) -> list:
    found = []
    for (_, scope), spans in trace.groups.items():
        found.extend(ScopeSpans.FromString(scope + bytes(spans)).spans)
    return found


def test_a_probabilistic_keep_multiplies_the_upstream_rate_into_the_threshold_and_the_record():
    _, spans = make_trace(spans=3)
    for span in spans:
        span.trace_state = "rojo=1,ot=th:c"  # kept upstream with probability 0.25
    trace = trace_of(spans)
    assert upstream_probability(trace) == 0.25
    policy = make_policy("probabilistic", {"sampling_percentage": 50})
    record = DecisionRecorder(True).mark(trace, policy, "wait")
    assert b"tailsampling.sample_rate" in record
    states = {span.trace_state for span in spans_of_trace(trace)}
    assert states == {"rojo=1,ot=th:e"}  # 0.25 x 0.5 = 0.125, threshold 0.875
    assert trace.span_count == 3 and trace.nbytes == sum(len(s.SerializeToString()) for s in spans_of_trace(trace))


def test_policies_without_a_rate_leave_spans_untouched():
    _, spans = make_trace(spans=2)
    trace = trace_of(spans)
    before = {key: bytes(value) for key, value in trace.groups.items()}
    DecisionRecorder(True).mark(trace, make_policy("always_sample"), "wait")
    assert [bytes(v) for v in trace.groups.values()] == list(before.values())


def test_records_off_change_nothing():
    _, spans = make_trace(spans=2)
    trace = trace_of(spans)
    before = dict(trace.groups)
    assert DecisionRecorder(False).mark(trace, make_policy("probabilistic", {"sampling_percentage": 10}), "wait") == b""
    assert trace.groups == before
