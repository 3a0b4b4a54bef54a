"""Hostile input to the OTLP decoders: whatever arrives, the answer is a request or a
BadRequest with a message, and splitting an accepted request never raises.

Bounded for CI (max_examples, a deadline only a hang would pass); tests/fuzz/ has
an atheris target for longer runs over the same property."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from sampler.config.receivers import SpanLimitsConfig
from sampler.receive.split import BadRequest, RequestSplitter, parse_json, parse_protobuf
from sampler.spans import framing as wire
from tests.support import json_body, make_request, make_span, make_trace
from tests.unit.helpers import split

# Only a hang exceeds this; the machine running CI is shared and slow at times.
FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def decode_and_split(parse: Any, data: bytes, splitter: RequestSplitter | None = None) -> int | None:
    """Spans accepted, or None for a clear refusal; anything else raised fails the test."""
    try:
        request = parse(data)
    except BadRequest as exc:
        assert str(exc), "a refusal must say why"
        return None
    total = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
    batch = (splitter or RequestSplitter()).split(request)
    assert batch.span_count + batch.rejected_spans == total
    for trace_id, trace in batch.traces.items():
        assert len(trace_id) == 16 and any(trace_id)
        assert wire.count_fields(b"".join(trace.groups.values())) == trace.span_count > 0
    if batch.rejected_spans:
        assert batch.rejection_message
    return batch.span_count


def _valid_request_bytes(spans: int = 3, attributes: dict[str, Any] | None = None) -> bytes:
    return make_request(
        make_trace(spans=spans, attributes=attributes or {"http.route": "/a", "n": 7})[1]
    ).SerializeToString()


VALID = _valid_request_bytes()
VALID_JSON = json_body(ExportTraceServiceRequest.FromString(VALID))


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """A valid body, truncated, with bytes flipped, inserted or removed."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "truncate":
            del data[position:]
        elif action == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[position : position + draw(st.integers(1, 16))]
    return bytes(data)


# --- protobuf --------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_are_a_request_or_a_clear_refusal(data: bytes) -> None:
    decode_and_split(parse_protobuf, data)


@FUZZ
@given(data=mutated(VALID))
def test_truncated_and_mutated_requests(data: bytes) -> None:
    decode_and_split(parse_protobuf, data)


def _field(number: int, wire_type: int, payload: bytes) -> bytes:
    key = wire.encode_varint(number << 3 | wire_type)
    if wire_type == 2:
        return key + wire.encode_varint(len(payload)) + payload
    if wire_type == 0:
        return key + wire.encode_varint(int.from_bytes(payload[:9] or b"\x00", "little") & (1 << 64) - 1)
    if wire_type == 1:
        return key + payload[:8].ljust(8, b"\x00")
    if wire_type == 5:
        return key + payload[:4].ljust(4, b"\x00")
    return key + payload  # groups (3, 4) and the invalid types 6, 7: raw bytes after the key


@st.composite
def hand_built_spans(draw: st.DrawFn) -> bytes:
    """Span messages of fields with any number and wire type, nested in a request."""
    fields = draw(
        st.lists(
            st.tuples(st.integers(1, 20), st.integers(0, 7), st.binary(max_size=24)),
            max_size=12,
        )
    )
    span = b"".join(_field(number, wire_type, payload) for number, wire_type, payload in fields)
    if draw(st.booleans()):  # keep the IDs valid often enough to reach the splitter
        span = _field(1, 2, TRACE) + _field(2, 2, os.urandom(8)) + span
    scope_spans = _field(2, 2, span)
    return _field(1, 2, _field(2, 2, scope_spans))


@FUZZ
@given(data=hand_built_spans())
def test_wrong_wire_types_and_unknown_fields(data: bytes) -> None:
    decode_and_split(parse_protobuf, data)


def test_a_wrong_wire_type_for_a_known_field_leaves_it_unset() -> None:
    # Protobuf parsers keep a field of the wrong wire type as an unknown field, so the
    # span arrives with no trace ID and is refused through partial success.
    span = _field(1, 0, b"\x05") + _field(2, 2, os.urandom(8))  # trace_id as a varint
    batch = RequestSplitter().split(parse_protobuf(_field(1, 2, _field(2, 2, _field(2, 2, span)))))
    assert batch.span_count == 0 and batch.rejected_spans == 1
    assert "trace_id must be 16 bytes" in batch.rejection_message


def test_invalid_utf8_in_a_string_field_is_refused() -> None:
    span = _field(1, 2, TRACE) + _field(2, 2, os.urandom(8)) + _field(5, 2, b"op-\xff\xfe")  # name
    with pytest.raises(BadRequest, match="malformed protobuf"):
        parse_protobuf(_field(1, 2, _field(2, 2, _field(2, 2, span))))


def _nested_value(depth: int, kind: str) -> AnyValue:
    value = AnyValue(string_value="leaf")
    for _ in range(depth):
        if kind == "array":
            value = AnyValue(array_value=ArrayValue(values=[value]))
        else:
            value = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="k", value=value)]))
    return value


def _nested_value_bytes(depth: int, kind: str) -> bytes:
    """An AnyValue `depth` levels deep, framed by hand: the protobuf library refuses to
    serialize past its own recursion limit, and a hostile client does not ask it."""
    data = AnyValue(string_value="leaf").SerializeToString()
    for _ in range(depth):
        if kind == "array":
            data = wire.frame(b"\x2a", wire.frame(b"\x0a", data))  # AnyValue.array_value.values
        else:
            entry = wire.frame(b"\x0a", b"k") + wire.frame(b"\x12", data)  # KeyValue(key, value)
            data = wire.frame(b"\x32", wire.frame(b"\x0a", entry))  # AnyValue.kvlist_value.values
    return data


