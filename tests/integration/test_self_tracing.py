"""telemetry.traces: the daemon traces its own decision and export batches to a real OTLP server."""

from __future__ import annotations

import os
import time

import grpc
import yaml

from tests.certs import CertificateAuthority
from tests.integration.test_cli import DaemonProcess, cli, write_config
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


# --- the OpenTelemetry SDK's environment variables, through the real command ------------------


def _own_resources(sink: GrpcSink) -> list[dict[str, str]]:
    with sink.lock:
        requests = list(sink.requests)
    return [
        {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        for request in requests
        for resource_spans in request.resource_spans
    ]


def _run_traced(tmp_path, traces: dict, environ: dict[str, str], telemetry_sink: GrpcSink) -> list[dict[str, str]]:
    data_sink = GrpcSink()
    try:
        data = config_dict({"otlp": fast_retry(data_sink.endpoint)}, decision_wait="100ms")
        data["telemetry"] = {"traces": traces}
        path, ports = write_config(tmp_path, data)
        clean = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        daemon = DaemonProcess(path, ports["admin"], env={**clean, "OTEL_BSP_SCHEDULE_DELAY": "100", **environ})
        try:
            send_traces(f"127.0.0.1:{ports['grpc']}")
            resources = wait_until(lambda: _own_resources(telemetry_sink), timeout=30, interval=0.2)
            code, output = daemon.terminate()
        finally:
            daemon.kill()
        assert code == 0, output
        return resources
    finally:
        data_sink.close()


def test_self_tracing_takes_its_endpoint_tls_and_resource_from_the_otel_variables(tmp_path):
    authority = CertificateAuthority(tmp_path / "pki")
    server = authority.issue("telemetry-backend", server=True)
    telemetry_sink = GrpcSink(tls=(str(server.cert_file), str(server.key_file)))
    try:
        resources = _run_traced(
            tmp_path,
            {},  # no endpoint in the file: the variables give it
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"https://127.0.0.1:{telemetry_sink.port}",
                "OTEL_EXPORTER_OTLP_CERTIFICATE": str(authority.cert_file),
                "OTEL_SERVICE_NAME": "edge-sampler",
                "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging,service.namespace=observability",
            },
            telemetry_sink,
        )
    finally:
        telemetry_sink.close()
    assert {resource["service.name"] for resource in resources} == {"edge-sampler"}
    assert all(resource["deployment.environment.name"] == "staging" for resource in resources)
    assert all(resource["service.namespace"] == "observability" for resource in resources)
    assert all(resource["service.version"] for resource in resources)


def test_a_bare_host_port_speaks_tls_when_the_insecure_variable_says_false(tmp_path):
    authority = CertificateAuthority(tmp_path / "pki")
    server = authority.issue("telemetry-backend", server=True)
    telemetry_sink = GrpcSink(tls=(str(server.cert_file), str(server.key_file)))
    try:
        resources = _run_traced(
            tmp_path,
            {"endpoint": f"127.0.0.1:{telemetry_sink.port}"},
            {"OTEL_EXPORTER_OTLP_INSECURE": "false", "OTEL_EXPORTER_OTLP_CERTIFICATE": str(authority.cert_file)},
            telemetry_sink,
        )
    finally:
        telemetry_sink.close()
    # Without OTEL_SERVICE_NAME the daemon names itself.
    assert {resource["service.name"] for resource in resources} == {"tail-sampler"}


def test_self_tracing_without_an_endpoint_anywhere_is_a_config_error(tmp_path):
    data = config_dict({"file": {"path": str(tmp_path / "out.jsonl")}})
    data["telemetry"] = {"traces": {"sample_ratio": 0.5}}
    path = tmp_path / "traced.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    line = path.read_text().splitlines().index("  traces:") + 1
    clean = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    result = cli("check", "--config", str(path), env=clean)
    assert result.returncode == 2
    assert (
        f"{path}:{line}: telemetry.traces.endpoint: not set, and neither is OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "
        "nor OTEL_EXPORTER_OTLP_ENDPOINT: set one of them"
    ) in result.stderr
    with_variable = cli("check", "--config", str(path), env={**clean, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})
    assert with_variable.returncode == 0, with_variable.stderr
