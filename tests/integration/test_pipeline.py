"""The daemon end to end: real SDK exporters and hand-built requests in, real OTLP servers out."""

from __future__ import annotations

import time

import grpc
import pytest

from tests.support import (
    GrpcSink,
    HttpSink,
    config_dict,
    fast_retry,
    grpc_export,
    make_request,
    make_span,
    make_trace,
    sdk_tracer,
    wait_until,
    wait_until_exported,
)


def emit_sdk_trace(tracer, children: int = 2) -> bytes:
    """A root span with children, through the OpenTelemetry SDK; returns the trace ID."""
    from opentelemetry import trace

    root = tracer.start_span("root")
    ctx = trace.set_span_in_context(root)
    for index in range(children):
        tracer.start_span(f"child-{index}", context=ctx).end()
    root.end()
    return root.get_span_context().trace_id.to_bytes(16, "big")


def test_sdk_exporters_over_grpc_and_http_reach_the_sink_whole(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}))
    grpc_provider, grpc_tracer = sdk_tracer(daemon.grpc_endpoint, "grpc", service="over-grpc")
    http_provider, http_tracer = sdk_tracer(daemon.http_url, "http", service="over-http")
    via_grpc = emit_sdk_trace(grpc_tracer, children=3)
    via_http = emit_sdk_trace(http_tracer, children=2)
    grpc_provider.shutdown()
    http_provider.shutdown()

    spans = grpc_sink.wait_for_spans(7)
    assert len(spans) == 7
    by_trace = {trace_id: [s for s in spans if s.trace_id == trace_id] for trace_id in (via_grpc, via_http)}
    assert {s.service for s in by_trace[via_grpc]} == {"over-grpc"}
    assert {s.service for s in by_trace[via_http]} == {"over-http"}
    assert sorted(s.name for s in by_trace[via_grpc]) == ["child-0", "child-1", "child-2", "root"]
    assert {s.scope for s in spans} == {"tests"}
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_received_spans_total", protocol="grpc") == 4
    assert metrics.value("tail_sampler_received_spans_total", protocol="http") == 3
    assert metrics.value("tail_sampler_received_traces_total") == 2
    assert metrics.value("tail_sampler_traces_decided_total", decision="kept") == 2
    wait_until(lambda: daemon.scrape().value("tail_sampler_exporter_sent_spans_total", exporter="otlp") == 7)


def test_policies_keep_only_matching_traces(start_daemon, grpc_sink):
    policies = [
        {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {"name": "slow", "type": "latency", "latency": {"threshold_ms": 500}},
        {"name": "vip", "type": "string_attribute", "string_attribute": {"key": "user.tier", "values": ["vip"]}},
    ]
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, policies))
    error_trace, error_spans = make_trace(error=True)
    slow_trace, slow_spans = make_trace(duration_ms=900)
    vip_trace, vip_spans = make_trace(attributes={"user.tier": "vip"})
    plain_trace, plain_spans = make_trace(attributes={"user.tier": "free"})
    grpc_export(daemon.grpc_endpoint, make_request(error_spans + slow_spans + vip_spans + plain_spans))

    wait_until(lambda: daemon.scrape().value("tail_sampler_traces_decided_total") == 4, what="4 decisions")
    grpc_sink.wait_for_spans(9)
    wait_until_exported(daemon, spans=9)  # anything wrongly kept has reached the sink too by now
    assert grpc_sink.trace_ids() == {error_trace, slow_trace, vip_trace}
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_traces_kept_by_policy_total", policy="errors") == 1
    assert metrics.value("tail_sampler_traces_kept_by_policy_total", policy="slow") == 1
    assert metrics.value("tail_sampler_traces_kept_by_policy_total", policy="vip") == 1
    assert metrics.value("tail_sampler_policy_decisions_total", policy="vip", decision="not_sampled") == 3
    assert metrics.value("tail_sampler_traces_decided_total", decision="dropped") == 1
    assert plain_trace not in grpc_sink.trace_ids()


