"""The OTLP/JSON mapping: hex IDs, integer enums, lowerCamelCase, readable errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.codecs.otlp_json import request_from_json, request_to_dict, request_to_json
from tests.support import make_request, make_span

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
PARENT_ID = bytes.fromhex("eee19b7ec3c1b173")
LINK_TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
LINK_SPAN_ID = bytes.fromhex("b7ad6b7169203331")


def _request() -> ExportTraceServiceRequest:
    span = make_span(TRACE_ID, SPAN_ID, parent=PARENT_ID, error=True, attributes={"http.route": "/a", "n": 3})
    span.kind = Span.SPAN_KIND_CLIENT
    span.links.add(trace_id=LINK_TRACE_ID, span_id=LINK_SPAN_ID)
    request = make_request([span, make_span(TRACE_ID, bytes.fromhex("0102030405060708"))], service="checkout")
    request.resource_spans[0].schema_url = "https://opentelemetry.io/schemas/1.21.0"
    return request


def _only_span(document: dict[str, Any]) -> dict[str, Any]:
    return document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]


def test_round_trip_preserves_the_request() -> None:
    request = _request()
    assert request_from_json(request_to_json(request)) == request
    assert request_from_json(request_to_json(request).encode()) == request


def test_json_has_hex_ids_integer_enums_and_camel_case() -> None:
    text = request_to_json(_request())
    assert "\n" not in text  # one line, as the file exporter writes it
    document = json.loads(text)
    assert set(document) == {"resourceSpans"}
    assert document["resourceSpans"][0]["schemaUrl"] == "https://opentelemetry.io/schemas/1.21.0"
    span = _only_span(document)
    assert span["traceId"] == "5b8efff798038103d269b633813fc60c"
    assert span["spanId"] == "eee19b7ec3c1b174"
    assert span["parentSpanId"] == "eee19b7ec3c1b173"
    assert span["links"] == [{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331"}]
    assert span["kind"] == 3
    assert span["status"] == {"code": 2}
    assert "startTimeUnixNano" in span and "endTimeUnixNano" in span
    assert not any("_" in key for key in span)
    assert "parentSpanId" not in _only_span(json.loads(request_to_json(make_request([make_span(TRACE_ID)]))))


def test_request_to_dict_matches_the_json_text() -> None:
    request = _request()
    assert request_to_dict(request) == json.loads(request_to_json(request))


@settings(max_examples=100, deadline=None)
@given(
    trace_id=st.binary(min_size=16, max_size=16),
    span_id=st.binary(min_size=8, max_size=8),
    parent=st.one_of(st.just(b""), st.binary(min_size=8, max_size=8)),
    name=st.text(max_size=20),
    kind=st.integers(min_value=0, max_value=5),
)
def test_round_trip_property(trace_id: bytes, span_id: bytes, parent: bytes, name: str, kind: int) -> None:
    span = Span(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, kind=kind)
    request = make_request([span])
    document = json.loads(request_to_json(request))
    if trace_id.strip(b"\x00"):
        assert _only_span(document)["traceId"] == trace_id.hex()
    assert request_from_json(request_to_json(request)) == request


def test_accepts_snake_case_and_string_enums() -> None:
    body = {
        "resource_spans": [
            {
                "scope_spans": [
                    {
                        "spans": [
                            {
                                "trace_id": TRACE_ID.hex(),
                                "span_id": SPAN_ID.hex(),
                                "parent_span_id": PARENT_ID.hex(),
                                "kind": "SPAN_KIND_SERVER",
                            }
                        ]
                    }
                ]
            }
        ]
    }
    span = request_from_json(json.dumps(body)).resource_spans[0].scope_spans[0].spans[0]
    assert (span.trace_id, span.span_id, span.parent_span_id) == (TRACE_ID, SPAN_ID, PARENT_ID)
    assert span.kind == Span.SPAN_KIND_SERVER


def test_uppercase_hex_is_accepted() -> None:
    body = _span_body(traceId=TRACE_ID.hex().upper(), spanId="EEE19B7EC3C1B174")
    span = request_from_json(body).resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == TRACE_ID
    assert span.span_id == SPAN_ID


def test_unknown_fields_are_ignored() -> None:
    body = {
        "resourceSpans": [
            {
                "futureField": {"x": 1},
                "scopeSpans": [{"spans": [{"traceId": TRACE_ID.hex(), "spanId": SPAN_ID.hex(), "newThing": [1, 2]}]}],
            }
        ],
        "extension": True,
    }
    request = request_from_json(json.dumps(body))
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == TRACE_ID
    assert span.span_id == SPAN_ID


def test_empty_object_is_an_empty_request() -> None:
    assert request_from_json(b"{}") == ExportTraceServiceRequest()


def _span_body(**fields: Any) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [fields]}]}]}).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_span_body(traceId="zz"), "traceId 'zz' is not a hex string"),
        (_span_body(traceId="abc"), "traceId 'abc' is not a hex string"),
        (_span_body(spanId="not-hex"), "spanId 'not-hex' is not a hex string"),
        (_span_body(parentSpanId=12), "parentSpanId must be a hex string"),
        (_span_body(traceId=TRACE_ID.hex(), links=[{"spanId": "xyz"}]), "spanId 'xyz' is not a hex string"),
        (b"[]", "the request must be a JSON object"),
        (b'"resourceSpans"', "the request must be a JSON object"),
        (b"null", "the request must be a JSON object"),
        (b'{"resourceSpans": {}}', "resourceSpans must be an array"),
        (b'{"resourceSpans": [1]}', "resourceSpans entries must be objects"),
        (b'{"resourceSpans": [{"scopeSpans": "x"}]}', "scopeSpans must be an array"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [null]}]}]}', "spans entries must be objects"),
        (b"{", "invalid JSON: "),
        (b'{"resourceSpans": [}', "invalid JSON: "),
        (b"\xff\xfe{}", "invalid JSON: "),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON"),
    ],
)
def test_bad_input_raises_value_error_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        request_from_json(data)
    assert message in str(caught.value)


def test_long_bad_ids_are_truncated_in_the_message() -> None:
    with pytest.raises(ValueError) as caught:
        request_from_json(_span_body(traceId="g" * 10_000))
    assert len(str(caught.value)) < 200


def test_wrong_field_types_raise_value_error() -> None:
    with pytest.raises(ValueError) as caught:
        request_from_json(_span_body(traceId=TRACE_ID.hex(), startTimeUnixNano="yesterday"))
    assert "startTimeUnixNano" in str(caught.value) or "start_time_unix_nano" in str(caught.value)
