"""Decode OTLP log export requests: records naming a trace grouped per trace, to be held with it;
the others apart, to pass through.

OTLP frames a ResourceLogs, a ScopeLogs and their log records exactly as a ResourceSpans, a
ScopeSpans and their spans (same field numbers), so records are kept as the framed bytes they
arrived in and travel with their trace's spans through the window, the decision and the batcher.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from sampler.codecs import otlp_json
from sampler.receive.split import BadRequest
from sampler.spans.framing import TAG_SCOPE_SPAN, resource_prefix, scope_prefix, varint
from sampler.spans.trace import DecodedBatch, ScopeKey, TraceSpans

# ScopeLogs.log_records is field 2, length-delimited, as ScopeSpans.spans.
TAG_SCOPE_LOG_RECORD = TAG_SCOPE_SPAN
_ZERO_TRACE_ID = bytes(16)
_INTERN_LIMIT = 4096


def parse_logs_protobuf(data: bytes) -> ExportLogsServiceRequest:
    try:
        return ExportLogsServiceRequest.FromString(data)
    except DecodeError as exc:
        raise BadRequest(f"malformed protobuf ExportLogsServiceRequest: {exc}") from None


def parse_logs_json(data: bytes) -> ExportLogsServiceRequest:
    try:
        return otlp_json.logs_request_from_json(data)
    except ValueError as exc:
        raise BadRequest(f"malformed OTLP JSON logs request: {exc}") from None


class LogSplitter:
    """Splits log requests per trace; owns the intern table for their resource/scope prefixes."""

    def __init__(self) -> None:
        self._interned: dict[ScopeKey, ScopeKey] = {}

    def _intern(self, key: ScopeKey) -> ScopeKey:
        interned = self._interned.get(key)
        if interned is None:
            if len(self._interned) >= _INTERN_LIMIT:
                self._interned.clear()
            self._interned[key] = interned = key
        return interned

    def split(self, request: ExportLogsServiceRequest) -> DecodedBatch:
        """A record with a 16-byte trace ID, not all zero, joins its trace; one without a trace ID
        (or an all-zero one, as OTLP says an unset one may be sent) goes to `untraced_logs`; a
        trace ID of another length is refused (partial success)."""
        batch = DecodedBatch()
        traces = batch.traces
        untraced = batch.untraced_logs
        rejected = 0
        for resource_logs in request.resource_logs:
            resource = resource_prefix(
                resource_logs.resource.SerializeToString() if resource_logs.HasField("resource") else b"",
                resource_logs.schema_url,
            )
            for scope_logs in resource_logs.scope_logs:
                key = self._intern(
                    (
                        resource,
                        scope_prefix(
                            scope_logs.scope.SerializeToString() if scope_logs.HasField("scope") else b"",
                            scope_logs.schema_url,
                        ),
                    )
                )
                for record in scope_logs.log_records:
                    trace_id = record.trace_id
                    data = record.SerializeToString()
                    framed = TAG_SCOPE_LOG_RECORD + varint(len(data)) + data
                    if not trace_id or trace_id == _ZERO_TRACE_ID:
                        group = untraced.get(key)
                        if group is None:
                            untraced[key] = group = bytearray()
                        group += framed
                        batch.untraced_log_count += 1
                        continue
                    if len(trace_id) != 16:
                        rejected += 1
                        continue
                    trace = traces.get(trace_id)
                    if trace is None:
                        traces[trace_id] = trace = TraceSpans(trace_id)
                        trace.logs = {}
                    logs = trace.logs
                    assert logs is not None
                    group = logs.get(key)
                    if group is None:
                        logs[key] = group = bytearray()
                    group += framed
                    trace.log_count += 1
                    trace.log_nbytes += len(data)
                    batch.log_records += 1
        if rejected:
            batch.rejected_spans = rejected
            batch.rejection_message = f"{rejected} log record(s) rejected: a trace_id must be empty or 16 bytes"
        return batch