def test_late_spans_follow_the_cached_decision(start_daemon, grpc_sink):
    policies = [{"name": "keep", "type": "boolean_attribute", "boolean_attribute": {"key": "keep", "value": True}}]
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, policies))
    kept, kept_spans = make_trace(attributes={"keep": True})
    dropped, dropped_spans = make_trace(attributes={"keep": False})
    grpc_export(daemon.grpc_endpoint, make_request(kept_spans + dropped_spans))
    wait_until(lambda: daemon.scrape().value("tail_sampler_traces_decided_total") == 2)
    grpc_sink.wait_for_spans(3)

    late_kept = make_span(kept, name="late-kept")
    late_dropped = make_span(dropped, name="late-dropped")
    grpc_export(daemon.grpc_endpoint, make_request([late_kept, late_dropped]))
    wait_until(lambda: any(s.name == "late-kept" for s in grpc_sink.spans()), what="the late span of the kept trace")
    wait_until_exported(daemon, spans=4)  # 3 kept, 1 late
    assert not any(s.trace_id == dropped for s in grpc_sink.spans())
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_late_spans_total", decision="kept") == 1
    assert metrics.value("tail_sampler_late_spans_total", decision="dropped") == 1
    # The late spans were not taken for new traces.
    assert metrics.value("tail_sampler_received_traces_total") == 2
    assert metrics.value("tail_sampler_traces_decided_total") == 2


def test_root_span_arrival_brings_the_decision_forward(start_daemon, grpc_sink):
    daemon = start_daemon(
        config_dict(
            {"otlp": fast_retry(grpc_sink.endpoint)},
            decision_wait="30s",
            decision_wait_after_root_received="200ms",
        )
    )
    with_root, with_root_spans = make_trace(root=True)
    without_root, without_root_spans = make_trace(root=False)
    started = time.monotonic()
    grpc_export(daemon.grpc_endpoint, make_request(with_root_spans + without_root_spans))
    grpc_sink.wait_for_spans(3, timeout=5)
    assert time.monotonic() - started < 5
    assert grpc_sink.trace_ids() == {with_root}
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_traces_decided_total", trigger="root") == 1
    assert metrics.value("tail_sampler_window_traces") == 1  # the rootless trace keeps waiting


def test_root_arriving_in_a_later_request_also_triggers(start_daemon, grpc_sink):
    daemon = start_daemon(
        config_dict(
            {"otlp": fast_retry(grpc_sink.endpoint)}, decision_wait="30s", decision_wait_after_root_received="100ms"
        )
    )
    trace_id, spans = make_trace(spans=3, root=True)
    grpc_export(daemon.grpc_endpoint, make_request(spans[1:]))  # children first
    # A trace sent later with its root is due 100ms after it: once the daemon has decided that one,
    # the children alone would have been decided too, had they made their trace due.
    control, control_spans = make_trace(spans=2, root=True)
    grpc_export(daemon.grpc_endpoint, make_request(control_spans))
    wait_until(lambda: daemon.scrape().value("tail_sampler_traces_decided_total", trigger="root") == 1)
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_traces_decided_total") == 1  # the control trace only
    assert metrics.value("tail_sampler_window_traces") == 1  # the children keep waiting
    grpc_export(daemon.grpc_endpoint, make_request(spans[:1]))
    grpc_sink.wait_for_spans(5, timeout=5)
    assert grpc_sink.trace_ids() == {trace_id, control}


def test_full_window_decides_the_oldest_traces_early(start_daemon, grpc_sink):
    daemon = start_daemon(
        config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, decision_wait="30s", num_traces=4, num_shards=1)
    )
    traces = []
    for _ in range(6):
        trace_id, spans = make_trace(spans=2)
        traces.append(trace_id)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
    grpc_sink.wait_for_spans(4)
    assert grpc_sink.trace_ids() == set(traces[:2])
    metrics = daemon.scrape()
    assert metrics.value("tail_sampler_early_decisions_total", reason="overflow") == 2
    assert metrics.value("tail_sampler_traces_decided_total", trigger="overflow") == 2
    assert metrics.value("tail_sampler_window_traces") == 4
    assert metrics.value("tail_sampler_window_spans") == 8
    assert metrics.value("tail_sampler_window_bytes") > 0


