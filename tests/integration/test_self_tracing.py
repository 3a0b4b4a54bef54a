"""telemetry.traces: the daemon traces its own decision and export batches to a real OTLP server."""

from __future__ import annotations

import time

import grpc

from tests.support import GrpcSink, config_dict, fast_retry, grpc_export, make_request, make_trace, wait_until

TRACES_PER_REQUEST = 20
REQUESTS = 10
SPANS_PER_TRACE = 3


def attribute(span, key: str):
    value = next(a.value for a in span.attributes if a.key == key)
    return getattr(value, value.WhichOneof("value"))


def send_traces(endpoint: str) -> None:
    for _ in range(REQUESTS):
        spans = []
        for _ in range(TRACES_PER_REQUEST):
            spans.extend(make_trace(spans=SPANS_PER_TRACE)[1])
        grpc_export(endpoint, make_request(spans))
        time.sleep(0.05)


def test_decision_and_export_batches_become_spans_of_the_daemon_own_traces(start_daemon, grpc_sink):
    telemetry_sink = GrpcSink()
    try:
        data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, decision_wait="100ms")
        data["telemetry"] = {"traces": {"endpoint": telemetry_sink.endpoint, "sample_ratio": 1.0}}
        daemon = start_daemon(data)
        send_traces(daemon.grpc_endpoint)
        traces_sent = REQUESTS * TRACES_PER_REQUEST
        grpc_sink.wait_for_spans(traces_sent * SPANS_PER_TRACE)

        def own_spans(name: str) -> list:
            return [seen.span for seen in telemetry_sink.spans() if seen.name == name]

        # The SDK's batch processor sends every few seconds.
        wait_until(
            lambda: sum(attribute(s, "tail_sampler.traces_decided") for s in own_spans("decide")) == traces_sent,
            timeout=30,
            interval=0.2,
            what="decide spans covering every trace",
        )
        wait_until(
            lambda: (
                sum(attribute(s, "tail_sampler.spans") for s in own_spans("export")) == traces_sent * SPANS_PER_TRACE
            ),
            timeout=30,
            interval=0.2,
            what="export spans covering every kept span",
        )
        seen = telemetry_sink.spans()
        assert {s.service for s in seen} == {"tail-sampler"}
        assert all(attribute(s, "tail_sampler.exporter") == "otlp" for s in own_spans("export"))
        # Batches, not spans: far fewer of the daemon's own spans than spans it handled.
        assert len(seen) < traces_sent
    finally:
        telemetry_sink.close()


def test_a_failed_export_attempt_is_an_event_of_its_batch_span(start_daemon):
    failing_sink = GrpcSink(failures=[(grpc.StatusCode.UNAVAILABLE, None)])
    telemetry_sink = GrpcSink()
    try:
        data = config_dict({"otlp": fast_retry(failing_sink.endpoint)}, decision_wait="100ms")
        data["telemetry"] = {"traces": {"endpoint": telemetry_sink.endpoint}}
        daemon = start_daemon(data)
        grpc_export(daemon.grpc_endpoint, make_request(make_trace(spans=2)[1]))
        failing_sink.wait_for_spans(2)
        export = wait_until(
            lambda: [s.span for s in telemetry_sink.spans() if s.name == "export"], timeout=30, interval=0.2
        )[0]
        assert [(e.name, attribute(e, "reason")) for e in export.events] == [("export attempt failed", "unavailable")]
    finally:
        failing_sink.close()
        telemetry_sink.close()


def test_sample_ratio_zero_sends_nothing_and_no_telemetry_section_means_no_tracer(start_daemon, grpc_sink):
    telemetry_sink = GrpcSink()
    try:
        data = config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, decision_wait="100ms")
        data["telemetry"] = {"traces": {"endpoint": telemetry_sink.endpoint, "sample_ratio": 0}}
        daemon = start_daemon(data)
        send_traces(daemon.grpc_endpoint)
        grpc_sink.wait_for_spans(REQUESTS * TRACES_PER_REQUEST * SPANS_PER_TRACE)
        daemon.stop()  # flushes the SDK: whatever it had would be sent now
        assert telemetry_sink.attempts == 0
    finally:
        telemetry_sink.close()
    plain = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}))
    assert plain.daemon.self_tracing is None
    assert all(exporter.tracer is None for exporter in plain.daemon.exporters)
