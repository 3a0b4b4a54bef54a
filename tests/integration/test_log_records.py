"""Log records follow their trace's decision, end to end: the OpenTelemetry SDK's log and trace
exporters (gRPC and HTTP) into the daemon, real OTLP sinks (gRPC and HTTP) behind it. The same
traffic checks the span metrics: counted from every span, exemplars naming kept traces only."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
import requests
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from tests.support import (
    DaemonThread,
    config_dict,
    fast_retry,
    http_export,
    wait_until,
)

TRACES = 300
UNTRACED = 50
ERROR_EVERY = 5  # every fifth trace fails: kept by the errors policy, the others dropped
ERRORS = {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}


class Client:
    """One service's SDK pipeline: its spans and its log records over one OTLP transport."""

    def __init__(self, daemon: DaemonThread, protocol: str, name: str) -> None:
        resource = Resource.create({"service.name": f"shop-{protocol}"})
        if protocol == "grpc":
            spans: Any = GrpcSpanExporter(endpoint=daemon.grpc_endpoint, insecure=True)
            logs: Any = GrpcLogExporter(endpoint=daemon.grpc_endpoint, insecure=True)
        else:
            spans = HttpSpanExporter(endpoint=daemon.http_url)
            logs = HttpLogExporter(endpoint=daemon.http_logs_url)
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(spans))
        self.tracer = self.tracer_provider.get_tracer(name)
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs))
        # The SDK's logs API, which log appenders call: a record takes the active span's context.
        self.logger = self.logger_provider.get_logger(name)

    def log(self, body: str, severity: SeverityNumber = SeverityNumber.INFO) -> None:
        self.logger.emit(body=body, severity_number=severity, severity_text=severity.name)

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()

    def close(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


def metric(daemon: DaemonThread, name: str, **labels: str) -> float:
    return daemon.scrape().value(name, **labels)


def test_log_records_follow_their_traces_decision(start_daemon, grpc_sink, http_sink):
    exporters = {"otlp": fast_retry(grpc_sink.endpoint), "otlphttp": fast_retry(http_sink.endpoint, "otlphttp")}
    daemon = start_daemon(config_dict(exporters, [ERRORS], decision_wait="1s", num_traces=5000))
    clients = {protocol: Client(daemon, protocol, protocol) for protocol in ("grpc", "http")}
    contexts: dict[bytes, tuple[SpanContext, Client]] = {}
    kept_ids: set[bytes] = set()
    try:
        for index in range(TRACES):
            client = clients["grpc" if index % 2 else "http"]
            with client.tracer.start_as_current_span("GET /order") as root:
                client.log(f"order {index} received")
                with client.tracer.start_as_current_span("charge") as charge:
                    client.log(f"charging order {index}", SeverityNumber.WARN)
                    if index % ERROR_EVERY == 0:
                        charge.set_status(Status(StatusCode.ERROR, "card declined"))
            trace_id = root.get_span_context().trace_id.to_bytes(16, "big")
            contexts[trace_id] = (root.get_span_context(), client)
            if index % ERROR_EVERY == 0:
                kept_ids.add(trace_id)
        for index in range(UNTRACED):  # outside any span: no trace context
            clients["grpc" if index % 2 else "http"].log(f"untraced {index}")
        for client in clients.values():
            client.flush()

        wait_until(
            lambda: metric(daemon, "tail_sampler_traces_decided_total") >= TRACES, timeout=30, what="every decision"
        )
        # Late records: after the decision, each follows it through the decision cache.
        late_kept = sorted(kept_ids)[:10]
        late_dropped = sorted(set(contexts) - kept_ids)[:10]
        for trace_id in late_kept + late_dropped:
            context, client = contexts[trace_id]
            with trace.use_span(NonRecordingSpan(context)):
                client.log(f"late news about {trace_id.hex()}", SeverityNumber.ERROR)
        for client in clients.values():
            client.flush()
    finally:
        for client in clients.values():
            client.close()

    kept_records = len(kept_ids) * 2 + len(late_kept)

    def settled() -> bool:
        scrape = daemon.scrape()
        outcomes = {
            outcome: scrape.value("tail_sampler_log_records_total", outcome=outcome)
            for outcome in ("kept", "dropped", "late_kept", "late_dropped", "passed_through")
        }
        sent = {
            exporter: scrape.value("tail_sampler_exporter_sent_log_records_total", exporter=exporter)
            for exporter in exporters
        }
        return outcomes == {
            "kept": len(kept_ids) * 2,
            "dropped": (TRACES - len(kept_ids)) * 2,
            "late_kept": len(late_kept),
            "late_dropped": len(late_dropped),
            "passed_through": UNTRACED,
        } and all(value == kept_records + UNTRACED for value in sent.values())

    wait_until(settled, timeout=30, what="every log record decided and delivered to both sinks")
    assert metric(daemon, "tail_sampler_received_log_records_total") == TRACES * 2 + UNTRACED + 20

    for sink in (grpc_sink, http_sink):
        records = sink.log_records()
        traced = [record for record in records if record.trace_id]
        assert len(records) == kept_records + UNTRACED
        assert {record.trace_id for record in traced} == kept_ids  # every kept trace, no dropped one
        assert sum(record.body.startswith("late news") for record in traced) == len(late_kept)
        assert sum(record.body.startswith("untraced") for record in records) == UNTRACED
        late = [record for record in traced if record.body.startswith("late news")]
        assert all(record.scope_attributes.get("tailsampling.cached_decision") is True for record in late)
        on_time = [record for record in traced if not record.body.startswith("late news")]
        assert all(record.scope_attributes.get("tailsampling.policy") == "errors" for record in on_time)
        # The kept traces' spans went the same way.
        assert {span.trace_id for span in sink.spans()} == kept_ids

    # Span metrics count every span sent, kept or not; exemplars name kept traces only.
    calls, exemplars = span_metrics_scrape(daemon)
    assert sum(calls.values()) == TRACES * 2
    errors = sum(value for labels, value in calls.items() if dict(labels)["status_code"] == "STATUS_CODE_ERROR")
    assert errors == len(kept_ids)  # one failed "charge" span per error trace
    assert {dict(labels)["service_name"] for labels in calls} == {"shop-grpc", "shop-http"}
    assert exemplars, "no exemplar in the OpenMetrics scrape"
    received = {span.trace_id.hex() for span in grpc_sink.spans()}
    assert {exemplar["trace_id"] for exemplar in exemplars} <= received


def span_metrics_scrape(daemon: DaemonThread) -> tuple[dict[tuple[tuple[str, str], ...], float], list[dict[str, str]]]:
    """traces_span_metrics_calls_total per series, and every exemplar's labels, from the
    OpenMetrics exposition (the one that carries exemplars), read by prometheus-client's parser."""
    reply = requests.get(
        daemon.admin_url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=5
    )
    assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
    calls: dict[tuple[tuple[str, str], ...], float] = {}
    exemplars = []
    for family in openmetrics_families(reply.text):
        for sample in family.samples:
            if sample.name == "traces_span_metrics_calls_total":
                calls[tuple(sorted(sample.labels.items()))] = sample.value
            if sample.name.startswith("traces_span_metrics_") and sample.exemplar is not None:
                exemplars.append(dict(sample.exemplar.labels))
    return calls, exemplars


@pytest.mark.parametrize("content_type", ["application/x-protobuf", "application/json"])
def test_logs_over_http_protobuf_or_json_and_gzip(start_daemon, grpc_sink, content_type):
    from sampler.codecs.otlp_json import logs_request_to_json

    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, decision_wait="200ms"))
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    record = resource_logs.scope_logs.add().log_records.add()
    record.body.string_value = "hello"
    record.trace_id = b"\x01" * 16
    untraced = resource_logs.scope_logs[0].log_records.add()
    untraced.body.string_value = "no trace"
    body = logs_request_to_json(request).encode() if content_type == "application/json" else request.SerializeToString()
    response = http_export(daemon.http_logs_url, body, content_type=content_type, gzipped=True)
    assert response.status_code == 200, response.text
    wait_until(lambda: len(grpc_sink.log_records()) == 2, what="both records at the sink")
    assert sorted(record.body for record in grpc_sink.log_records()) == ["hello", "no trace"]