def test_grpc_exporter_retries_unavailable_until_accepted(start_daemon):
    sink = GrpcSink(failures=[(grpc.StatusCode.UNAVAILABLE, None), (grpc.StatusCode.UNAVAILABLE, None)])
    try:
        daemon = start_daemon(config_dict({"otlp": fast_retry(sink.endpoint)}))
        trace_id, spans = make_trace(spans=3)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
        sink.wait_for_spans(3)
        assert sink.attempts == 3
        assert sink.trace_ids() == {trace_id}
        metrics = daemon.scrape()
        assert metrics.value("tail_sampler_exporter_retries_total", exporter="otlp") == 2
        assert metrics.value("tail_sampler_exporter_failed_attempts_total", exporter="otlp", reason="unavailable") == 2
        assert metrics.value("tail_sampler_exporter_dropped_spans_total") == 0
    finally:
        sink.close()


def test_grpc_resource_exhausted_is_retried_only_with_retry_info(start_daemon):
    sink = GrpcSink(failures=[(grpc.StatusCode.RESOURCE_EXHAUSTED, 0.4), (grpc.StatusCode.RESOURCE_EXHAUSTED, None)])
    try:
        daemon = start_daemon(config_dict({"otlp": fast_retry(sink.endpoint)}))
        _, first = make_trace(spans=2)
        started = time.monotonic()
        grpc_export(daemon.grpc_endpoint, make_request(first))
        # First attempt: told to come back in 0.4s, which is longer than the 50ms backoff.
        # Second attempt: RESOURCE_EXHAUSTED without RetryInfo is final.
        wait_until(lambda: daemon.scrape().value("tail_sampler_exporter_dropped_spans_total") == 2)
        assert time.monotonic() - started >= 0.4
        metrics = daemon.scrape()
        assert metrics.value("tail_sampler_exporter_dropped_spans_total", reason="permanent_error") == 2
        assert metrics.value("tail_sampler_exporter_retries_total") == 1
        assert sink.attempts == 2
        _, second = make_trace(spans=2)
        grpc_export(daemon.grpc_endpoint, make_request(second))
        sink.wait_for_spans(2)
    finally:
        sink.close()


def test_http_exporter_honours_retry_after_and_sends_gzip(start_daemon):
    sink = HttpSink(failures=[(503, "1"), (429, None)])
    try:
        daemon = start_daemon(config_dict({"otlphttp": fast_retry(sink.endpoint, kind="otlphttp")}))
        trace_id, spans = make_trace(spans=4)
        started = time.monotonic()
        grpc_export(daemon.grpc_endpoint, make_request(spans))
        sink.wait_for_spans(4)
        assert time.monotonic() - started >= 1.0
        assert sink.attempts == 3
        assert all(h.get("Content-Encoding") == "gzip" for h in sink.headers_seen)
        metrics = daemon.scrape()
        assert metrics.value("tail_sampler_exporter_failed_attempts_total", reason="http_503") == 1
        assert metrics.value("tail_sampler_exporter_failed_attempts_total", reason="http_429") == 1
    finally:
        sink.close()


def test_permanent_failure_is_counted_never_silent(start_daemon):
    sink = HttpSink(failures=[(400, None)])
    try:
        daemon = start_daemon(config_dict({"otlphttp": fast_retry(sink.endpoint, kind="otlphttp")}))
        _, spans = make_trace(spans=3)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
        wait_until(
            lambda: daemon.scrape().value("tail_sampler_exporter_dropped_spans_total", reason="permanent_error") == 3
        )
        assert sink.attempts == 1
    finally:
        sink.close()


