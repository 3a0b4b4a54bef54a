"""Attribute lookups on span bytes (sampler/policies/attribute_lookup.py) agree with a full parse."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.policies.base import TraceView
from sampler.receive.split import RequestSplitter

# Few distinct keys, some prefixes of others and some long enough for a two-byte length,
# so that lookups meet near misses and the key bytes inside values, events and scopes.
KEYS = ["k", "k2", "key", "ké", "http.route", "x" * 130, ""]
scalars = st.one_of(
    st.text(max_size=8).map(lambda s: AnyValue(string_value=s)),
    st.sampled_from(KEYS).map(lambda s: AnyValue(string_value="\n\x01" + s)),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.floats(allow_nan=False).map(lambda f: AnyValue(double_value=f)),
    st.just(AnyValue()),
)
attributes = st.lists(st.tuples(st.sampled_from(KEYS), scalars), max_size=5, unique_by=lambda kv: kv[0]).map(
    lambda pairs: [KeyValue(key=k, value=v) for k, v in pairs]
)


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    trace_id = os.urandom(16)
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 3))):
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(draw(attributes))
        for _ in range(draw(st.integers(1, 2))):
            scope_spans = resource_spans.scope_spans.add()
            scope_spans.scope.name = "scope"
            scope_spans.scope.attributes.extend(draw(attributes))
            for _ in range(draw(st.integers(1, 3))):
                span = scope_spans.spans.add(trace_id=trace_id, span_id=os.urandom(8), name="op")
                span.attributes.extend(draw(attributes))
                span.events.add(name="event").attributes.extend(draw(attributes))
    return request


def full_parse_values(view: TraceView, key: str) -> list[object]:
    """The reference: parse every span and resource, and read the attribute where it is set."""
    found = []
    for group in {id(record.resource): record.resource for record in view.spans()}.values():
        found += [
            getattr(a.value, a.value.WhichOneof("value"))
            for a in group.attributes
            if a.key == key and a.value.WhichOneof("value")
        ]
    for record in view.spans():
        found += [
            getattr(a.value, a.value.WhichOneof("value"))
            for a in record.span.attributes
            if a.key == key and a.value.WhichOneof("value")
        ]
    return found


def _comparable(values: list[object]) -> list[object]:
    return sorted(repr(value) for value in values)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.sampled_from(KEYS + ["absent", "k3"]))
def test_lookup_matches_a_full_parse(request: ExportTraceServiceRequest, key: str) -> None:
    (trace,) = RequestSplitter().split(request).traces.values()
    expected = full_parse_values(TraceView(trace), key)
    assert _comparable(list(TraceView(trace).attribute_values(key))) == _comparable(expected)


def test_event_and_scope_attributes_are_not_span_attributes() -> None:
    trace_id = os.urandom(16)
    span = Span(trace_id=trace_id, span_id=os.urandom(8), name="op")
    span.events.add(name="e").attributes.append(KeyValue(key="k", value=AnyValue(string_value="event")))
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    scope_spans.scope.attributes.append(KeyValue(key="k", value=AnyValue(string_value="scope")))
    scope_spans.spans.append(span)
    (trace,) = RequestSplitter().split(request).traces.values()
    assert list(TraceView(trace).attribute_values("k")) == []


def test_a_trace_without_the_key_is_not_parsed() -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(trace_id=os.urandom(16), span_id=os.urandom(8))
    (trace,) = RequestSplitter().split(request).traces.values()
    view = TraceView(trace)
    assert list(view.attribute_values("missing")) == []
    assert view._attributes is not None and view._attributes._spans == [None]  # nothing was parsed
