"""Bad input gets a clear error and loses nothing else."""

from __future__ import annotations

import gzip
import json

import grpc
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.support import (
    config_dict,
    fast_retry,
    grpc_export,
    http_export,
    json_body,
    make_request,
    make_span,
    make_trace,
    wait_until,
)


@pytest.fixture
def daemon(start_daemon, grpc_sink):
    data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)})
    data["receivers"]["otlp"]["protocols"]["grpc"]["max_recv_msg_size_mib"] = 1
    data["receivers"]["otlp"]["protocols"]["http"]["max_request_body_size"] = 1024 * 1024
    return start_daemon(data)


def assert_still_serving(daemon, grpc_sink, expected_spans: int) -> None:
    trace_id, spans = make_trace(spans=2)
    grpc_export(daemon.grpc_endpoint, make_request(spans))
    http_export(daemon.http_url, make_request(make_trace(spans=1)[1]).SerializeToString())
    grpc_sink.wait_for_spans(expected_spans + 3)
    assert trace_id in grpc_sink.trace_ids()


def test_malformed_protobuf_over_grpc_is_invalid_argument(daemon, grpc_sink):
    with pytest.raises(grpc.RpcError) as caught:
        grpc_export(daemon.grpc_endpoint, b"\x0a\xff\xff\xff\xff\x0f garbage")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed protobuf" in caught.value.details()
    assert daemon.scrape().value("tail_sampler_receiver_requests_total", protocol="grpc", result="invalid") == 1
    assert_still_serving(daemon, grpc_sink, 0)


def test_truncated_request_over_grpc_is_invalid_argument(daemon, grpc_sink):
    whole = make_request(make_trace(spans=3)[1]).SerializeToString()
    with pytest.raises(grpc.RpcError) as caught:
        grpc_export(daemon.grpc_endpoint, whole[: len(whole) // 2])
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert daemon.scrape().value("tail_sampler_received_spans_total") == 0
    assert_still_serving(daemon, grpc_sink, 0)


def test_oversized_grpc_request_is_resource_exhausted(daemon, grpc_sink):
    _, spans = make_trace(spans=1)
    spans[0].attributes.add(key="huge", value={"string_value": "z" * (2 * 1024 * 1024)})
    with pytest.raises(grpc.RpcError) as caught:
        grpc_export(daemon.grpc_endpoint, make_request(spans))
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(daemon, grpc_sink, 0)


def test_malformed_protobuf_over_http_is_400_with_status(daemon, grpc_sink):
    response = http_export(daemon.http_url, b"\x0a\x05\x01")
    assert response.status_code == 400
    status = status_pb2.Status.FromString(response.content)
    assert status.code == 3 and "malformed protobuf" in status.message
    assert_still_serving(daemon, grpc_sink, 0)


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "JSON object"),
        (
            json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "00"}]}]}]}).encode(),
            "not a hex",
        ),
        (
            json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}).encode(),
            "startTimeUnixNano",
        ),
        (b"\xff\xfe\x00", "invalid JSON"),
    ],
)
def test_malformed_json_over_http_is_400(daemon, grpc_sink, body, fragment):
    response = http_export(daemon.http_url, body, content_type="application/json")
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("application/json")
    message = response.json()["message"]
    assert fragment in message, message
    assert_still_serving(daemon, grpc_sink, 0)


def test_oversized_http_request_is_413(daemon, grpc_sink):
    response = http_export(daemon.http_url, b"\x00" * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert "max_request_body_size" in status_pb2.Status.FromString(response.content).message
    assert daemon.scrape().value("tail_sampler_receiver_requests_total", protocol="http", result="too_large") == 1
    assert_still_serving(daemon, grpc_sink, 0)


def test_gzip_bomb_over_http_is_bounded_by_the_decompressed_size(daemon, grpc_sink):
    bomb = gzip.compress(b"\x00" * (8 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    import requests

    response = requests.post(
        daemon.http_url,
        data=bomb,
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert response.status_code == 413
    assert_still_serving(daemon, grpc_sink, 0)


def test_corrupt_gzip_over_http_is_400(daemon, grpc_sink):
    import requests

    response = requests.post(
        daemon.http_url,
        data=b"\x1f\x8b\x08\x00garbage-not-deflate",
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        timeout=10,
    )
    assert response.status_code == 400
    assert_still_serving(daemon, grpc_sink, 0)


def test_unsupported_content_type_is_415(daemon, grpc_sink):
    response = http_export(daemon.http_url, b"hello", content_type="text/plain")
    assert response.status_code == 415
    assert "application/x-protobuf" in status_pb2.Status.FromString(response.content).message
    assert_still_serving(daemon, grpc_sink, 0)


def _mixed_request():
    good_trace, good = make_trace(spans=2)
    bad = [
        make_span(b"\x00" * 16, name="zero-trace"),
        make_span(b"\x01" * 15, name="short-trace"),
        make_span(good_trace, span_id=b"\x00" * 8, name="zero-span"),
        make_span(good_trace, span_id=b"\x01\x02", name="short-span"),
    ]
    return good_trace, make_request(good + bad)


def test_invalid_ids_are_rejected_through_partial_success_over_grpc(daemon, grpc_sink):
    good_trace, request = _mixed_request()
    response = grpc_export(daemon.grpc_endpoint, request)
    assert response.partial_success.rejected_spans == 4
    assert "trace_id must be 16 bytes" in response.partial_success.error_message
    spans = grpc_sink.wait_for_spans(2)
    assert {s.trace_id for s in spans} == {good_trace}
    assert len(spans) == 2
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_rejected_spans_total", protocol="grpc", reason="invalid_id") == 4
    assert metrics.value("tail_sampler_receiver_requests_total", protocol="grpc", result="partial") == 1


def test_invalid_ids_are_rejected_through_partial_success_over_http_json(daemon, grpc_sink):
    good_trace, request = _mixed_request()
    response = http_export(daemon.http_url, json_body(request), content_type="application/json", gzipped=True)
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedSpans"] == "4"
    spans = grpc_sink.wait_for_spans(2)
    assert {s.trace_id for s in spans} == {good_trace}


def test_http_protobuf_response_is_an_export_response(daemon, grpc_sink):
    _, request = _mixed_request()
    response = http_export(daemon.http_url, request.SerializeToString(), gzipped=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(response.content).partial_success.rejected_spans == 4


def test_empty_request_is_accepted(daemon, grpc_sink):
    response = grpc_export(daemon.grpc_endpoint, b"")
    assert response.partial_success.rejected_spans == 0
    assert http_export(daemon.http_url, b"{}", content_type="application/json").status_code == 200
    wait_until(lambda: daemon.scrape().value("tail_sampler_receiver_requests_total", result="ok") == 2)