def test_exhausted_retries_are_counted(start_daemon):
    sink = HttpSink(failures=[(503, None)] * 100)
    try:
        exporter = fast_retry(sink.endpoint, kind="otlphttp")
        exporter["retry_on_failure"]["max_elapsed_time"] = "400ms"
        daemon = start_daemon(config_dict({"otlphttp": exporter}))
        _, spans = make_trace(spans=2)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
        wait_until(
            lambda: daemon.scrape().value("tail_sampler_exporter_dropped_spans_total", reason="retries_exhausted") == 2
        )
        assert sink.attempts >= 2
    finally:
        sink.close()


def test_every_exporter_gets_every_kept_trace(start_daemon, grpc_sink, http_sink, tmp_path):
    path = tmp_path / "kept.jsonl"
    daemon = start_daemon(
        config_dict(
            {
                "otlp/primary": fast_retry(grpc_sink.endpoint),
                "otlphttp/secondary": fast_retry(http_sink.endpoint, kind="otlphttp"),
                "file": {"path": str(path)},
            }
        )
    )
    trace_id, spans = make_trace(spans=5)
    grpc_export(daemon.grpc_endpoint, make_request(spans))
    grpc_sink.wait_for_spans(5)
    http_sink.wait_for_spans(5)
    wait_until(lambda: path.exists() and path.read_text().count("\n") == 1)
    from sampler.codecs.otlp_json import request_from_json
    from tests.support import spans_of

    from_file = spans_of([request_from_json(line) for line in path.read_text().splitlines()])
    assert {s.trace_id for s in from_file} == {trace_id}
    assert sorted(s.span_id for s in from_file) == sorted(s.span_id for s in spans)
    assert grpc_sink.spans()[0].span == next(s for s in spans if s.span_id == grpc_sink.spans()[0].span_id)


def test_batches_stay_under_the_byte_limit_and_keep_traces_whole(start_daemon, grpc_sink):
    limit = 64 * 1024
    data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)})
    data["batch"] = {"timeout": "200ms", "send_batch_max_bytes": limit}
    daemon = start_daemon(data)
    traces = {}
    for _ in range(12):
        trace_id, spans = make_trace(spans=10)
        for span in spans:
            span.attributes.add(key="payload", value={"string_value": "x" * 1500})
        traces[trace_id] = spans
        grpc_export(daemon.grpc_endpoint, make_request(spans))
    grpc_sink.wait_for_spans(120)
    assert len(grpc_sink.requests) > 1
    assert max(grpc_sink.raw_sizes) <= limit
    for request in grpc_sink.requests:
        from tests.support import spans_of

        for trace_id in {s.trace_id for s in spans_of([request])}:
            assert sum(1 for s in spans_of([request]) if s.trace_id == trace_id) == 10


def test_a_trace_larger_than_the_byte_limit_is_split_at_span_boundaries(start_daemon, grpc_sink):
    limit = 16 * 1024
    data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)})
    data["batch"] = {"timeout": "100ms", "send_batch_max_bytes": limit}
    daemon = start_daemon(data)
    trace_id, spans = make_trace(spans=40, attributes=None)
    for span in spans:
        span.attributes.add(key="blob", value={"string_value": "y" * 1000})
    grpc_export(daemon.grpc_endpoint, make_request(spans))
    seen = grpc_sink.wait_for_spans(40)
    assert sorted(s.span_id for s in seen) == sorted(s.span_id for s in spans)
    assert max(grpc_sink.raw_sizes) <= limit
    assert len(grpc_sink.requests) >= 3


