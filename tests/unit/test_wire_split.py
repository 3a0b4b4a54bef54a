"""The wire-level splitter (sampler/receive/wire_split.py) against the protobuf path it replaces:
for any input bytes, `WireSplitter.split(data)` must equal `RequestSplitter.split(parse_protobuf(data))`
byte for byte, or raise the same BadRequest.

Inputs: canonical requests (what protobuf libraries write), the same messages written the ways
other encoders may (fields out of order, non-minimal varints, explicit defaults, unknown fields,
a message field split in two, repeated scalars, negative enums), and those bytes damaged.
Runs on whichever build of the walker is imported: the plain modules, or the mypyc-compiled ones.
"""

from __future__ import annotations

import os
import random
import struct
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from sampler.config.receivers import SpanLimitsConfig
from sampler.policies.attribute_lookup import AttributeIndex
from sampler.receive import wire_split
from sampler.receive.split import BadRequest, RequestSplitter, parse_protobuf
from sampler.receive.wire_check import Unsupported, count_spans
from sampler.receive.wire_split import WireSplitter
from sampler.spans.fields import SpanFields
from sampler.spans.framing import encode_varint, frame
from sampler.spans.trace import DecodedBatch
from tests.peers import unavailable

# WIRE_SPLIT_EXAMPLES raises the count for a longer search (up to 4,000 per property were run on
# the plain modules and 1,500 on the compiled ones while the walker was written).
CHECK = settings(
    max_examples=int(os.environ.get("WIRE_SPLIT_EXAMPLES", "200")),
    deadline=timedelta(seconds=10),  # only a hang exceeds this
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- messages ------------------------------------------------------------------------------

KEYS = ["service.name", "http.route", "k", "ké", "x" * 130, ""]
texts = st.one_of(st.sampled_from(["", "a", "GET /x", "é", "\U0001f600", "y" * 140]), st.text(max_size=6))
ids = st.one_of(
    st.binary(min_size=16, max_size=16), st.just(bytes(16)), st.binary(max_size=17)
)  # mostly valid trace IDs, some zero or of the wrong size
span_ids = st.one_of(st.binary(min_size=8, max_size=8), st.just(bytes(8)), st.binary(max_size=9))
enums = st.one_of(st.integers(0, 5), st.integers(-(2**31), 2**31 - 1))
times = st.one_of(st.just(0), st.integers(1, 2**63 - 1), st.integers(2**63, 2**64 - 1))
counts = st.one_of(st.just(0), st.integers(0, 2**32 - 1))


def any_values(depth: int) -> st.SearchStrategy[AnyValue]:
    scalars = st.one_of(
        texts.map(lambda s: AnyValue(string_value=s)),
        st.booleans().map(lambda b: AnyValue(bool_value=b)),
        st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
        st.floats().map(lambda f: AnyValue(double_value=f)),
        st.binary(max_size=20).map(lambda b: AnyValue(bytes_value=b)),
        st.integers(-5, 5).map(lambda i: AnyValue(string_value_strindex=i)),
        st.just(AnyValue()),
    )
    if depth <= 0:
        return scalars
    inner = any_values(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=3).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
        st.lists(st.tuples(st.sampled_from(KEYS), inner), max_size=3).map(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs]))
        ),
    )


key_values = st.builds(
    lambda key, value, present, strindex: KeyValue(key=key, value=value if present else None, key_strindex=strindex),
    st.sampled_from(KEYS),
    any_values(2),
    st.booleans(),
    st.sampled_from([0, 0, 0, 3]),
)
attribute_lists = st.lists(key_values, max_size=4)