def test_bad_log_requests_get_a_clear_refusal(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}))
    response = http_export(daemon.http_logs_url, b"\xff\xff not protobuf")
    assert response.status_code == 400
    assert "malformed protobuf ExportLogsServiceRequest" in response.text
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.trace_id = b"\x01" * 5
    reply = http_export(daemon.http_logs_url, request.SerializeToString())
    assert reply.status_code == 200
    assert b"a trace_id must be empty or 16 bytes" in reply.content
    assert metric(daemon, "tail_sampler_rejected_log_records_total", reason="invalid_id") == 1


def test_untraced_records_can_be_dropped(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}, untraced_logs="drop"))
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "no trace"
    assert http_export(daemon.http_logs_url, request.SerializeToString()).status_code == 200
    wait_until(lambda: metric(daemon, "tail_sampler_log_records_total", outcome="untraced_dropped") == 1)
    assert metric(daemon, "tail_sampler_exporter_sent_log_records_total") == 0


def test_the_file_exporter_writes_log_lines_and_zipkin_counts_them_unsupported(start_daemon, tmp_path):
    path = tmp_path / "out.jsonl"
    exporters = {"file": {"path": str(path)}, "zipkin": {"endpoint": "http://127.0.0.1:9/api/v2/spans"}}
    daemon = start_daemon(config_dict(exporters, decision_wait="100ms"))
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add(trace_id=b"\x02" * 16)
    record.body.string_value = "kept with its trace"
    assert http_export(daemon.http_logs_url, request.SerializeToString()).status_code == 200
    wait_until(
        lambda: (
            metric(daemon, "tail_sampler_exporter_sent_log_records_total", exporter="file") == 1
            and metric(
                daemon, "tail_sampler_exporter_dropped_log_records_total", exporter="zipkin", reason="unsupported"
            )
            == 1
        ),
        what="the record written to the file and refused by zipkin",
    )
    (line,) = path.read_text().splitlines()
    assert '"resourceLogs"' in line and '"traceId":"02020202020202020202020202020202"' in line


def test_a_malformed_grpc_logs_request_is_invalid_argument(start_daemon, grpc_sink):
    daemon = start_daemon(config_dict({"otlp": fast_retry(grpc_sink.endpoint)}))
    with grpc.insecure_channel(daemon.grpc_endpoint) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
        with pytest.raises(grpc.RpcError) as refused:
            export(b"\xff\xff not protobuf", timeout=10)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed protobuf ExportLogsServiceRequest" in (refused.value.details() or "")
