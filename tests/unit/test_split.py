"""RequestSplitter: one export request becomes per-trace batches of framed span bytes."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from sampler.receive.split import BadRequest, RequestSplitter, parse_json, parse_protobuf
from sampler.spans import framing as wire
from sampler.spans.trace import TraceSpans
from tests.support import MS, T0, json_body, make_request, make_span, make_trace

A = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
B = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def _spans_of(trace: TraceSpans) -> list[Span]:
    spans = []
    for (resource, scope), framed in trace.groups.items():
        spans.extend(ScopeSpans.FromString(scope + bytes(framed)).spans)
        assert not ResourceSpans.FromString(resource).scope_spans
    return spans


def test_spans_are_grouped_per_trace() -> None:
    a_id, a_spans = make_trace(spans=3)
    b_id, b_spans = make_trace(spans=2)
    interleaved = [a_spans[0], b_spans[0], a_spans[1], b_spans[1], a_spans[2]]
    batch = RequestSplitter().split(make_request(interleaved))

    assert set(batch.traces) == {a_id, b_id}
    assert batch.span_count == 5
    assert batch.rejected_spans == 0 and batch.rejection_message == ""
    assert _spans_of(batch.traces[a_id]) == a_spans
    assert _spans_of(batch.traces[b_id]) == b_spans
    assert all(trace.trace_id == tid for tid, trace in batch.traces.items())


def test_groups_keep_resource_and_scope() -> None:
    request = ExportTraceServiceRequest()
    for service in ("front", "back"):
        part = make_request([make_span(A, name=f"{service}-1"), make_span(B, name=f"{service}-2")], service=service)
        part.resource_spans[0].scope_spans.add().scope.name = "other"
        part.resource_spans[0].scope_spans[1].spans.append(make_span(A, name=f"{service}-other"))
        request.resource_spans.extend(part.resource_spans)

    traces = RequestSplitter().split(request).traces
    trace_a = traces[A]
    assert len(trace_a.groups) == 4  # two resources x two scopes
    seen = set()
    for (resource, scope), framed in trace_a.groups.items():
        service = ResourceSpans.FromString(resource).resource.attributes[0].value.string_value
        scope_spans = ScopeSpans.FromString(scope + bytes(framed))
        for span in scope_spans.spans:
            seen.add((service, scope_spans.scope.name, span.name))
    assert seen == {
        ("front", "test", "front-1"),
        ("front", "other", "front-other"),
        ("back", "test", "back-1"),
        ("back", "other", "back-other"),
    }
    assert len(traces[B].groups) == 2


def test_framed_bytes_are_exactly_the_serialized_spans() -> None:
    spans = [make_span(A, attributes={"k": "v" * 20_000}), make_span(A)]  # one length needs a 3-byte varint
    trace = RequestSplitter().split(make_request(spans)).traces[A]
    (framed,) = trace.groups.values()
    assert bytes(framed) == b"".join(wire.frame(wire.TAG_SCOPE_SPAN, s.SerializeToString()) for s in spans)
    assert wire.count_fields(framed) == trace.span_count == 2


def test_summary_fields() -> None:
    root = make_span(A, b"\x01" * 8, start_ms=5, duration_ms=100)
    child = make_span(A, b"\x02" * 8, parent=b"\x01" * 8, start_ms=2, duration_ms=3)
    late_child = make_span(A, b"\x03" * 8, parent=b"\x01" * 8, start_ms=50, duration_ms=200)
    trace = RequestSplitter().split(make_request([root, child, late_child])).traces[A]

    assert trace.span_count == 3
    assert trace.nbytes == sum(len(s.SerializeToString()) for s in (root, child, late_child))
    assert trace.start_min == T0 + 2 * MS
    assert trace.end_max == T0 + 250 * MS
    assert trace.duration_ns == 248 * MS
    assert trace.root_seen is True
    assert trace.error_seen is False
    assert trace.first_seen == 0.0 and trace.due == 0.0  # set by the window, not the splitter


def test_summary_without_root_and_with_error() -> None:
    spans = [
        make_span(A, parent=b"\x09" * 8, error=True),
        make_span(A, parent=b"\x09" * 8),
    ]
    ok = make_span(A, parent=b"\x09" * 8)
    ok.status.code = 1  # OK is not an error
    trace = RequestSplitter().split(make_request([*spans, ok])).traces[A]
    assert trace.root_seen is False
    assert trace.error_seen is True
    clean = RequestSplitter().split(make_request([ok])).traces[A]
    assert clean.error_seen is False


def test_zero_start_time_is_ignored_for_start_min() -> None:
    unset = Span(trace_id=A, span_id=b"\x01" * 8, start_time_unix_nano=0, end_time_unix_nano=T0 + 9 * MS)
    later = make_span(A, b"\x02" * 8, start_ms=4, duration_ms=1)
    trace = RequestSplitter().split(make_request([unset, later])).traces[A]
    assert trace.start_min == T0 + 4 * MS
    assert trace.end_max == T0 + 9 * MS


@pytest.mark.parametrize(
    ("trace_id", "span_id"),
    [
        (bytes(16), b"\x01" * 8),  # all-zero trace ID
        (b"\x01" * 15, b"\x01" * 8),  # short trace ID
        (b"\x01" * 17, b"\x01" * 8),  # long trace ID
        (b"", b"\x01" * 8),  # missing trace ID
        (A, bytes(8)),  # all-zero span ID
        (A, b"\x01" * 7),  # short span ID
        (A, b""),  # missing span ID
    ],
)
def test_invalid_ids_are_rejected_with_count_and_message(trace_id: bytes, span_id: bytes) -> None:
    good = [make_span(B), make_span(B)]
    bad = Span(trace_id=trace_id, span_id=span_id, name="bad")
    batch = RequestSplitter().split(make_request([good[0], bad, bad, good[1]]))

    assert batch.rejected_spans == 2
    assert batch.rejection_message.startswith("2 span(s) rejected")
    assert "trace_id must be 16 bytes and span_id 8 bytes" in batch.rejection_message
    assert batch.span_count == 2
    assert list(batch.traces) == [B]  # a trace left without valid spans is not kept
    assert _spans_of(batch.traces[B]) == good


def test_valid_spans_of_a_trace_survive_a_rejected_sibling() -> None:
    good = make_span(A, b"\x01" * 8)
    bad = make_span(A, bytes(8))
    batch = RequestSplitter().split(make_request([bad, good]))
    assert batch.rejected_spans == 1
    assert batch.traces[A].span_count == 1
    assert _spans_of(batch.traces[A]) == [good]


def test_resource_and_scope_prefixes_are_interned() -> None:
    splitter = RequestSplitter()
    # Two requests built separately: equal bytes, different objects, until interned.
    first = splitter.split(make_request([make_span(A)], service="svc", scope="lib")).traces[A]
    second = splitter.split(make_request([make_span(B)], service="svc", scope="lib")).traces[B]
    (key1,) = first.groups
    (key2,) = second.groups
    assert key1 is key2
    assert key1[0] is key2[0] and key1[1] is key2[1]

    other = splitter.split(make_request([make_span(B)], service="other", scope="lib")).traces[B]
    (key3,) = other.groups
    assert key3 != key1

    fresh = RequestSplitter().split(make_request([make_span(A)], service="svc", scope="lib")).traces[A]
    (key4,) = fresh.groups
    assert key4 == key1 and key4 is not key1  # the table belongs to the splitter


def test_schema_urls_are_part_of_the_prefixes() -> None:
    request = make_request([make_span(A)])
    request.resource_spans[0].schema_url = "r-schema"
    request.resource_spans[0].scope_spans[0].schema_url = "s-schema"
    trace = RequestSplitter().split(request).traces[A]
    ((resource, scope),) = trace.groups
    assert ResourceSpans.FromString(resource).schema_url == "r-schema"
    assert ScopeSpans.FromString(scope).schema_url == "s-schema"


def test_empty_request() -> None:
    batch = RequestSplitter().split(ExportTraceServiceRequest())
    assert batch.traces == {} and batch.span_count == 0 and batch.rejected_spans == 0


def test_parsers_raise_bad_request() -> None:
    request = make_request([make_span(A)])
    assert parse_protobuf(request.SerializeToString()) == request
    assert parse_json(json_body(request)) == request
    with pytest.raises(BadRequest, match="malformed protobuf ExportTraceServiceRequest"):
        parse_protobuf(b"\x0a\x05\x01")
    with pytest.raises(BadRequest, match="malformed OTLP JSON request: invalid JSON"):
        parse_json(b"{")
    assert issubclass(BadRequest, ValueError)
