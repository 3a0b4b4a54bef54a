"""Protobuf framing: varints, cutting runs of framed fields, and re-assembling requests."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from sampler.receive.split import RequestSplitter
from sampler.spans import framing as wire
from sampler.spans.trace import ScopeKey

MAX_UINT64 = (1 << 64) - 1

# --- varints -------------------------------------------------------------------


def test_varint_known_encodings() -> None:
    # Values from the protobuf encoding guide.
    assert wire.encode_varint(0) == b"\x00"
    assert wire.encode_varint(1) == b"\x01"
    assert wire.encode_varint(127) == b"\x7f"
    assert wire.encode_varint(128) == b"\x80\x01"
    assert wire.encode_varint(150) == b"\x96\x01"
    assert wire.encode_varint(300) == b"\xac\x02"
    assert wire.encode_varint(MAX_UINT64) == b"\xff" * 9 + b"\x01"


@settings(max_examples=200, deadline=None)
@given(value=st.integers(min_value=0, max_value=MAX_UINT64), prefix=st.binary(max_size=8), suffix=st.binary(max_size=8))
def test_varint_round_trip(value: int, prefix: bytes, suffix: bytes) -> None:
    encoded = wire.encode_varint(value)
    assert wire.decode_varint(prefix + encoded + suffix, len(prefix)) == (value, len(prefix) + len(encoded))
    # Every byte but the last has the continuation bit, and the encoding is minimal.
    assert all(byte & 0x80 for byte in encoded[:-1])
    assert encoded[-1] & 0x80 == 0
    assert len(encoded) == max(1, -(-value.bit_length() // 7))


@given(value=st.one_of(st.integers(min_value=0, max_value=1 << 15), st.sampled_from([16383, 16384, 1 << 21])))
@settings(max_examples=200, deadline=None)
def test_varint_table_agrees_with_encoder(value: int) -> None:
    assert wire.varint(value) == wire.encode_varint(value)


def test_frame_prefixes_tag_and_length() -> None:
    payload = b"x" * 200
    assert wire.frame(b"\x12", payload) == b"\x12\xc8\x01" + payload
    assert wire.frame(b"\x0a", b"") == b"\x0a\x00"


# --- runs of framed fields -------------------------------------------------------


def _framed(payloads: list[bytes]) -> bytes:
    return b"".join(wire.frame(wire.TAG_SCOPE_SPAN, payload) for payload in payloads)


def _fields(run: bytes) -> list[bytes]:
    """The payloads of a run of framed fields, parsed independently of split_framed/count_fields."""
    fields = []
    pos = 0
    while pos < len(run):
        assert run[pos : pos + 1] == wire.TAG_SCOPE_SPAN
        length, body = wire.decode_varint(run, pos + 1)
        assert body + length <= len(run), "a field runs past the end of its chunk"
        fields.append(run[body : body + length])
        pos = body + length
    return fields


payload_lists = st.lists(
    st.one_of(st.binary(max_size=300), st.integers(min_value=0, max_value=20_000).map(lambda n: b"s" * n)),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(payloads=payload_lists, max_chunk=st.integers(min_value=1, max_value=5_000))
def test_split_framed_never_cuts_a_field_and_respects_max_chunk(payloads: list[bytes], max_chunk: int) -> None:
    data = _framed(payloads)
    chunks = wire.split_framed(bytearray(data), max_chunk)

    assert b"".join(chunks) == data
    assert all(chunks), "no empty chunk"
    per_chunk = [_fields(chunk) for chunk in chunks]
    assert [field for fields in per_chunk for field in fields] == payloads
    for chunk, fields in zip(chunks, per_chunk, strict=True):
        assert len(chunk) <= max_chunk or len(fields) == 1, "only a single larger field may exceed max_chunk"
    # Greedy: a chunk is cut only when the next field would not have fitted.
    for chunk, following in zip(chunks, chunks[1:], strict=False):
        first_of_next = wire.frame(wire.TAG_SCOPE_SPAN, _fields(following)[0])
        assert len(chunk) + len(first_of_next) > max_chunk


def test_split_framed_edge_cases() -> None:
    assert wire.split_framed(b"", 10) == []
    big = wire.frame(wire.TAG_SCOPE_SPAN, b"b" * 100)
    small = wire.frame(wire.TAG_SCOPE_SPAN, b"s")
    # A field larger than max_chunk stays whole, alone in its chunk.
    assert wire.split_framed(small + big + small, 10) == [small, big, small]
    assert wire.split_framed(small * 4, len(small) * 2) == [small * 2, small * 2]
    assert wire.split_framed(small * 4, 10_000) == [small * 4]


@settings(max_examples=100, deadline=None)
@given(payloads=payload_lists)
def test_count_fields(payloads: list[bytes]) -> None:
    assert wire.count_fields(_framed(payloads)) == len(payloads)
    assert wire.count_fields(bytearray(_framed(payloads))) == len(payloads)


def test_prefixes_omit_empty_fields() -> None:
    assert wire.resource_prefix(b"", "") == b""
    assert wire.scope_prefix(b"", "") == b""
    resource = Resource(attributes=[KeyValue(key="k", value=AnyValue(string_value="v"))])
    prefix = wire.resource_prefix(resource.SerializeToString(), "https://schema/1")
    parsed = ResourceSpans.FromString(prefix)
    assert parsed.resource == resource
    assert parsed.schema_url == "https://schema/1"
    assert not parsed.scope_spans
    scope = InstrumentationScope(name="lib", version="1.2")
    parsed_scope = ScopeSpans.FromString(wire.scope_prefix(scope.SerializeToString(), "s"))
    assert parsed_scope.scope == scope
    assert parsed_scope.schema_url == "s"


# --- split into traces, then re-encode: nothing lost, nothing moved ----------------------

_TRACE_IDS = [bytes([n]) * 16 for n in range(1, 6)]
_text = st.text(alphabet="abcdefgh.-_ ", max_size=12)
_attributes = st.lists(
    st.builds(
        lambda key, value: (
            KeyValue(key=key, value=AnyValue(string_value=value))
            if isinstance(value, str)
            else KeyValue(key=key, value=AnyValue(int_value=value))
        ),
        _text,
        st.one_of(_text, st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    ),
    max_size=3,
)


@st.composite
def _spans(draw: st.DrawFn) -> Span:
    start = draw(st.integers(min_value=0, max_value=2**40))
    return Span(
        trace_id=draw(st.sampled_from(_TRACE_IDS)),
        span_id=draw(st.binary(min_size=8, max_size=8).filter(any)),
        parent_span_id=draw(st.one_of(st.just(b""), st.binary(min_size=8, max_size=8))),
        name=draw(_text),
        kind=draw(st.integers(min_value=0, max_value=5)),
        start_time_unix_nano=start,
        end_time_unix_nano=start + draw(st.integers(min_value=0, max_value=10**9)),
        attributes=draw(_attributes),
    )


@st.composite
def _requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        resource_spans = request.resource_spans.add()
        if draw(st.booleans()):
            resource_spans.resource.attributes.extend(draw(_attributes))
        resource_spans.schema_url = draw(st.sampled_from(["", "https://opentelemetry.io/schemas/1.21.0"]))
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            scope_spans = resource_spans.scope_spans.add()
            if draw(st.booleans()):
                scope_spans.scope.name = draw(_text)
                scope_spans.scope.version = draw(st.sampled_from(["", "1.0"]))
            scope_spans.schema_url = draw(st.sampled_from(["", "scope-schema"]))
            scope_spans.spans.extend(draw(st.lists(_spans(), max_size=6)))
    return request


Triple = tuple[bytes, str, bytes, str, bytes]


def _triples(request: ExportTraceServiceRequest) -> Counter[Triple]:
    """The multiset of (resource, resource schema, scope, scope schema, span) of a request."""
    seen: Counter[Triple] = Counter()
    for resource_spans in request.resource_spans:
        resource = resource_spans.resource.SerializeToString(deterministic=True)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.SerializeToString(deterministic=True)
            for span in scope_spans.spans:
                seen[
                    (
                        resource,
                        resource_spans.schema_url,
                        scope,
                        scope_spans.schema_url,
                        span.SerializeToString(deterministic=True),
                    )
                ] += 1
    return seen


@settings(max_examples=100, deadline=None)
@given(request=_requests(), merge=st.booleans())
def test_split_then_encode_keeps_every_span_under_its_resource_and_scope(
    request: ExportTraceServiceRequest, merge: bool
) -> None:
    batch = RequestSplitter().split(ExportTraceServiceRequest.FromString(request.SerializeToString()))
    assert batch.rejected_spans == 0
    assert batch.span_count == sum(trace.span_count for trace in batch.traces.values())

    groups: list[tuple[ScopeKey, bytearray]] = [
        (key, spans) for trace in batch.traces.values() for key, spans in trace.groups.items()
    ]
    if merge:
        # One request holding every trace, grouped per resource then scope, as the batcher does.
        resources: dict[bytes, dict[bytes, bytearray]] = {}
        for (resource, scope), spans in groups:
            resources.setdefault(resource, {}).setdefault(scope, bytearray()).extend(spans)
        encoded = [wire.encode_request((resource, scopes.items()) for resource, scopes in resources.items())]
    else:
        # One request per (trace, resource, scope) group.
        encoded = [wire.encode_request([(resource, [(scope, spans)])]) for (resource, scope), spans in groups]

    out: Counter[Triple] = Counter()
    for data in encoded:
        out += _triples(ExportTraceServiceRequest.FromString(data))
    assert out == _triples(request)


def test_add_scope_attributes_appends_to_the_scope_and_keeps_the_schema_url() -> None:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

    from sampler.spans.framing import add_scope_attributes, frame, scope_prefix

    scope = InstrumentationScope(name="lib", version="1", attributes=[KeyValue(key="a", value=AnyValue(int_value=1))])
    extra = frame(b"\x1a", KeyValue(key="b", value=AnyValue(string_value="x")).SerializeToString())
    for original in (scope, None):
        prefix = scope_prefix(original.SerializeToString() if original else b"", "https://schema/1")
        parsed = ScopeSpans.FromString(add_scope_attributes(prefix, extra))
        keys = [attribute.key for attribute in parsed.scope.attributes]
        assert keys == (["a", "b"] if original else ["b"])
        assert parsed.schema_url == "https://schema/1"
        if original:
            assert parsed.scope.name == "lib" and parsed.scope.version == "1"