def test_shutdown_decides_buffered_traces_and_flushes(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, decision_wait="60s"))
    sent = set()
    for _ in range(20):
        trace_id, spans = make_trace(spans=3)
        sent.add(trace_id)
        grpc_export(daemon.grpc_endpoint, make_request(spans))
    assert grpc_sink.span_count() == 0
    daemon.stop()
    assert grpc_sink.trace_ids() == sent
    assert grpc_sink.span_count() == 60
    registry = daemon.daemon.metrics.registry
    assert (
        registry.get_sample_value("tail_sampler_traces_decided_total", {"decision": "kept", "trigger": "shutdown"})
        == 20
    )
    assert registry.get_sample_value("tail_sampler_ready") == 0


def test_admin_health_readiness_and_metric_names(start_daemon, grpc_sink):
    import requests

    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}))
    assert requests.get(daemon.admin_url + "/healthz", timeout=5).status_code == 200
    ready = requests.get(daemon.admin_url + "/readyz", timeout=5)
    assert ready.status_code == 200 and "2 receiver(s)" in ready.text
    names = daemon.scrape().names()
    for name in (
        "tail_sampler_window_traces",
        "tail_sampler_window_spans",
        "tail_sampler_window_bytes",
        "tail_sampler_decision_lag_seconds_bucket",
        "tail_sampler_exporter_queue_batches",
        "tail_sampler_exporter_queue_capacity_batches",
        "tail_sampler_ready",
    ):
        assert name in names, name


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_many_concurrent_sdk_clients(start_daemon, grpc_sink, protocol):
    """Several SDK clients at once, each on its own thread; nothing lost."""
    import threading

    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}))
    endpoint = daemon.grpc_endpoint if protocol == "grpc" else daemon.http_url
    ids: list[bytes] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        provider, tracer = sdk_tracer(endpoint, protocol, service=f"client-{n}")
        for _ in range(5):
            trace_id = emit_sdk_trace(tracer, children=1)
            with lock:
                ids.append(trace_id)
        provider.shutdown()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    grpc_sink.wait_for_spans(40)
    assert grpc_sink.trace_ids() == set(ids)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_sdk_exporters_with_gzip_compression(start_daemon, grpc_sink, protocol):
    from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}))
    if protocol == "grpc":
        exporter = GrpcExporter(endpoint=daemon.grpc_endpoint, insecure=True, compression=Compression.Gzip)
    else:
        from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression

        exporter = HttpExporter(endpoint=daemon.http_url, compression=HttpCompression.Gzip)
    provider = TracerProvider(resource=Resource.create({"service.name": "gzipped"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id = emit_sdk_trace(provider.get_tracer("tests"), children=2)
    provider.shutdown()
    spans = grpc_sink.wait_for_spans(3)
    assert {s.trace_id for s in spans} == {trace_id}
    assert {s.service for s in spans} == {"gzipped"}


def test_maximum_trace_size_bytes_holds_before_and_after_the_decision(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, maximum_trace_size_bytes=3000))

    def blob_spans(trace_id: bytes, count: int) -> list:
        return [make_span(trace_id, attributes={"blob": "b" * 500}) for _ in range(count)]

    big, _ = make_trace(spans=1)
    grpc_export(daemon.grpc_endpoint, make_request(blob_spans(big, 3)))
    grpc_export(daemon.grpc_endpoint, make_request(blob_spans(big, 3)))  # now past 3000 bytes: dropped at once
    kept, _ = make_trace(spans=1)
    grpc_export(daemon.grpc_endpoint, make_request(blob_spans(kept, 2)))
    grpc_sink.wait_for_spans(2)
    grpc_export(daemon.grpc_endpoint, make_request(blob_spans(kept, 1)))  # late, still under the cap
    grpc_sink.wait_for_spans(3)
    grpc_export(daemon.grpc_endpoint, make_request(blob_spans(kept, 4)))  # late, past the cap: not forwarded
    wait_until(lambda: daemon.scrape().value("tail_sampler_late_spans_total", decision="too_large") == 4)
    wait_until_exported(daemon, spans=3)
    assert grpc_sink.trace_ids() == {kept}
    assert grpc_sink.span_count() == 3
    assert daemon.scrape().value("tail_sampler_traces_dropped_too_large_total") == 1
