"""sampler.codecs.zipkin: Zipkin v2 spans to and from OTLP, field by field and round trip."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from sampler.codecs.zipkin import from_otlp, proto, to_otlp
from sampler.config import ConfigError, parse_config
from sampler.receive.split import RequestSplitter
from tests.support import kv, make_request

TRACE_128 = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
TRACE_64 = bytes(8) + bytes.fromhex("a3ce929d0e0e4736")
SPAN = bytes.fromhex("00f067aa0ba902b7")
PARENT = bytes.fromhex("53995c3f42cd8ad8")
START_NS = 1_700_000_000_123_456_000
END_NS = START_NS + 2_500_000


def otlp_span(**fields: Any) -> Span:
    base: dict[str, Any] = {
        "trace_id": TRACE_128,
        "span_id": SPAN,
        "parent_span_id": PARENT,
        "name": "GET /users",
        "kind": Span.SPAN_KIND_SERVER,
        "start_time_unix_nano": START_NS,
        "end_time_unix_nano": END_NS,
    }
    base.update(fields)
    return Span(**base)


def to_zipkin(span: Span, service: str = "users", scope: str = "test", version: str = "", **resource: Any) -> dict:
    request = make_request([span], service=service, scope=scope, resource_attributes=resource)
    request.resource_spans[0].scope_spans[0].scope.version = version
    (converted,) = from_otlp.request_to_zipkin(request)
    # What leaves is JSON: the dict must survive it unchanged.
    assert json.loads(json.dumps(converted)) == converted
    return converted


def from_zipkin(span: dict, parse_string_tags: bool = False) -> tuple[ExportTraceServiceRequest, Span]:
    request = to_otlp.parse_json(json.dumps([span]).encode(), parse_string_tags)
    return request, request.resource_spans[0].scope_spans[0].spans[0]


def attributes(span: Span) -> dict[str, Any]:
    return {item.key: from_otlp.plain_value(item.value) for item in span.attributes}


# --- OTLP -> Zipkin ------------------------------------------------------------


def test_core_fields_ids_and_times():
    converted = to_zipkin(otlp_span())
    assert converted == {
        "traceId": TRACE_128.hex(),
        "id": SPAN.hex(),
        "parentId": PARENT.hex(),
        "kind": "SERVER",
        "name": "GET /users",
        "timestamp": START_NS // 1000,
        "duration": 2500,
        "localEndpoint": {"serviceName": "users"},
        "tags": {"otel.scope.name": "test", "otel.library.name": "test"},
    }


def test_a_64_bit_trace_id_leaves_as_16_digits_and_a_root_has_no_parent():
    converted = to_zipkin(otlp_span(trace_id=TRACE_64, parent_span_id=b""))
    assert converted["traceId"] == "a3ce929d0e0e4736"
    assert "parentId" not in converted


@pytest.mark.parametrize(
    ("start", "end", "timestamp", "duration"),
    [
        (1_000_001_999, 1_000_003_233, 1_000_001, 1),  # 1234 ns: 1 µs, truncated as the specification says
        (1_000_000_000, 1_000_000_400, 1_000_000, 1),  # a positive duration under 1 µs keeps the field
        (1_000_000_000, 1_000_000_000, 1_000_000, None),  # zero: absent, as Zipkin reads 0
        (0, 5_000, None, 5),  # no start (a Zipkin span without timestamp)
    ],
)
def test_times_are_whole_microseconds(start, end, timestamp, duration):
    converted = to_zipkin(otlp_span(start_time_unix_nano=start, end_time_unix_nano=end))
    assert converted.get("timestamp") == timestamp
    assert converted.get("duration") == duration


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (Span.SPAN_KIND_CLIENT, "CLIENT"),
        (Span.SPAN_KIND_SERVER, "SERVER"),
        (Span.SPAN_KIND_PRODUCER, "PRODUCER"),
        (Span.SPAN_KIND_CONSUMER, "CONSUMER"),
        (Span.SPAN_KIND_INTERNAL, None),
        (Span.SPAN_KIND_UNSPECIFIED, None),
    ],
)
def test_span_kinds(kind, expected):
    assert to_zipkin(otlp_span(kind=kind)).get("kind") == expected


def test_error_status_sets_otel_status_code_and_the_error_tag():
    span = otlp_span(status=Status(code=Status.STATUS_CODE_ERROR, message="connection refused"))
    tags = to_zipkin(span)["tags"]
    assert tags["otel.status_code"] == "ERROR"
    assert tags["error"] == "connection refused"
    assert "otel.status_description" not in tags


def test_error_status_without_message_sets_an_empty_error_tag():
    tags = to_zipkin(otlp_span(status=Status(code=Status.STATUS_CODE_ERROR)))["tags"]
    assert tags["error"] == "" and tags["otel.status_code"] == "ERROR"


@pytest.mark.parametrize("code", [Status.STATUS_CODE_OK, Status.STATUS_CODE_UNSET])
def test_an_error_attribute_is_dropped_unless_the_status_is_error(code):
    span = otlp_span(status=Status(code=code), attributes=[kv("error", False), kv("keep", "me")])
    tags = to_zipkin(span)["tags"]
    assert "error" not in tags
    assert tags["keep"] == "me"
    assert tags.get("otel.status_code") == ("OK" if code == Status.STATUS_CODE_OK else None)


def test_attribute_values_become_strings():
    array = AnyValue()
    array.array_value.values.extend([AnyValue(string_value="a"), AnyValue(int_value=2), AnyValue(bool_value=True)])
    span = otlp_span(
        attributes=[
            kv("s", "text"),
            kv("b", True),
            kv("i", -42),
            kv("d", 1.5),
            KeyValue(key="arr", value=array),
            KeyValue(key="bytes", value=AnyValue(bytes_value=b"\x00\x01")),
        ]
    )
    tags = to_zipkin(span)["tags"]
    assert tags["s"] == "text"
    assert tags["b"] == "true"
    assert tags["i"] == "-42"
    assert tags["d"] == "1.5"
    assert tags["arr"] == '["a",2,true]'
    assert tags["bytes"] == "AAE="


def test_resource_and_scope_become_tags_and_the_service_the_local_endpoint():
    request = make_request([otlp_span(attributes=[kv("shared", "span")])], service="checkout", scope="io.lib")
    resource_spans = request.resource_spans[0]
    resource_spans.resource.attributes.extend([kv("host.name", "node-1"), kv("shared", "resource")])
    scope = resource_spans.scope_spans[0].scope
    scope.version = "1.2.3"
    scope.attributes.append(kv("tailsampling.policy", "errors"))
    (converted,) = from_otlp.request_to_zipkin(request)
    assert converted["localEndpoint"] == {"serviceName": "checkout"}
    assert converted["tags"] == {
        "host.name": "node-1",
        "shared": "span",  # the span's attribute wins
        "tailsampling.policy": "errors",
        "otel.scope.name": "io.lib",
        "otel.library.name": "io.lib",
        "otel.scope.version": "1.2.3",
        "otel.library.version": "1.2.3",
    }


def test_a_missing_service_name_takes_the_default():
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.append(otlp_span())
    assert from_otlp.request_to_zipkin(request)[0]["localEndpoint"] == {"serviceName": "unknown_service"}
    assert from_otlp.request_to_zipkin(request, "fallback")[0]["localEndpoint"] == {"serviceName": "fallback"}


def test_events_become_annotations():
    with_attributes = Span.Event(time_unix_nano=START_NS + 1_500, name="exception")
    with_attributes.attributes.extend([kv("exception.type", "IOError"), kv("retry", 2)])
    span = otlp_span(events=[Span.Event(time_unix_nano=START_NS + 999, name="cache miss"), with_attributes])
    assert to_zipkin(span)["annotations"] == [
        {"timestamp": START_NS // 1000, "value": "cache miss"},
        {"timestamp": START_NS // 1000 + 1, "value": '"exception":{"exception.type":"IOError","retry":2}'},
    ]


def test_peer_attributes_become_the_remote_endpoint():
    span = otlp_span(
        kind=Span.SPAN_KIND_CLIENT,
        attributes=[
            kv("peer.service", "billing"),
            kv("network.peer.address", "10.1.2.3"),
            kv("network.peer.port", 8443),
        ],
    )
    converted = to_zipkin(span)
    assert converted["remoteEndpoint"] == {"serviceName": "billing", "ipv4": "10.1.2.3", "port": 8443}
    assert not {"peer.service", "network.peer.address", "network.peer.port"} & set(converted["tags"])


def test_a_client_without_peer_service_names_the_remote_by_the_specification_ranking():
    span = otlp_span(
        kind=Span.SPAN_KIND_CLIENT,
        attributes=[kv("db.name", "orders"), kv("server.address", "db.internal"), kv("network.peer.address", "::1")],
    )
    converted = to_zipkin(span)
    assert converted["remoteEndpoint"] == {"serviceName": "db.internal", "ipv6": "::1"}
    assert converted["tags"]["server.address"] == "db.internal"  # not inverted on the way back, so kept


def test_a_server_span_names_no_remote_service_from_the_ranking():
    span = otlp_span(kind=Span.SPAN_KIND_SERVER, attributes=[kv("server.address", "me.example")])
    assert "remoteEndpoint" not in to_zipkin(span)


def test_a_peer_address_that_is_not_an_ip_stays_a_tag():
    span = otlp_span(attributes=[kv("network.peer.address", "/run/app.sock")])
    converted = to_zipkin(span)
    assert "remoteEndpoint" not in converted
    assert converted["tags"]["network.peer.address"] == "/run/app.sock"


def test_local_address_fills_the_local_endpoint():
    span = otlp_span(attributes=[kv("network.local.address", "192.168.0.7"), kv("network.local.port", 8080)])
    assert to_zipkin(span)["localEndpoint"] == {"serviceName": "users", "ipv4": "192.168.0.7", "port": 8080}


def test_dropped_counts_trace_state_links_and_flags():
    link = Span.Link(trace_id=TRACE_128, span_id=PARENT, trace_state="k=v")
    link.attributes.append(kv("why", "batch"))
    span = otlp_span(
        dropped_attributes_count=3,
        dropped_events_count=0,
        dropped_links_count=1,
        trace_state="ot=th:8",
        links=[link],
        attributes=[kv("zipkin.shared", True), kv("zipkin.debug", True)],
    )
    converted = to_zipkin(span)
    assert converted["shared"] is True and converted["debug"] is True
    tags = converted["tags"]
    assert tags["otel.dropped_attributes_count"] == "3"
    assert "otel.dropped_events_count" not in tags
    assert tags["otel.dropped_links_count"] == "1"
    assert tags["w3c.tracestate"] == "ot=th:8"
    assert tags["otlp.link.0"] == f'{TRACE_128.hex()}|{PARENT.hex()}|k=v|{{"why":"batch"}}|0'
    assert "zipkin.shared" not in tags and "zipkin.debug" not in tags


# --- Zipkin -> OTLP ------------------------------------------------------------

ZIPKIN_SPAN = {
    "traceId": TRACE_128.hex(),
    "id": SPAN.hex(),
    "parentId": PARENT.hex(),
    "name": "get /users",
    "kind": "SERVER",
    "timestamp": 1_700_000_000_123_456,
    "duration": 2500,
    "localEndpoint": {"serviceName": "users", "ipv4": "10.0.0.5", "port": 8080},
    "remoteEndpoint": {"serviceName": "web", "ipv6": "2001:db8::1", "port": 51000},
    "annotations": [{"timestamp": 1_700_000_000_123_500, "value": "wr"}],
    "tags": {"http.method": "GET", "otel.scope.name": "brave", "otel.scope.version": "6.0"},
}


def test_zipkin_fields_map_to_otlp():
    request, span = from_zipkin(ZIPKIN_SPAN)
    resource_spans = request.resource_spans[0]
    assert list(resource_spans.resource.attributes) == [kv("service.name", "users")]
    scope = resource_spans.scope_spans[0].scope
    assert (scope.name, scope.version) == ("brave", "6.0")
    assert span.trace_id == TRACE_128 and span.span_id == SPAN and span.parent_span_id == PARENT
    assert span.kind == Span.SPAN_KIND_SERVER
    assert span.start_time_unix_nano == 1_700_000_000_123_456_000
    assert span.end_time_unix_nano == 1_700_000_000_123_456_000 + 2_500_000
    assert [(e.name, e.time_unix_nano) for e in span.events] == [("wr", 1_700_000_000_123_500_000)]
    assert span.status.code == Status.STATUS_CODE_UNSET
    assert attributes(span) == {
        "http.method": "GET",
        "network.local.address": "10.0.0.5",
        "network.local.port": 8080,
        "peer.service": "web",
        "network.peer.address": "2001:db8::1",
        "network.peer.port": 51000,
    }


def test_a_64_bit_trace_id_is_zero_padded_and_no_kind_means_internal():
    _, span = from_zipkin({"traceId": "a3ce929d0e0e4736", "id": "1", "name": "local"})
    assert span.trace_id == TRACE_64
    assert span.span_id == bytes(7) + b"\x01"
    assert span.kind == Span.SPAN_KIND_INTERNAL
    assert span.start_time_unix_nano == 0 and span.end_time_unix_nano == 0


@pytest.mark.parametrize(
    ("tags", "code", "message"),
    [
        ({"error": "timeout"}, Status.STATUS_CODE_ERROR, "timeout"),
        ({"error": "true"}, Status.STATUS_CODE_ERROR, ""),
        ({"error": ""}, Status.STATUS_CODE_ERROR, ""),
        ({"otel.status_code": "ERROR", "error": "boom"}, Status.STATUS_CODE_ERROR, "boom"),
        ({"otel.status_code": "ERROR", "otel.status_description": "why"}, Status.STATUS_CODE_ERROR, "why"),
        ({"otel.status_code": "OK"}, Status.STATUS_CODE_OK, ""),
        ({"error": "false"}, Status.STATUS_CODE_UNSET, ""),
        ({}, Status.STATUS_CODE_UNSET, ""),
    ],
)
def test_status_from_tags(tags, code, message):
    _, span = from_zipkin({**ZIPKIN_SPAN, "tags": tags})
    assert span.status.code == code
    assert span.status.message == message
    remaining = attributes(span)
    assert "otel.status_code" not in remaining and "otel.status_description" not in remaining
    assert ("error" in remaining) == (tags.get("error") == "false")


def test_explicit_tags_win_over_endpoint_fields():
    tags = {"peer.service": "from-tag", "network.peer.port": "1"}
    _, span = from_zipkin({**ZIPKIN_SPAN, "tags": tags})
    values = attributes(span)
    assert values["peer.service"] == "from-tag"
    assert values["network.peer.port"] == "1"
    assert [item.key for item in span.attributes].count("peer.service") == 1


def test_annotations_in_both_the_specification_and_the_collector_formats():
    annotations = [
        {"timestamp": 1, "value": '"exception":{"exception.type":"IOError","retry":2,"ok":false,"r":0.5}'},
        {"timestamp": 2, "value": 'retry|{"attempt":3}|1'},
        {"timestamp": 3, "value": '"quoted but not json'},
        {"timestamp": 4, "value": "a|b|c"},
    ]
    _, span = from_zipkin({**ZIPKIN_SPAN, "annotations": annotations})
    first, second, third, fourth = span.events
    assert first.name == "exception"
    assert {a.key: from_otlp.plain_value(a.value) for a in first.attributes} == {
        "exception.type": "IOError",
        "retry": 2,
        "ok": False,
        "r": 0.5,
    }
    assert (second.name, second.dropped_attributes_count) == ("retry", 1)
    assert list(second.attributes) == [kv("attempt", 3)]
    assert third.name == '"quoted but not json' and not third.attributes
    assert fourth.name == "a|b|c"


def test_flags_counts_trace_state_and_links_come_back():
    link = f'{TRACE_128.hex()}|{PARENT.hex()}|k=v|{{"why":"batch"}}|2'
    tags = {
        "otel.dropped_attributes_count": "3",
        "otel.dropped_events_count": "4",
        "otel.dropped_links_count": "not a number",
        "w3c.tracestate": "ot=th:8",
        "otlp.link.0": link,
        "otel.library.name": "legacy",
    }
    request, span = from_zipkin({**ZIPKIN_SPAN, "tags": tags, "shared": True, "debug": True})
    assert request.resource_spans[0].scope_spans[0].scope.name == "legacy"
    assert (span.dropped_attributes_count, span.dropped_events_count, span.dropped_links_count) == (3, 4, 0)
    assert span.trace_state == "ot=th:8"
    (parsed_link,) = span.links
    assert (parsed_link.trace_id, parsed_link.span_id, parsed_link.trace_state) == (TRACE_128, PARENT, "k=v")
    assert list(parsed_link.attributes) == [kv("why", "batch")] and parsed_link.dropped_attributes_count == 2
    values = attributes(span)
    assert values["zipkin.shared"] is True and values["zipkin.debug"] is True
    assert values["otel.dropped_links_count"] == "not a number"
    assert "otlp.link.0" not in values and "w3c.tracestate" not in values


def test_parse_string_tags_restores_types():
    tags = {"b": "true", "i": "-42", "d": "1.5", "e": "2e3", "s": "1.2.3", "under": "1_000", "word": "nan"}
    _, typed = from_zipkin({**ZIPKIN_SPAN, "tags": tags}, parse_string_tags=True)
    values = attributes(typed)
    assert (values["b"], values["i"], values["d"], values["e"]) == (True, -42, 1.5, 2000.0)
    assert (values["s"], values["under"], values["word"]) == ("1.2.3", "1_000", "nan")
    _, untyped = from_zipkin({**ZIPKIN_SPAN, "tags": tags})
    assert attributes(untyped)["i"] == "-42"


def test_spans_are_grouped_per_service_and_scope():
    spans = [
        {**ZIPKIN_SPAN, "id": "1"},
        {**ZIPKIN_SPAN, "id": "2", "localEndpoint": {"serviceName": "web"}},
        {**ZIPKIN_SPAN, "id": "3", "tags": {}},
        {**ZIPKIN_SPAN, "id": "4"},
        {"traceId": "1", "id": "5"},
    ]
    request = to_otlp.request_from_zipkin(spans)
    layout = [
        (
            [(a.key, a.value.string_value) for a in rs.resource.attributes],
            [(ss.scope.name, [s.span_id[-1] for s in ss.spans]) for ss in rs.scope_spans],
        )
        for rs in request.resource_spans
    ]
    assert layout == [
        ([("service.name", "users")], [("brave", [1, 4]), ("", [3])]),
        ([("service.name", "web")], [("brave", [2])]),
        ([], [("", [5])]),
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "invalid JSON"),
        (b'{"traceId": "1"}', "JSON array"),
        (b"[1]", "span 0: must be a JSON object"),
        (b'[{"id": "1"}]', "span 0: traceId is required"),
        (b'[{"traceId": "1", "id": "1"}, {"traceId": "xyz", "id": "1"}]', "span 1: traceId must be 1 to 32 hex"),
        (b'[{"traceId": "1", "id": "11111111111111111"}]', "span 0: id must be 1 to 16 hex"),
        (b'[{"traceId": "1", "id": "1", "kind": "LOCAL"}]', "kind must be one of CLIENT, SERVER"),
        (b'[{"traceId": "1", "id": "1", "timestamp": -5}]', "timestamp must be a whole number"),
        (b'[{"traceId": "1", "id": "1", "duration": "5"}]', "duration must be a whole number"),
        (b'[{"traceId": "1", "id": "1", "tags": {"a": ["x"]}}]', "tag 'a' must be a string"),
        (b'[{"traceId": "1", "id": "1", "annotations": {}}]', "annotations must be an array"),
        (b'[{"traceId": "1", "id": "1", "localEndpoint": {"port": "80"}}]', "localEndpoint.port must be a port"),
        (b'[{"traceId": "1", "id": "1", "remoteEndpoint": {"ipv4": 1}}]', "remoteEndpoint.ipv4 must be a string"),
    ],
)
def test_malformed_bodies_are_refused_with_the_reason(body, reason):
    with pytest.raises(ValueError, match=reason):
        to_otlp.parse_json(body)


def test_zipkin_requests_split_into_the_same_batches_as_otlp():
    """The converted request goes through the OTLP splitter: per trace, root and error seen."""
    spans = [
        {
            "traceId": "1",
            "id": "a",
            "name": "root",
            "timestamp": 10,
            "duration": 5,
            "localEndpoint": {"serviceName": "s"},
        },
        {"traceId": "1", "id": "b", "parentId": "a", "tags": {"error": "x"}, "timestamp": 11, "duration": 1},
        {"traceId": "2", "id": "c", "parentId": "a"},
        {"traceId": "0", "id": "d"},  # all-zero trace ID: refused like an OTLP one
    ]
    batch = RequestSplitter().split(to_otlp.request_from_zipkin(spans))
    one = batch.traces[bytes(15) + b"\x01"]
    two = batch.traces[bytes(15) + b"\x02"]
    assert (one.span_count, one.root_seen, one.error_seen) == (2, True, True)
    assert (one.start_min, one.end_max) == (10_000, 15_000)
    assert (two.span_count, two.root_seen, two.error_seen) == (1, False, False)
    assert batch.rejected_spans == 1


# --- round trips ---------------------------------------------------------------


def _sorted_attributes(request: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    """Tags are a map: attribute order is not kept, so compare attributes sorted by key."""
    request = copy.deepcopy(request)
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                ordered = sorted(span.attributes, key=lambda item: item.key)
                del span.attributes[:]
                span.attributes.extend(ordered)
    return request


def test_round_trip_otlp_to_zipkin_and_back():
    event = Span.Event(time_unix_nano=START_NS + 7_000, name="exception")
    event.attributes.extend([kv("exception.message", "boom"), kv("count", 2)])
    link = Span.Link(trace_id=TRACE_64, span_id=PARENT, trace_state="a=b", dropped_attributes_count=1)
    link.attributes.append(kv("kind", "follows"))
    spans = [
        otlp_span(
            kind=Span.SPAN_KIND_CLIENT,
            status=Status(code=Status.STATUS_CODE_ERROR, message="refused"),
            attributes=[
                kv("peer.service", "billing"),
                kv("network.peer.address", "10.1.2.3"),
                kv("network.peer.port", 8443),
                kv("network.local.address", "::1"),
                kv("network.local.port", 40000),
                kv("http.method", "POST"),
            ],
            events=[event, Span.Event(time_unix_nano=START_NS + 9_000, name="retry")],
            links=[link],
            dropped_attributes_count=2,
            dropped_events_count=3,
            dropped_links_count=4,
            trace_state="ot=th:c",
        ),
        otlp_span(span_id=PARENT, parent_span_id=b"", kind=Span.SPAN_KIND_SERVER, status=Status(code=1)),
        otlp_span(span_id=b"\x01" * 8, kind=Span.SPAN_KIND_PRODUCER, attributes=[kv("zipkin.shared", True)]),
        otlp_span(span_id=b"\x02" * 8, kind=Span.SPAN_KIND_CONSUMER, trace_id=TRACE_64),
        otlp_span(span_id=b"\x03" * 8, kind=Span.SPAN_KIND_INTERNAL, attributes=[kv("zipkin.debug", True)]),
    ]
    original = make_request(spans, service="checkout", scope="io.opentelemetry.http")
    original.resource_spans[0].scope_spans[0].scope.version = "2.1"

    body = from_otlp.encode_json(original)
    back = to_otlp.parse_json(body)

    assert _sorted_attributes(back) == _sorted_attributes(original)


def test_round_trip_zipkin_to_otlp_and_back():
    # The scope's tags as this exporter writes them: with the deprecated aliases.
    scope_tags = {"otel.library.name": "brave", "otel.library.version": "6.0"}
    spans = [
        {**ZIPKIN_SPAN, "tags": {**ZIPKIN_SPAN["tags"], **scope_tags}},
        {
            "traceId": "a3ce929d0e0e4736",
            "id": "00000000000000aa",
            "kind": "CLIENT",
            "name": "query",
            "timestamp": 1_700_000_000_000_001,
            "duration": 1,
            "localEndpoint": {"serviceName": "users"},
            "remoteEndpoint": {"serviceName": "postgres", "ipv4": "10.9.8.7", "port": 5432},
            "annotations": [{"timestamp": 1_700_000_000_000_001, "value": '"exception":{"exception.type":"E"}'}],
            "tags": {"error": "deadlock", "otel.status_code": "ERROR", "db.system": "postgresql"},
            "debug": True,
        },
        {"traceId": TRACE_128.hex(), "id": "00000000000000bb", "shared": True, "localEndpoint": {"serviceName": "x"}},
    ]
    back = from_otlp.request_to_zipkin(to_otlp.request_from_zipkin(spans))
    assert sorted(back, key=lambda s: s["id"]) == sorted(spans, key=lambda s: s["id"])


# --- configuration -------------------------------------------------------------

POLICIES = "tail_sampling:\n  policies: [{name: all, type: always_sample}]\n"


def test_an_empty_zipkin_receiver_section_turns_it_on_with_defaults():
    config = parse_config(POLICIES + "receivers:\n  zipkin:\nexporters:\n  file: {path: x.jsonl}\n")
    assert config.receivers.zipkin is not None
    assert config.receivers.zipkin.endpoint == "0.0.0.0:9411"
    assert config.receivers.zipkin.parse_string_tags is False
    assert config.receivers.otlp.protocols.grpc is not None  # OTLP stays on beside it
    assert parse_config(POLICIES + "exporters:\n  file: {path: x.jsonl}\n").receivers.zipkin is None


def test_the_zipkin_exporter_takes_the_collectors_keys():
    config = parse_config(
        POLICIES + "exporters:\n  zipkin/main:\n    endpoint: http://zipkin:9411/api/v2/spans\n    format: json\n"
    )
    exporter = config.exporters["zipkin/main"]
    assert (exporter.endpoint, exporter.format, exporter.default_service_name) == (
        "http://zipkin:9411/api/v2/spans",
        "json",
        "unknown_service",
    )


def test_an_unknown_zipkin_format_is_refused_naming_the_choices():
    text = POLICIES + "exporters:\n  zipkin:\n    endpoint: http://zipkin:9411/api/v2/spans\n    format: thrift\n"
    with pytest.raises(ConfigError, match=r"<config>:6: exporters\.zipkin\.format: Input should be 'json' or 'proto'"):
        parse_config(text)


# --- hostile values ------------------------------------------------------------


def test_non_finite_doubles_leave_as_valid_json():
    event = Span.Event(time_unix_nano=START_NS, name="odd")
    event.attributes.append(kv("ratio", float("nan")))
    span = otlp_span(attributes=[kv("inf", float("inf"))], events=[event])
    request = make_request([span])
    body = from_otlp.encode_json(request)
    (converted,) = json.loads(body, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert converted["tags"]["inf"] == "inf"
    assert converted["annotations"][0]["value"] == '"odd":{"ratio":"nan"}'


@pytest.mark.parametrize("parent", [b"\x01\x02\x03", bytes(8), b"\x01" * 16])
def test_a_parent_id_zipkin_would_refuse_is_left_out(parent):
    assert "parentId" not in to_zipkin(otlp_span(parent_span_id=parent))


def test_numbers_beyond_the_fields_are_refused_or_kept_as_text():
    with pytest.raises(ValueError, match="span 0: timestamp must be a whole number"):
        to_otlp.parse_json(json.dumps([{"traceId": "1", "id": "1", "timestamp": 2**64}]).encode())
    huge = "9" * 5000
    tags = {"big": huge, "otel.dropped_attributes_count": huge, "otlp.link.0": f"{'1' * 32}|{'2' * 16}||{{}}|{huge}"}
    annotations = [{"timestamp": 1, "value": f'name|{{"a":1}}|{huge}'}]
    _, span = from_zipkin({**ZIPKIN_SPAN, "tags": tags, "annotations": annotations}, parse_string_tags=True)
    values = attributes(span)
    assert values["big"] == huge and values["otel.dropped_attributes_count"] == huge
    assert values["otlp.link.0"].endswith(huge) and not span.links
    assert span.events[0].name == f'name|{{"a":1}}|{huge}'
    # Integers beyond what Python's json reads: in an annotation it stays text, in the body it is refused.
    _, span = from_zipkin({**ZIPKIN_SPAN, "annotations": [{"timestamp": 1, "value": f'"e":{{"n":{huge}}}'}]})
    assert span.events[0].name == f'"e":{{"n":{huge}}}' and not span.events[0].attributes
    with pytest.raises(ValueError, match="invalid JSON: Exceeds the limit"):
        to_otlp.parse_json(f'[{{"traceId": "1", "id": "1", "timestamp": {huge}}}]'.encode())


def test_deeply_nested_annotation_attributes_are_a_clear_error():
    depth = 600  # within what json.loads takes, beyond what one stack frame per level allows twice over
    value = '"event":{"a":' + "[" * depth + "]" * depth + "}"
    body = json.dumps([{**ZIPKIN_SPAN, "annotations": [{"timestamp": 1, "value": value}]}]).encode()
    with pytest.raises(ValueError, match="span 0: an annotation's attributes are nested too deeply"):
        to_otlp.parse_json(body)


# --- Zipkin v2 protobuf ----------------------------------------------------------


def test_protobuf_carries_every_field_of_the_json_model():
    spans = [
        ZIPKIN_SPAN,
        {"traceId": "a3ce929d0e0e4736", "id": "00000000000000aa", "localEndpoint": {"serviceName": "x"}},
        {**ZIPKIN_SPAN, "id": "00000000000000bb", "kind": "CONSUMER", "debug": True, "shared": True},
    ]
    assert proto.decode(proto.encode(spans)) == spans


def test_protobuf_round_trip_through_otlp():
    original = make_request([otlp_span(status=Status(code=Status.STATUS_CODE_ERROR, message="x"))], service="svc")
    spans = from_otlp.request_to_zipkin(original)
    back = to_otlp.request_from_zipkin(proto.decode(proto.encode(spans)))
    assert _sorted_attributes(back) == _sorted_attributes(original)


def _one_span(**fields: Any) -> bytes:
    base = {"trace_id": TRACE_128, "id": SPAN}
    base.update(fields)
    return proto.ListOfSpans(spans=[base]).SerializeToString()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\x0a\x05\x0a", "malformed Zipkin protobuf ListOfSpans"),
        (_one_span(trace_id=b"\x01" * 12), "span 0: trace_id must be 8 or 16 bytes, not 12"),
        (_one_span(id=b""), "span 0: id must be 8 bytes, not 0"),
        (_one_span(parent_id=b"\x01"), "span 0: parent_id must be 8 bytes, not 1"),
        (_one_span(kind=7), "span 0: kind 7 is not one of the Zipkin kinds"),
        (_one_span(local_endpoint={"ipv4": b"\x01\x02"}), "span 0: local_endpoint.ipv4 must be 4 bytes"),
        (_one_span(remote_endpoint={"ipv6": b"\x01"}), "span 0: remote_endpoint.ipv6 must be 16 bytes"),
    ],
)
def test_malformed_protobuf_is_refused_with_the_reason(body, reason):
    with pytest.raises(ValueError, match=reason):
        proto.decode(body)
