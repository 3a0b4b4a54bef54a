"""LogSplitter: log records naming a trace grouped per trace as framed bytes, the others apart."""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ScopeLogs

from sampler.config.exporters import BatchConfig
from sampler.forward.batcher import Batcher, Payload
from sampler.receive.split import BadRequest
from sampler.receive.split_logs import LogSplitter, parse_logs_json, parse_logs_protobuf
from sampler.telemetry.metrics import Metrics
from tests.support import kv


def logs_request(records: list[LogRecord], service: str = "svc") -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.append(kv("service.name", service))
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "test"
    scope_logs.log_records.extend(records)
    return request


def record(body: str, trace_id: bytes = b"") -> LogRecord:
    made = LogRecord(trace_id=trace_id, span_id=os.urandom(8) if trace_id else b"", severity_number=9)
    made.body.string_value = body
    return made


def bodies(scope_key: tuple[bytes, bytes], framed: bytes | bytearray) -> list[str]:
    """The bodies of framed LogRecord fields, read back through their ScopeLogs."""
    return [r.body.string_value for r in ScopeLogs.FromString(scope_key[1] + bytes(framed)).log_records]


def test_records_are_grouped_per_trace_and_untraced_ones_apart() -> None:
    first, second = os.urandom(16), os.urandom(16)
    records = [record("a", first), record("b"), record("c", second), record("d", first), record("e", bytes(16))]
    batch = LogSplitter().split(logs_request(records))
    assert set(batch.traces) == {first, second}
    assert batch.log_records == 3 and batch.untraced_log_count == 2 and batch.rejected_spans == 0
    trace = batch.traces[first]
    assert trace.span_count == 0 and trace.log_count == 2
    assert trace.logs is not None
    ((key, framed),) = trace.logs.items()
    assert bodies(key, framed) == ["a", "d"]
    assert trace.log_nbytes == sum(len(r.SerializeToString()) for r in (records[0], records[3]))
    ((untraced_key, untraced),) = batch.untraced_logs.items()
    assert bodies(untraced_key, untraced) == ["b", "e"]


def test_a_trace_id_of_another_length_is_refused() -> None:
    batch = LogSplitter().split(logs_request([record("a", b"\x01" * 8), record("b", os.urandom(16))]))
    assert batch.rejected_spans == 1 and "trace_id must be empty or 16 bytes" in batch.rejection_message
    assert batch.log_records == 1


def test_the_batcher_rebuilds_a_logs_request_byte_for_byte() -> None:
    trace_id = os.urandom(16)
    request = logs_request([record("a", trace_id), record("b", trace_id)])
    batch = LogSplitter().split(request)
    payloads: list[Payload] = []
    batcher = Batcher(BatchConfig(), payloads.append, Metrics())
    batcher.add(batch.traces[trace_id])
    batcher.flush()
    (payload,) = payloads
    assert payload.signal == "logs" and payload.span_count == 2
    assert ExportLogsServiceRequest.FromString(payload.data) == request


@settings(max_examples=200, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=2000) | st.builds(lambda r: logs_request([r]).SerializeToString(), st.builds(record, st.text()))
)
def test_any_bytes_give_a_request_or_a_clear_refusal(data: bytes) -> None:
    for parse in (parse_logs_protobuf, parse_logs_json):
        try:
            request = parse(data)
        except BadRequest as exc:
            assert str(exc)
            continue
        batch = LogSplitter().split(request)
        assert batch.log_records + batch.untraced_log_count + batch.rejected_spans == sum(
            len(scope.log_records) for resource in request.resource_logs for scope in resource.scope_logs
        )