@st.composite
def spans(draw: st.DrawFn, trace_ids: list[bytes]) -> Span:
    span = Span(
        trace_id=draw(st.sampled_from(trace_ids)),
        span_id=draw(span_ids),
        parent_span_id=draw(st.one_of(st.just(b""), span_ids)),
        trace_state=draw(st.sampled_from(["", "ot=th:8"])),
        name=draw(texts),
        kind=draw(enums),
        start_time_unix_nano=draw(times),
        end_time_unix_nano=draw(times),
        attributes=draw(attribute_lists),
        dropped_attributes_count=draw(counts),
        flags=draw(st.sampled_from([0, 1, 0x301])),
    )
    for _ in range(draw(st.integers(0, 2))):
        span.events.add(time_unix_nano=draw(times), name=draw(texts), attributes=draw(attribute_lists))
    for _ in range(draw(st.integers(0, 1))):
        span.links.add(
            trace_id=draw(ids), span_id=draw(span_ids), trace_state=draw(texts), attributes=draw(attribute_lists)
        )
    status = draw(st.sampled_from(["absent", "empty", "set"]))
    if status == "empty":
        span.status.SetInParent()
    elif status == "set":
        span.status.CopyFrom(Status(code=draw(enums), message=draw(texts)))
    return span


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    trace_ids = draw(st.lists(ids, min_size=1, max_size=4))
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        resource_spans = request.resource_spans.add(schema_url=draw(st.sampled_from(["", "https://s/1"])))
        if draw(st.booleans()):
            resource_spans.resource.CopyFrom(
                Resource(attributes=draw(attribute_lists), dropped_attributes_count=draw(counts))
            )
            if draw(st.booleans()):
                resource_spans.resource.entity_refs.add(type="host", id_keys=["host.id", ""])
        for _ in range(draw(st.integers(0, 3))):
            scope_spans = resource_spans.scope_spans.add(schema_url=draw(st.sampled_from(["", "https://s/2"])))
            if draw(st.booleans()):
                scope_spans.scope.CopyFrom(
                    InstrumentationScope(name=draw(texts), version=draw(texts), attributes=draw(attribute_lists))
                )
            scope_spans.spans.extend(draw(st.lists(spans(trace_ids), max_size=6)))
    return request


# --- the ways other encoders write the same message ------------------------------------------


def _tag(number: int, wire_type: int, rnd: random.Random) -> bytes:
    return _varint((number << 3) | wire_type, rnd)


def _varint(value: int, rnd: random.Random, bits: int = 64) -> bytes:
    value &= (1 << bits) - 1
    encoded = bytearray(encode_varint(value) if value else b"\x00")
    if rnd.random() < 0.1 and len(encoded) < 10:  # padded: 0x80 continuation bytes, then 0x00
        padding = rnd.randint(1, 10 - len(encoded))
        encoded[-1] |= 0x80
        encoded += b"\x80" * (padding - 1) + b"\x00"
    return bytes(encoded)


def _unknown_field(rnd: random.Random) -> bytes:
    number = rnd.choice([17, 20, 99, 1000])
    kind = rnd.choice(["varint", "fixed64", "fixed32", "len", "group"])
    if kind == "varint":
        return _tag(number, 0, rnd) + _varint(rnd.getrandbits(40), rnd)
    if kind == "fixed64":
        return _tag(number, 1, rnd) + rnd.randbytes(8)
    if kind == "fixed32":
        return _tag(number, 5, rnd) + rnd.randbytes(4)
    if kind == "len":
        payload = rnd.randbytes(rnd.randint(0, 5))
        return _tag(number, 2, rnd) + _varint(len(payload), rnd) + payload
    return _tag(number, 3, rnd) + _tag(1, 0, rnd) + b"\x01" + _tag(number, 4, rnd)


def _scalar(field: FieldDescriptor, value: Any, rnd: random.Random) -> bytes:
    number = field.number
    kind = field.type
    if kind in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        payload = value.encode() if isinstance(value, str) else value
        return _tag(number, 2, rnd) + _varint(len(payload), rnd) + payload
    if kind == FieldDescriptor.TYPE_FIXED64:
        return _tag(number, 1, rnd) + value.to_bytes(8, "little")
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return _tag(number, 1, rnd) + struct.pack("<d", value)
    if kind == FieldDescriptor.TYPE_FIXED32:
        return _tag(number, 5, rnd) + value.to_bytes(4, "little")
    if kind == FieldDescriptor.TYPE_BOOL:
        return _tag(number, 0, rnd) + _varint(rnd.choice([1, 2, 127]) if value else 0, rnd)
    if kind in (FieldDescriptor.TYPE_ENUM, FieldDescriptor.TYPE_INT32) and value < 0 and rnd.random() < 0.5:
        return _tag(number, 0, rnd) + _varint(value, rnd, bits=32)  # 5 bytes, as some encoders write it
    return _tag(number, 0, rnd) + _varint(value, rnd)


def _default(field: FieldDescriptor) -> Any:
    if field.type in (FieldDescriptor.TYPE_STRING,):
        return ""
    if field.type == FieldDescriptor.TYPE_BYTES:
        return b""
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return 0.0
    return 0


