"""Odd input through real sockets, generated (hypothesis): every request to every receiver gets
an answer below 500, a 4xx with a message when refused, and is counted exactly once in
tail_sampler_receiver_requests_total; the daemon keeps serving. Bodies are shaped like what
each receiver reads (OTLP/JSON, Zipkin JSON, protobuf), with the values clients get wrong:
wrong types, nulls, huge numbers, lone surrogates, nesting; and raw or mutated bytes.

Bounded for CI (max_examples); the daemon is shared by the module's tests."""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import (
    DaemonThread,
    config_dict,
    json_body,
    make_config,
    make_request,
    make_span,
    make_trace,
)

FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
OTLP_KEYS = [
    "resourceSpans", "resource_spans", "resource", "attributes", "scopeSpans", "scope_spans", "scope", "spans",
    "traceId", "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano", "endTimeUnixNano", "status",
    "code", "message", "events", "links", "key", "value", "stringValue", "intValue", "doubleValue", "boolValue",
    "arrayValue", "kvlistValue", "bytesValue", "values", "traceState", "flags", "droppedAttributesCount",
    "schemaUrl", "timeUnixNano", "version",
]  # fmt: skip
LOGS_KEYS = [
    "resourceLogs", "scopeLogs", "logRecords", "resource", "scope", "attributes", "body", "severityNumber",
    "severityText", "timeUnixNano", "observedTimeUnixNano", "traceId", "spanId", "flags", "key", "value",
    "stringValue", "intValue", "arrayValue", "kvlistValue", "values", "eventName",
]  # fmt: skip
ZIPKIN_KEYS = [
    "traceId", "id", "parentId", "name", "kind", "timestamp", "duration", "localEndpoint", "remoteEndpoint",
    "serviceName", "ipv4", "ipv6", "port", "annotations", "value", "tags", "debug", "shared",
]  # fmt: skip
ODD_STRINGS = ["\ud800", "a\udfffb", "\x00", "CLIENT", "SERVER", "ERROR", "0" * 32, "1" * 16, "ff" * 8, "", "NaN"]
# Text with lone surrogates (category Cs), which JSON can carry as \uXXXX escapes and UTF-8 cannot.
surrogate_text = st.text(st.characters(categories=["Cs", "Ll", "Nd"]), min_size=1, max_size=6)
odd_keys = st.one_of(st.sampled_from(ODD_STRINGS), surrogate_text)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(ODD_STRINGS),
    surrogate_text,
)


def documents(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(keys), odd_keys), children, max_size=6),
        ),
        max_leaves=40,
    )


def mutate(draw: st.DrawFn, base: Any, keys: list[str]) -> Any:
    """`base` with a few of its values replaced, keys added or removed, anywhere in it: mostly
    valid documents, wrong in one or two places, reach further into a decoder than noise does."""
    document = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        parent, node = None, document
        key: Any = None
        while isinstance(node, (dict, list)) and node and draw(st.integers(0, 3)):
            key = draw(st.sampled_from(sorted(node)) if isinstance(node, dict) else st.integers(0, len(node) - 1))
            parent, node = node, node[key]
        action = draw(st.sampled_from(["replace", "add", "remove"]))
        if action == "add" and isinstance(node, dict):
            node[draw(st.one_of(st.sampled_from(keys), odd_keys))] = draw(documents(keys))
        elif action == "remove" and parent is not None:
            del parent[key]
        elif parent is not None:
            parent[key] = draw(st.one_of(st.none(), documents(keys)))
    return document


def otlp_base() -> Any:
    trace_id, spans = make_trace(spans=2, error=True, attributes={"http.route": "/a", "n": 7})
    spans.append(make_span(trace_id, attributes={"list": "x"}))
    return json.loads(json_body(make_request(spans)))


def zipkin_base() -> Any:
    return [
        {
            "traceId": "5af7183fb1d4cf5f",
            "id": "6b221d5bc9e6496c",
            "parentId": "352bff9a74ca9ad2",
            "name": "get /api",
            "kind": "SERVER",
            "timestamp": 1556604172355737,
            "duration": 1431,
            "localEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.1", "port": 3306},
            "remoteEndpoint": {"ipv4": "172.19.0.2", "port": 58648},
            "annotations": [{"timestamp": 1556604172355800, "value": "wr"}],
            "tags": {"http.method": "GET", "error": "boom"},
        }
    ]


@st.composite
def mutated_otlp(draw: st.DrawFn) -> Any:
    return mutate(draw, OTLP_BASE, OTLP_KEYS)


def logs_base() -> Any:
    trace_id, _ = make_trace(spans=1)
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                "scopeLogs": [
                    {
                        "scope": {"name": "app"},
                        "logRecords": [
                            {"traceId": trace_id.hex(), "spanId": "b7ad6b7169203331", "body": {"stringValue": "hi"}},
                            {"body": {"stringValue": "no trace"}, "severityNumber": 9},
                        ],
                    }
                ],
            }
        ]
    }


@st.composite
def mutated_logs(draw: st.DrawFn) -> Any:
    return mutate(draw, LOGS_BASE, LOGS_KEYS)


@st.composite
def mutated_zipkin(draw: st.DrawFn) -> Any:
    return mutate(draw, ZIPKIN_BASE, ZIPKIN_KEYS)


def _encode(document: Any) -> bytes:
    # ensure_ascii: a lone surrogate goes out as its \\uXXXX escape, as a client's encoder writes it.
    return json.dumps(document, allow_nan=True).encode()