@pytest.mark.parametrize("kind", ["array", "kvlist"])
@pytest.mark.parametrize("depth", [1, 20, 60, 500, 20_000])
def test_deeply_nested_attribute_values_are_bounded(kind: str, depth: int) -> None:
    attribute = wire.frame(b"\x0a", b"deep") + wire.frame(b"\x12", _nested_value_bytes(depth, kind))
    span = _field(1, 2, TRACE) + _field(2, 2, os.urandom(8)) + _field(9, 2, attribute)
    data = _field(1, 2, _field(2, 2, _field(2, 2, span)))
    accepted = decode_and_split(
        parse_protobuf, data, RequestSplitter(span_limits=SpanLimitsConfig(attribute_value_length_limit=2))
    )
    # The parser's recursion limit (100 nested messages) decides; past it, a clear refusal.
    assert accepted == (1 if depth <= 20 else None)


def test_all_zero_ids_are_rejected_through_partial_success() -> None:
    good = make_span(TRACE)
    spans = [make_span(bytes(16)), make_span(TRACE, span_id=bytes(8)), good]
    batch = RequestSplitter().split(ExportTraceServiceRequest.FromString(make_request(spans).SerializeToString()))
    assert batch.span_count == 1 and batch.rejected_spans == 2
    assert "not all zero" in batch.rejection_message
    assert set(batch.traces) == {TRACE}


def test_huge_attribute_values_and_arrays_are_accepted_and_limited() -> None:
    span = make_span(TRACE, attributes={"big": "x" * 3_000_000})
    span.attributes.add(
        key="many", value=AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=i) for i in range(200_000)]))
    )
    span.attributes.add(
        key="strings", value=AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="y" * 100)] * 1000))
    )
    data = make_request([span]).SerializeToString()
    assert decode_and_split(parse_protobuf, data) == 1
    limits = SpanLimitsConfig(attribute_value_length_limit=10, attribute_count_limit=2)
    batch = RequestSplitter(span_limits=limits).split(parse_protobuf(data))
    (kept,) = split_spans(batch)
    assert [a.key for a in kept.attributes] == ["big", "many"]
    assert kept.dropped_attributes_count == 1
    assert kept.attributes[0].value.string_value == "x" * 10
    assert len(kept.attributes[1].value.array_value.values) == 200_000  # not a string: left alone
    assert batch.dropped_attributes == 1 and batch.truncated_values == 1


def split_spans(batch: Any) -> list[Any]:
    from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

    spans = []
    for trace in batch.traces.values():
        for (_, scope), framed in trace.groups.items():
            spans.extend(ScopeSpans.FromString(scope + bytes(framed)).spans)
    return spans


def test_a_hundred_thousand_spans_in_one_trace() -> None:
    request = make_request(make_span(TRACE, span_id=(i + 1).to_bytes(8, "big")) for i in range(100_000))
    traces = split(ExportTraceServiceRequest.FromString(request.SerializeToString()))
    assert traces[TRACE].span_count == 100_000


# --- JSON ------------------------------------------------------------------------

# Text with lone surrogates (category Cs): JSON carries them as \uXXXX escapes, UTF-8 cannot.
surrogate_text = st.text(st.characters(categories=["Cs", "Ll", "Nd"]), min_size=1, max_size=4)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    surrogate_text,
    st.sampled_from(["0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "NaN", "-Infinity", "1e999", "AAAA"]),
)
otlp_keys = st.sampled_from(
    [
        "resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "parentSpanId", "attributes", "key", "value",
        "stringValue", "intValue", "doubleValue", "boolValue", "arrayValue", "kvlistValue", "bytesValue", "values",
        "events", "links", "status", "code", "kind", "name", "startTimeUnixNano", "resource", "scope", "schemaUrl",
        "droppedAttributesCount", "trace_id", "resource_spans", "[ext]",
    ]
)  # fmt: skip
json_documents = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(otlp_keys, st.text(max_size=8), surrogate_text), children, max_size=5),
    ),
    max_leaves=40,
)


@FUZZ
@given(document=json_documents)
def test_arbitrary_json_documents_are_a_request_or_a_clear_refusal(document: Any) -> None:
    decode_and_split(parse_json, json.dumps(document).encode())


@FUZZ
@given(data=st.one_of(st.binary(max_size=512), mutated(VALID_JSON)))
def test_arbitrary_and_mutated_json_text(data: bytes) -> None:
    decode_and_split(parse_json, data)


@pytest.mark.parametrize("depth", [10, 40, 60, 500])
def test_deeply_nested_json_attribute_values_are_bounded(depth: int) -> None:
    # Written out as text: json.dumps itself gives up on deep nesting.
    value = '{"arrayValue":{"values":[' * depth + '{"stringValue":"leaf"}' + "]}}" * depth
    span = f'{{"traceId":"{TRACE.hex()}","spanId":"b7ad6b7169203331","attributes":[{{"key":"k","value":{value}}}]}}'
    text = f'{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{span}]}}]}}]}}'.encode()
    assert decode_and_split(parse_json, text) == (1 if depth <= 40 else None)


@pytest.mark.parametrize("depth", [5_000, 1_000_000])
def test_deeply_nested_json_text_is_refused(depth: int) -> None:
    with pytest.raises(BadRequest, match="nested too deeply|malformed"):
        parse_json(b'{"resourceSpans":' + b"[" * depth + b"]" * depth + b"}")


def test_invalid_utf8_json_is_refused() -> None:
    with pytest.raises(BadRequest, match="invalid JSON"):
        parse_json(b'{"resourceSpans": [{"schemaUrl": "\xff\xfe"}]}')
    with pytest.raises(BadRequest):
        parse_json(b'{"resourceSpans": [{"schemaUrl": "\\ud800"}]}')  # a lone surrogate