def rewrite(message: Message, rnd: random.Random) -> bytes:
    """`message` encoded as another encoder might: same meaning as far as a parser goes (unknown
    fields aside), other bytes."""
    return b"".join(_rewrite_fields(message, rnd))


def _rewrite_fields(message: Message, rnd: random.Random) -> list[bytes]:
    chunks: list[bytes] = []
    present = {field.number for field, _ in message.ListFields()}
    for field, value in message.ListFields():
        values = value if field.is_repeated else [value]
        for item in values:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                parts = _rewrite_fields(item, rnd)
                if not field.is_repeated and len(parts) > 1 and rnd.random() < 0.1:
                    # A singular message written in two parts, which a parser merges.
                    cut = rnd.randint(1, len(parts) - 1)
                    bodies = [b"".join(parts[:cut]), b"".join(parts[cut:])]
                else:
                    bodies = [b"".join(parts)]
                for body in bodies:
                    chunks.append(_tag(field.number, 2, rnd) + _varint(len(body), rnd) + body)
            else:
                if not field.is_repeated and rnd.random() < 0.05 and not field.containing_oneof:
                    chunks.append(_scalar(field, _default(field), rnd))  # replaced by the next one
                chunks.append(_scalar(field, item, rnd))
    for field in message.DESCRIPTOR.fields:
        # proto3 defaults written out, as protobuf.js does for fields set to zero.
        if (
            field.number not in present
            and not field.is_repeated
            and field.type != FieldDescriptor.TYPE_MESSAGE
            and not field.containing_oneof
            and rnd.random() < 0.15
        ):
            chunks.append(_scalar(field, _default(field), rnd))
    if rnd.random() < 0.1:
        chunks.insert(rnd.randint(0, len(chunks)), _unknown_field(rnd))
    if rnd.random() < 0.2:
        _shuffle_keeping_repeated_order(chunks, rnd)
    return chunks


def _shuffle_keeping_repeated_order(chunks: list[bytes], rnd: random.Random) -> None:
    """Swap two neighbouring chunks now and then: fields out of order (elements of one repeated
    field may swap too, which changes the message, but both paths see the same bytes)."""
    for _ in range(len(chunks)):
        if len(chunks) > 1:
            index = rnd.randrange(len(chunks) - 1)
            chunks[index], chunks[index + 1] = chunks[index + 1], chunks[index]


