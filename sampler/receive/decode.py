"""Decode OTLP export requests into per-trace batches of serialized spans."""

from __future__ import annotations

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sampler import otlp_json
from sampler.model import DecodedBatch, ScopeKey, TraceSpans
from sampler.wire import TAG_SCOPE_SPAN, resource_prefix, scope_prefix, varint

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
_STATUS_CODE_ERROR = 2
# Resource and scope prefixes repeat across requests from the same service;
# interning them lets every buffered trace share one copy.
_INTERN_LIMIT = 4096


class BadRequest(ValueError):
    """The request body is not a valid OTLP export request."""


def parse_protobuf(data: bytes) -> ExportTraceServiceRequest:
    try:
        return ExportTraceServiceRequest.FromString(data)
    except DecodeError as exc:
        raise BadRequest(f"malformed protobuf ExportTraceServiceRequest: {exc}") from None


def parse_json(data: bytes) -> ExportTraceServiceRequest:
    try:
        return otlp_json.request_from_json(data)
    except ValueError as exc:
        raise BadRequest(f"malformed OTLP JSON request: {exc}") from None


class RequestSplitter:
    """Splits requests per trace; owns the intern table for resource/scope prefixes."""

    def __init__(self) -> None:
        self._interned: dict[ScopeKey, ScopeKey] = {}

    def _intern(self, key: ScopeKey) -> ScopeKey:
        interned = self._interned.get(key)
        if interned is None:
            if len(self._interned) >= _INTERN_LIMIT:
                self._interned.clear()
            self._interned[key] = interned = key
        return interned

    def split(self, request: ExportTraceServiceRequest) -> DecodedBatch:
        batch = DecodedBatch()
        traces = batch.traces
        rejected = 0
        accepted = 0
        for resource_spans in request.resource_spans:
            resource = resource_prefix(
                resource_spans.resource.SerializeToString() if resource_spans.HasField("resource") else b"",
                resource_spans.schema_url,
            )
            for scope_spans in resource_spans.scope_spans:
                key = self._intern(
                    (
                        resource,
                        scope_prefix(
                            scope_spans.scope.SerializeToString() if scope_spans.HasField("scope") else b"",
                            scope_spans.schema_url,
                        ),
                    )
                )
                for span in scope_spans.spans:
                    trace_id = span.trace_id
                    trace = traces.get(trace_id)
                    if trace is None:
                        # A trace ID is checked once per request, when first seen.
                        if len(trace_id) != 16 or trace_id == _ZERO_TRACE_ID:
                            rejected += 1
                            continue
                        traces[trace_id] = trace = TraceSpans(trace_id)
                    span_id = span.span_id
                    if len(span_id) != 8 or span_id == _ZERO_SPAN_ID:
                        rejected += 1
                        continue
                    data = span.SerializeToString()
                    spans = trace.groups.get(key)
                    if spans is None:
                        trace.groups[key] = spans = bytearray()
                    size = len(data)
                    spans += TAG_SCOPE_SPAN
                    spans += varint(size)
                    spans += data
                    trace.span_count += 1
                    trace.nbytes += size
                    start = span.start_time_unix_nano
                    if start and (start < trace.start_min or not trace.start_min):
                        trace.start_min = start
                    end = span.end_time_unix_nano
                    if end > trace.end_max:
                        trace.end_max = end
                    if not span.parent_span_id:
                        trace.root_seen = True
                    if span.status.code == _STATUS_CODE_ERROR:
                        trace.error_seen = True
                    accepted += 1
        batch.span_count = accepted
        if rejected:
            for trace_id in [tid for tid, trace in traces.items() if not trace.span_count]:
                del traces[trace_id]
            batch.rejected_spans = rejected
            batch.rejection_message = (
                f"{rejected} span(s) rejected: trace_id must be 16 bytes and span_id 8 bytes, not all zero"
            )
        return batch