OTLP_BASE = otlp_base()
LOGS_BASE = logs_base()
ZIPKIN_BASE = zipkin_base()
VALID = make_request(make_trace(spans=3, error=True)[1]).SerializeToString()
mutated_protobuf = st.builds(
    lambda cut, flips: bytes(b ^ flips.get(i, 0) for i, b in enumerate(VALID[:cut])),
    st.integers(min_value=0, max_value=len(VALID)),
    st.dictionaries(st.integers(min_value=0, max_value=len(VALID) - 1), st.integers(1, 255), max_size=6),
)
protobuf_bodies = st.one_of(st.binary(max_size=300), mutated_protobuf)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[DaemonThread]:
    data = config_dict({"file": {"path": str(tmp_path_factory.mktemp("fuzz") / "kept.jsonl")}}, decision_wait="50ms")
    data["receivers"]["zipkin"] = {"endpoint": "127.0.0.1:0"}
    running = DaemonThread(make_config(data))
    yield running
    running.stop()


def counted(daemon: DaemonThread, protocol: str) -> float:
    registry = daemon.daemon.metrics.registry  # type: ignore[union-attr]
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "tail_sampler_receiver_requests_total" and sample.labels["protocol"] == protocol
    )


def post(url: str, body: bytes, content_type: str, gzipped: bool) -> requests.Response:
    headers = {"Content-Type": content_type}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return requests.post(url, data=body, headers=headers, timeout=10)


def check_http(daemon: DaemonThread, protocol: str, url: str, body: bytes, content_type: str, gzipped: bool) -> None:
    before = counted(daemon, protocol)
    reply = post(url, body, content_type, gzipped)
    assert reply.status_code < 500, (reply.status_code, reply.text, body[:200])
    if reply.status_code >= 400:
        assert reply.content, "a refusal says why"
    assert counted(daemon, protocol) == before + 1, body[:200]


@settings(FUZZ, max_examples=300)
@given(document=st.one_of(mutated_otlp(), documents(OTLP_KEYS)), gzipped=st.booleans())
def test_otlp_json_documents_get_an_answer_below_500_and_are_counted(daemon, document, gzipped):
    check_http(daemon, "http", daemon.http_url, _encode(document), "application/json", gzipped)


@FUZZ
@given(
    document=st.one_of(mutated_zipkin(), documents(ZIPKIN_KEYS)),
    gzipped=st.booleans(),
)
def test_zipkin_json_documents_get_an_answer_below_500_and_are_counted(daemon, document, gzipped):
    url = f"http://127.0.0.1:{daemon.daemon.zipkin_receiver.port}/api/v2/spans"  # type: ignore[union-attr]
    check_http(daemon, "zipkin", url, _encode(document), "application/json", gzipped)


@FUZZ
@given(document=st.one_of(mutated_logs(), documents(LOGS_KEYS)), gzipped=st.booleans())
def test_otlp_json_log_documents_get_an_answer_below_500_and_are_counted(daemon, document, gzipped):
    check_http(daemon, "http", daemon.http_logs_url, _encode(document), "application/json", gzipped)


@FUZZ
@given(body=protobuf_bodies, gzipped=st.booleans())
def test_protobuf_bodies_over_http_get_an_answer_below_500_and_are_counted(daemon, body, gzipped):
    check_http(daemon, "http", daemon.http_url, body, "application/x-protobuf", gzipped)


@FUZZ
@given(body=st.binary(max_size=300), gzipped=st.booleans())
def test_zipkin_protobuf_bodies_get_an_answer_below_500_and_are_counted(daemon, body, gzipped):
    url = f"http://127.0.0.1:{daemon.daemon.zipkin_receiver.port}/api/v2/spans"  # type: ignore[union-attr]
    check_http(daemon, "zipkin", url, body, "application/x-protobuf", gzipped)


@FUZZ
@given(body=protobuf_bodies, logs=st.booleans())
def test_protobuf_bodies_over_grpc_get_ok_or_invalid_argument_and_are_counted(daemon, body, logs):
    before = counted(daemon, "grpc")
    service = "logs.v1.LogsService" if logs else "trace.v1.TraceService"
    try:
        with grpc.insecure_channel(daemon.grpc_endpoint) as channel:
            channel.unary_unary(f"/opentelemetry.proto.collector.{service}/Export")(body, timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), exc.details())
        assert exc.details()
    assert counted(daemon, "grpc") == before + 1


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/v1/traces", b'{"\\ud800":1,"resourceSpans":null}', "not valid Unicode"),
        ("/api/v2/spans", b'[{"traceId":"1","id":"1","kind":["CLIENT"]}]', "kind must be one of"),
        ("/api/v2/spans", b'[{"traceId":"1","id":"1","kind":{"a":1}}]', "kind must be one of"),
    ],
)
def test_the_odd_inputs_of_issue_13_are_400_with_a_reason(daemon, path, body, fragment):
    port = daemon.daemon.http_receiver.port if path == "/v1/traces" else daemon.daemon.zipkin_receiver.port  # type: ignore[union-attr]
    protocol = "http" if path == "/v1/traces" else "zipkin"
    before = counted(daemon, protocol)
    reply = post(f"http://127.0.0.1:{port}{path}", body, "application/json", False)
    assert reply.status_code == 400
    assert fragment in reply.text
    assert counted(daemon, protocol) == before + 1