def damage(data: bytes, rnd: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        action = rnd.choice(["truncate", "flip", "insert", "delete"])
        position = rnd.randint(0, max(0, len(out) - 1))
        if action == "truncate":
            del out[position:]
        elif action == "flip" and out:
            out[position] ^= rnd.randint(1, 255)
        elif action == "insert":
            out[position:position] = rnd.randbytes(rnd.randint(1, 4))
        elif out:
            del out[position : position + rnd.randint(1, 8)]
    return bytes(out)


# --- comparison ------------------------------------------------------------------------------

LIMITS = [
    (0, None),
    (3, None),
    (0, SpanLimitsConfig(attribute_count_limit=1, attribute_value_length_limit=3)),
    (5, SpanLimitsConfig(attribute_count_limit=2, attribute_value_length_limit=None)),
]


def summary(batch: DecodedBatch) -> Any:
    """Everything a DecodedBatch holds, in order, as plain values."""
    return (
        [
            (
                trace_id,
                trace.trace_id,
                [(key, bytes(spans)) for key, spans in trace.groups.items()],
                trace.span_count,
                trace.nbytes,
                trace.start_min,
                trace.end_max,
                trace.root_seen,
                trace.error_seen,
            )
            for trace_id, trace in batch.traces.items()
        ],
        batch.span_count,
        batch.rejected_spans,
        batch.rejection_message,
        batch.over_limit_spans,
        batch.over_limit_reason,
        batch.dropped_attributes,
        batch.truncated_values,
    )


def outcome(split: Any, data: bytes) -> Any:
    try:
        return summary(split(data))
    except BadRequest as exc:
        return ("BadRequest", str(exc))


def assert_same(data: bytes, limits: tuple[int, SpanLimitsConfig | None] = (0, None)) -> WireSplitter:
    """Both paths give the same batch (or the same BadRequest), and gather the same span fields,
    which are those of the accepted spans as protobuf reads them back; the wire count of spans
    is the parser's."""
    protobuf = RequestSplitter(*limits)
    wire = WireSplitter(*limits)
    protobuf_fields = SpanFields()
    fields = SpanFields()
    expected = outcome(lambda body: protobuf.split(parse_protobuf(body), None, protobuf_fields), data)
    got = outcome(lambda body: wire.split(body, fields), data)
    assert got == expected
    if expected[0] != "BadRequest":
        reference = RequestSplitter(*limits).split(parse_protobuf(data))
        assert field_rows(fields) == field_rows(protobuf_fields) == expected_fields(reference)
        assert fields.spans == reference.span_count
        try:
            counted = count_spans(data)
        except Unsupported:
            pass
        else:
            request = parse_protobuf(data)
            assert counted == sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
    return wire


def field_rows(fields: SpanFields) -> dict[tuple[Any, ...], list[int]]:
    """Per series (names as text, however the splitter kept them): [spans, summed duration, ...]."""
    rows: dict[tuple[Any, ...], list[int]] = {}
    for (service, name, kind, code), counts in fields.series.items():
        key = (_text(service), _text(name), kind, code)
        assert key not in rows, f"one series twice: {key}"
        rows[key] = counts
    return rows


def _text(name: bytes | str) -> str:
    return name if isinstance(name, str) else name.decode()


def expected_fields(batch: DecodedBatch) -> dict[tuple[Any, ...], list[int]]:
    """The span-metrics series of every accepted span, read back with protobuf (no buckets)."""
    out: dict[tuple[Any, ...], list[int]] = {}
    for trace in batch.traces.values():
        for (resource, scope), spans in trace.groups.items():
            service = None
            for attribute in ResourceSpans.FromString(resource).resource.attributes:
                if attribute.key == "service.name" and service is None:  # the first, as the Collector
                    value = attribute.value
                    service = value.string_value if value.WhichOneof("value") == "string_value" else ""
            for span in ScopeSpans.FromString(scope + bytes(spans)).spans:
                counts = out.setdefault((service or "", span.name, span.kind, span.status.code), [0, 0, 0])
                duration = max(0, span.end_time_unix_nano - span.start_time_unix_nano)
                counts[0] += 1
                counts[1] += duration
                counts[2] += 1
    return out


# --- properties ------------------------------------------------------------------------------


@CHECK
@given(requests(), st.sampled_from(LIMITS))
def test_canonical_requests_split_alike_without_protobuf(
    request: ExportTraceServiceRequest, limits: tuple[int, SpanLimitsConfig | None]
) -> None:
    wire = assert_same(request.SerializeToString(), limits)
    # Not vacuous: what protobuf wrote, the walker takes as it is.
    assert wire.protobuf_requests == 0
    assert wire.reencoded_spans == 0


@CHECK
@given(requests(), st.randoms(use_true_random=False), st.sampled_from(LIMITS))
def test_other_encodings_split_alike(
    request: ExportTraceServiceRequest, rnd: random.Random, limits: tuple[int, SpanLimitsConfig | None]
) -> None:
    assert_same(rewrite(request, rnd), limits)


@CHECK
@given(requests(), st.randoms(use_true_random=False), st.booleans())
def test_damaged_requests_refused_or_split_alike(
    request: ExportTraceServiceRequest, rnd: random.Random, rewritten: bool
) -> None:
    data = rewrite(request, rnd) if rewritten else request.SerializeToString()
    assert_same(damage(data, rnd))


@CHECK
@given(st.binary(max_size=64))
def test_arbitrary_bytes_refused_or_split_alike(data: bytes) -> None:
    assert_same(data)


# --- cases worth naming ----------------------------------------------------------------------

TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def _span(**fields: Any) -> Span:
    base: dict[str, Any] = {
        "trace_id": TRACE_ID,
        "span_id": b"\x01" * 8,
        "name": "GET /",
        "start_time_unix_nano": 5,
        "end_time_unix_nano": 9,
    }
    return Span(**(base | fields))


def _request(*spans: Span, service: str = "cart") -> ExportTraceServiceRequest:
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=list(spans))])]
    )


def _wrap_span(span_bytes: bytes, service: str = "cart") -> bytes:
    """A request whose single span is `span_bytes`, exactly as given."""
    resource = _request().resource_spans[0].resource.SerializeToString()
    scope_spans = frame(b"\x12", span_bytes)
    return frame(b"\x0a", frame(b"\x0a", resource) + frame(b"\x12", scope_spans))


