"""block_on_overflow: a full window makes clients wait (or retry) instead of deciding traces early."""

from __future__ import annotations

import time

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from tests.support import config_dict, fast_retry, grpc_export, http_export, make_request, make_trace, sdk_tracer


def blocking_config(sink, **extra):
    return config_dict(
        {"otlp": fast_retry(sink.endpoint)},
        num_traces=2,
        num_shards=1,
        block_on_overflow=True,
        **extra,
    )


def test_a_request_waits_for_room_instead_of_evicting(start_daemon, grpc_sink):
    daemon = start_daemon(blocking_config(grpc_sink, decision_wait="800ms"))
    ids = []
    for _ in range(2):
        trace_id, spans = make_trace(spans=2)
        ids.append(trace_id)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
    started = time.monotonic()
    third, spans = make_trace(spans=2)
    grpc_export(daemon.grpc_endpoint, make_request(spans))  # blocks until the first two are decided
    waited = time.monotonic() - started
    assert waited >= 0.5
    grpc_sink.wait_for_spans(6)
    assert grpc_sink.trace_ids() == {*ids, third}
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_early_decisions_total") == 0
    assert metrics.value("tail_sampler_traces_decided_total", trigger="wait") >= 2


def test_grpc_client_deadline_gets_resource_exhausted_with_retry_info(start_daemon, grpc_sink):
    daemon = start_daemon(blocking_config(grpc_sink, decision_wait="30s"))
    for _ in range(2):
        grpc_export(daemon.grpc_endpoint, make_request(make_trace(spans=1)[1]))
    with grpc.insecure_channel(daemon.grpc_endpoint) as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as caught:
            call(make_request(make_trace(spans=1)[1]).SerializeToString(), timeout=0.6)
    error = caught.value
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    retry = error_details_pb2.RetryInfo()
    assert status_pb2.Status.FromString(details).details[0].Unpack(retry)
    assert retry.retry_delay.seconds == 1
    assert daemon.scrape().value("tail_sampler_receiver_requests_total", result="backpressure") == 1
    assert daemon.scrape().value("tail_sampler_window_traces") == 2


def test_http_gets_503_with_retry_after(start_daemon, grpc_sink):
    daemon = start_daemon(blocking_config(grpc_sink, decision_wait="30s", block_on_overflow_timeout="300ms"))
    for _ in range(2):
        grpc_export(daemon.grpc_endpoint, make_request(make_trace(spans=1)[1]))
    response = http_export(daemon.http_url, make_request(make_trace(spans=1)[1]).SerializeToString())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


def test_the_sdk_exporter_retries_until_every_span_is_in(start_daemon, grpc_sink):
    from opentelemetry import trace

    daemon = start_daemon(blocking_config(grpc_sink, decision_wait="500ms", block_on_overflow_timeout="200ms"))
    provider, tracer = sdk_tracer(daemon.http_url, "http", service="pushed-back")
    ids = set()
    for _ in range(6):
        root = tracer.start_span("root")
        tracer.start_span("child", context=trace.set_span_in_context(root)).end()
        root.end()
        ids.add(root.get_span_context().trace_id.to_bytes(16, "big"))
    provider.shutdown()
    grpc_sink.wait_for_spans(12, timeout=30)
    assert grpc_sink.trace_ids() == ids
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_early_decisions_total") == 0
    assert metrics.value("tail_sampler_receiver_requests_total", protocol="http", result="backpressure") >= 1
