"""The receiver's input limits in RequestSplitter: spans per request, and the
OpenTelemetry SDK's span limits (attribute count, attribute value length)."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from sampler.config.receivers import SpanLimitsConfig
from sampler.receive.split import RequestSplitter
from sampler.spans.trace import DecodedBatch
from tests.support import make_request, make_span

A = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
B = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def received(request: ExportTraceServiceRequest, splitter: RequestSplitter) -> tuple[DecodedBatch, list[Span]]:
    """Split a copy of the request as the receivers do, and read back what was buffered."""
    batch = splitter.split(ExportTraceServiceRequest.FromString(request.SerializeToString()))
    spans = []
    for trace in batch.traces.values():
        for (_, scope), framed in trace.groups.items():
            spans.extend(ScopeSpans.FromString(scope + bytes(framed)).spans)
    return batch, spans


def limited(count: int | None = None, length: int | None = None) -> RequestSplitter:
    return RequestSplitter(
        span_limits=SpanLimitsConfig(attribute_count_limit=count, attribute_value_length_limit=length)
    )


def test_spans_past_max_spans_per_request_are_rejected_with_a_message() -> None:
    request = make_request([make_span(A, name=f"a{i}") for i in range(3)])
    for service in ("b", "c"):
        request.resource_spans.extend(
            make_request([make_span(B, name=f"{service}{i}") for i in range(3)], service).resource_spans
        )
    batch, spans = received(request, RequestSplitter(max_spans_per_request=5))
    assert [s.name for s in spans] == ["a0", "a1", "a2", "b0", "b1"]
    assert batch.span_count == 5 and batch.rejected_spans == batch.over_limit_spans == 4
    assert "max_spans_per_request (5)" in batch.rejection_message


def test_the_span_limit_adds_to_invalid_id_rejections() -> None:
    request = make_request([make_span(bytes(16)), make_span(A), make_span(A), make_span(A)])
    batch, spans = received(request, RequestSplitter(max_spans_per_request=3))
    assert len(spans) == 2
    assert batch.rejected_spans == 2 and batch.over_limit_spans == 1
    assert "not all zero" in batch.rejection_message and "max_spans_per_request" in batch.rejection_message


def test_a_request_within_the_span_limit_is_whole() -> None:
    batch, spans = received(make_request([make_span(A) for _ in range(4)]), RequestSplitter(max_spans_per_request=4))
    assert len(spans) == 4 and batch.rejected_spans == 0 and batch.rejection_message == ""


def test_attribute_count_limit_keeps_the_first_attributes_and_counts_the_rest() -> None:
    span = make_span(A, attributes={f"k{i}": i for i in range(6)})
    span.dropped_attributes_count = 2  # already dropped by the client's SDK
    batch, (kept,) = received(make_request([span]), limited(count=4))
    assert [a.key for a in kept.attributes] == ["k0", "k1", "k2", "k3"]
    assert kept.dropped_attributes_count == 4
    assert batch.dropped_attributes == 2 and batch.truncated_values == 0


def test_attribute_count_limit_zero_drops_every_attribute() -> None:
    batch, (kept,) = received(make_request([make_span(A, attributes={"a": 1, "b": 2})]), limited(count=0))
    assert not kept.attributes and kept.dropped_attributes_count == 2


def test_value_length_limit_truncates_strings_bytes_and_strings_in_arrays_and_lists() -> None:
    span = make_span(A, attributes={"text": "ééééé-long", "short": "ok", "number": 123456789})
    span.attributes.add(key="raw", value=AnyValue(bytes_value=b"\x00" * 20))
    strings = [AnyValue(string_value="abcdefgh"), AnyValue(string_value="x"), AnyValue(int_value=7)]
    span.attributes.add(key="list", value=AnyValue(array_value=ArrayValue(values=strings)))
    nested = KeyValueList(values=[KeyValue(key="inner", value=AnyValue(string_value="zzzzzzzz"))])
    span.attributes.add(key="map", value=AnyValue(kvlist_value=nested))
    span.events.add(name="e", attributes=[KeyValue(key="ev", value=AnyValue(string_value="e" * 50))])
    span.links.add(
        trace_id=B, span_id=b"\x01" * 8, attributes=[KeyValue(key="lk", value=AnyValue(string_value="l" * 9))]
    )

    batch, (kept,) = received(make_request([span]), limited(length=5))
    values = {a.key: a.value for a in kept.attributes}
    assert values["text"].string_value == "ééééé"  # characters, not bytes
    assert values["short"].string_value == "ok"
    assert values["number"].int_value == 123456789
    assert values["raw"].bytes_value == b"\x00" * 5
    assert [v.string_value for v in values["list"].array_value.values] == ["abcde", "x", ""]
    assert values["map"].kvlist_value.values[0].value.string_value == "zzzzz"
    assert kept.events[0].attributes[0].value.string_value == "eeeee"
    assert kept.links[0].attributes[0].value.string_value == "lllll"
    assert batch.truncated_values == 6 and batch.dropped_attributes == 0
    assert kept.dropped_attributes_count == 0  # truncation drops no attribute


def test_spans_within_the_limits_are_forwarded_byte_for_byte() -> None:
    spans = [make_span(A, attributes={"k": "v" * 40, "n": 1}), make_span(A, attributes={"k": "v" * 400})]
    batch = limited(count=2, length=100).split(make_request(spans))
    (framed,) = batch.traces[A].groups.values()
    unchanged = spans[0].SerializeToString()
    assert bytes(framed).startswith(b"\x12" + bytes([len(unchanged)]) + unchanged)
    assert batch.truncated_values == 1


def test_no_limits_by_default() -> None:
    span = make_span(A, attributes={f"k{i}": "v" * 10_000 for i in range(300)})
    batch, spans = received(make_request([span] * 3), RequestSplitter())
    assert spans == [span] * 3 and batch.span_count == 3
    assert batch.dropped_attributes == batch.truncated_values == batch.rejected_spans == 0


def test_a_dropped_attributes_count_at_its_top_stays_there() -> None:
    """dropped_attributes_count is a uint32: attributes dropped from a span that already claims
    2**32 - 1 dropped leave the count there (found by hypothesis: it raised ValueError)."""
    span = make_span(A)
    span.attributes.add(key="a")
    span.attributes.add(key="b")
    span.dropped_attributes_count = 0xFFFFFFFF
    batch, spans = received(make_request([span]), limited(count=1))
    assert batch.rejected_spans == 0 and batch.dropped_attributes == 1
    assert len(spans[0].attributes) == 1
    assert spans[0].dropped_attributes_count == 0xFFFFFFFF