def test_explicit_defaults_are_re_encoded_span_by_span() -> None:
    canonical = _span().SerializeToString()
    with_defaults = canonical + b"\x30\x00" + b"\x50\x00"  # kind = 0, dropped_attributes_count = 0
    wire = assert_same(_wrap_span(with_defaults))
    assert wire.reencoded_spans == 1 and wire.protobuf_requests == 0


def test_attribute_key_with_a_padded_length_is_still_found() -> None:
    """The exact lookup needs `0A <minimal length> key`; a padded length must not hide the key."""
    attribute = KeyValue(key="http.route", value=AnyValue(string_value="/a")).SerializeToString()
    padded = b"\x0a\x8a\x00" + attribute[2:]  # length 10 written in two bytes
    span = _span().SerializeToString() + frame(b"\x4a", padded)
    data = _wrap_span(span)
    assert_same(data)
    trace = WireSplitter().split(data).traces[TRACE_ID]
    assert [value for value in AttributeIndex(trace).values("http.route")] == ["/a"]


def test_invalid_utf8_is_refused_with_the_protobuf_message() -> None:
    data = _wrap_span(_span().SerializeToString() + b"\x2a\x02\xc3\x28")  # name: bad UTF-8
    with pytest.raises(BadRequest, match="bad UTF-8"):
        WireSplitter().split(data)
    assert_same(data)


def test_groups_and_deep_nesting_go_the_protobuf_way() -> None:
    group = b"\xa3\x01\x08\x01\xa4\x01"  # field 20 as a group, unknown
    wire = assert_same(_request(_span()).SerializeToString() + group)
    assert wire.protobuf_requests == 1
    value = AnyValue(string_value="leaf")
    for _ in range(40):
        value = AnyValue(array_value=ArrayValue(values=[value]))
    deep = _request(_span(attributes=[KeyValue(key="deep", value=value)])).SerializeToString()
    wire = assert_same(deep)
    assert wire.protobuf_requests == 1


def test_resource_after_its_scope_spans() -> None:
    request = _request(_span())
    resource_spans = request.resource_spans[0]
    body = frame(b"\x12", resource_spans.scope_spans[0].SerializeToString()) + frame(
        b"\x0a", resource_spans.resource.SerializeToString()
    )
    fields = SpanFields()
    data = frame(b"\x0a", body)
    assert_same(data)
    WireSplitter().split(data, fields)
    assert field_rows(fields) == {("cart", "GET /", 0, 0): [1, 4, 1]}


def test_span_fields_of_accepted_spans_only() -> None:
    error = _span(span_id=b"\x02" * 8, kind=Span.SPAN_KIND_SERVER, status=Status(code=Status.STATUS_CODE_ERROR))
    bad = _span(span_id=bytes(8))
    fields = SpanFields()
    batch = WireSplitter().split(_request(_span(), error, bad).SerializeToString(), fields)
    assert batch.rejected_spans == 1
    assert field_rows(fields) == {("cart", "GET /", 0, 0): [1, 4, 1], ("cart", "GET /", 2, 2): [1, 4, 1]}
    assert batch.traces[TRACE_ID].error_seen


def test_limits_apply_as_on_the_protobuf_path() -> None:
    attributes = [KeyValue(key=f"k{i}", value=AnyValue(string_value="v" * 10)) for i in range(4)]
    data = _request(*(_span(span_id=bytes([i + 1]) * 8, attributes=attributes) for i in range(5))).SerializeToString()
    limits = (3, SpanLimitsConfig(attribute_count_limit=2, attribute_value_length_limit=4))
    wire = assert_same(data, limits)
    batch = wire.split(data)
    assert (batch.span_count, batch.over_limit_spans, batch.dropped_attributes, batch.truncated_values) == (3, 2, 6, 6)


def test_the_walker_runs_as_built_for_this_run() -> None:
    """.ci/run tests both builds and says which one each run is (TAIL_SAMPLER_BUILD): the plain
    run must not be compiled, the compiled one must be."""
    build = os.environ.get("TAIL_SAMPLER_BUILD")
    if build not in ("plain", "compiled"):
        unavailable("the build under test", "TAIL_SAMPLER_BUILD (plain or compiled) is not set; .ci/run sets it")
    assert wire_split.COMPILED is (build == "compiled")
