"""Memory bounds through real sockets: memory_limit_mib and max_spans_per_trace decide early with
their reason, and with block_on_overflow a downstream outage pushes back on clients instead of
dropping kept traces."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from tests.integration.test_cli import free_port
from tests.integration.test_decision_records import scope_attributes
from tests.support import (
    HttpSink,
    config_dict,
    fast_retry,
    grpc_export,
    http_export,
    make_request,
    make_span,
    make_trace,
    wait_until,
)

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def test_the_memory_limit_decides_the_oldest_traces_early(start_daemon, grpc_sink):
    limit = 64 * 1024
    daemon = start_daemon(
        config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, decision_wait="30s", memory_limit_mib=limit / 2**20)
    )
    ids = []
    for _ in range(60):
        trace_id, spans = make_trace(spans=5, attributes={"payload": "x" * 300})
        ids.append(trace_id)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
        assert daemon.scrape().value("tail_sampler_window_memory_bytes") <= limit
    metrics = daemon.scrape()
    early = metrics.value("tail_sampler_early_decisions_total", reason="memory")
    assert 0 < early < len(ids)
    assert metrics.value("tail_sampler_traces_decided_total", trigger="memory") == early
    assert metrics.value("tail_sampler_window_traces") == len(ids) - early
    assert metrics.value("tail_sampler_window_memory_limit_bytes") == limit
    assert metrics.value("tail_sampler_early_decisions_total", reason="overflow") == 0
    # The oldest went first, each kept trace whole and marked as decided early.
    grpc_sink.wait_for_spans(5 * int(early))
    assert grpc_sink.trace_ids() == set(ids[: int(early)])
    assert scope_attributes(grpc_sink, ids[0]) == [
        ("test", {"tailsampling.policy": "keep-all", "tailsampling.early_decision": "memory"})
    ]


def test_a_trace_reaching_max_spans_per_trace_is_decided_at_once(start_daemon, grpc_sink):
    daemon = start_daemon(
        config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, decision_wait="30s", max_spans_per_trace=10)
    )
    big, spans = make_trace(spans=12)
    small, small_spans = make_trace(spans=3)
    grpc_export(daemon.grpc_endpoint, make_request(spans[:6] + small_spans))
    grpc_export(daemon.grpc_endpoint, make_request(spans[6:]))
    grpc_sink.wait_for_spans(12)
    assert grpc_sink.trace_ids() == {big}
    grpc_export(daemon.grpc_endpoint, make_request([make_span(big, name="late") for _ in range(3)]))
    grpc_sink.wait_for_spans(15)
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_early_decisions_total", reason="span_limit") == 1
    assert metrics.value("tail_sampler_traces_decided_total", decision="kept", trigger="span_limit") == 1
    assert metrics.value("tail_sampler_late_spans_total", decision="kept") == 3
    assert metrics.value("tail_sampler_window_traces") == 1  # the small trace waits its turn
    assert scope_attributes(grpc_sink, big)[0] == (
        "test",
        {"tailsampling.policy": "keep-all", "tailsampling.early_decision": "span_limit"},
    )


def _refused_grpc(endpoint: str, spans) -> grpc.RpcError | None:
    with grpc.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(EXPORT)
        try:
            call(make_request(spans).SerializeToString(), timeout=0.6)
        except grpc.RpcError as error:
            return error
    return None


def test_a_downstream_outage_pushes_back_on_clients_and_loses_no_kept_trace(start_daemon):
    port = free_port()  # nothing listens here until the downstream "comes back"
    exporter = fast_retry(
        f"http://127.0.0.1:{port}",
        kind="otlphttp",
        sending_queue={"num_consumers": 1, "queue_size": 1},
        retry_on_failure={"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "60s"},
    )
    daemon = start_daemon(
        config_dict(
            {"otlphttp": exporter},
            decision_wait="100ms",
            num_traces=4,
            num_shards=1,
            block_on_overflow=True,
            block_on_overflow_timeout="300ms",
        )
    )
    accepted = set()
    refusal = None
    # One batch is being retried, one waits in the queue, then decisions pause and the window fills.
    for _ in range(20):
        trace_id, spans = make_trace(spans=2)
        refusal = _refused_grpc(daemon.grpc_endpoint, spans)
        if refusal is not None:
            break
        accepted.add(trace_id)
        time.sleep(0.25)
    assert refusal is not None, "the daemon never pushed back"
    assert refusal.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    details = status_pb2.Status.FromString(dict(refusal.trailing_metadata())["grpc-status-details-bin"])
    retry = error_details_pb2.RetryInfo()
    assert details.details[0].Unpack(retry) and retry.retry_delay.seconds == 1

    response = http_export(daemon.http_url, make_request(make_trace(spans=2)[1]).SerializeToString())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"

    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_window_traces") == 4
    assert metrics.value("tail_sampler_exporter_queue_batches") == 1
    assert metrics.value("tail_sampler_receiver_requests_total", result="backpressure") == 2
    assert metrics.value("tail_sampler_early_decisions_total") == 0
    assert metrics.value("tail_sampler_exporter_dropped_spans_total") == 0

    sink = HttpSink(port=port)
    try:
        wait_until(lambda: sink.trace_ids() == accepted, timeout=30, what="every accepted trace at the sink")
        metrics = daemon.scrape()
        assert metrics.value("tail_sampler_exporter_dropped_spans_total") == 0
        assert metrics.value("tail_sampler_window_traces") == 0
        # And the daemon takes traffic again.
        grpc_export(daemon.grpc_endpoint, make_request(make_trace(spans=2)[1]))
    finally:
        sink.close()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_sdk_exporter_retries_through_an_outage_until_every_span_is_in(start_daemon, protocol):
    from opentelemetry import trace

    from tests.support import sdk_tracer

    port = free_port()
    exporter = fast_retry(
        f"http://127.0.0.1:{port}",
        kind="otlphttp",
        sending_queue={"num_consumers": 1, "queue_size": 1},
        retry_on_failure={"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "60s"},
    )
    daemon = start_daemon(
        config_dict(
            {"otlphttp": exporter},
            decision_wait="100ms",
            num_traces=2,
            num_shards=1,
            block_on_overflow=True,
            block_on_overflow_timeout="200ms",
        )
    )
    sinks: list[HttpSink] = []

    def downstream_comes_back_once_clients_are_refused() -> None:
        wait_until(
            lambda: daemon.scrape().value("tail_sampler_receiver_requests_total", result="backpressure") >= 1,
            timeout=30,
            interval=0.05,
        )
        sinks.append(HttpSink(port=port))

    watcher = threading.Thread(target=downstream_comes_back_once_clients_are_refused, daemon=True)
    watcher.start()
    endpoint = daemon.grpc_endpoint if protocol == "grpc" else daemon.http_url
    provider, tracer = sdk_tracer(endpoint, protocol, service="through-an-outage")
    ids = set()
    try:
        # Each span is exported (and retried by the SDK) as it ends, so this loop waits out the outage.
        for _ in range(12):
            root = tracer.start_span("root")
            tracer.start_span("child", context=trace.set_span_in_context(root)).end()
            root.end()
            ids.add(root.get_span_context().trace_id.to_bytes(16, "big"))
        provider.shutdown()
        watcher.join(30)
        assert sinks, "the daemon never pushed back"
        wait_until(lambda: sinks[0].trace_ids() == ids, timeout=30, what="every SDK trace at the sink")
        metrics = daemon.scrape()
        assert metrics.value("tail_sampler_receiver_requests_total", protocol=protocol, result="backpressure") >= 1
        assert metrics.value("tail_sampler_exporter_dropped_spans_total") == 0
        assert metrics.value("tail_sampler_early_decisions_total") == 0
    finally:
        for sink in sinks:
            sink.close()
