"""Decode OTLP export requests into per-trace batches of serialized spans: the protobuf-object
path (every format), and what the wire-level splitter (wire_split.py) shares with it."""

from __future__ import annotations

import sys
from typing import NamedTuple

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.codecs import otlp_json
from sampler.config.receivers import SpanLimitsConfig
from sampler.spans.fields import SpanFields
from sampler.spans.framing import TAG_SCOPE_SPAN, resource_prefix, scope_prefix, varint
from sampler.spans.trace import DecodedBatch, ScopeKey, TraceSpans
from sampler.telemetry.span_metrics import service_name

_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
_STATUS_CODE_ERROR = 2
# Resource and scope prefixes repeat across requests from the same service;
# interning them lets every buffered trace share one copy.
INTERN_LIMIT = 4096
INVALID_IDS = "trace_id must be 16 bytes and span_id 8 bytes, not all zero"


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


def intern_key(interned: dict[ScopeKey, ScopeKey], key: ScopeKey) -> ScopeKey:
    """The one copy of `key` in `interned` (a splitter's table, emptied when it grows past
    INTERN_LIMIT): spans and log records under the same resource and scope share it."""
    found = interned.get(key)
    if found is None:
        if len(interned) >= INTERN_LIMIT:
            interned.clear()
        interned[key] = found = key
    return found


class SpanCap(NamedTuple):
    """The most spans one request may bring; the others are refused (partial success) for
    `reason` (the rejected_spans metric's label), with `advice` in the message."""

    spans: int
    reason: str
    advice: str


def max_spans_cap(max_spans_per_request: int) -> SpanCap | None:
    if not max_spans_per_request:
        return None
    return SpanCap(
        max_spans_per_request,
        "max_spans_per_request",
        f"the request holds more than max_spans_per_request ({max_spans_per_request}) spans; send smaller batches",
    )


class ReceiveLimits:
    """A receiver's input limits, as both splitters apply them: spans past `cap` are refused,
    and spans over the span limits are trimmed and re-encoded."""

    __slots__ = ("cap", "limited", "count_limit", "length_limit")

    def __init__(self, max_spans_per_request: int = 0, span_limits: SpanLimitsConfig | None = None) -> None:
        self.cap = max_spans_cap(max_spans_per_request)
        limits = span_limits or SpanLimitsConfig()
        self.limited = limits.attribute_count_limit is not None or limits.attribute_value_length_limit is not None
        # Off means a bound no span reaches, so one comparison per span decides.
        self.count_limit = sys.maxsize if limits.attribute_count_limit is None else limits.attribute_count_limit
        self.length_limit = (
            sys.maxsize if limits.attribute_value_length_limit is None else limits.attribute_value_length_limit
        )


_UINT32_MAX = 0xFFFFFFFF


def apply_span_limits(span: Span, data: bytes, batch: DecodedBatch, limits: ReceiveLimits) -> bytes:
    """The span's bytes after the span limits; re-encoded only if a limit changed it."""
    changed = False
    excess = len(span.attributes) - limits.count_limit
    if excess > 0:
        del span.attributes[limits.count_limit :]
        # A uint32 on the wire: a count already at its top stays there (protobuf refuses more).
        span.dropped_attributes_count = min(span.dropped_attributes_count + excess, _UINT32_MAX)
        batch.dropped_attributes += excess
        changed = True
    if len(data) > limits.length_limit:
        truncated = _truncate_values(span, limits.length_limit)
        if truncated:
            batch.truncated_values += truncated
            changed = True
    return span.SerializeToString() if changed else data


def finish_batch(batch: DecodedBatch, accepted: int, rejected: int, over_cap: int, cap: SpanCap | None) -> None:
    """A split batch's counts and rejection message: `rejected` spans with invalid IDs (their
    traces, left empty, removed), `over_cap` spans past the request's cap."""
    batch.span_count = accepted
    if rejected:
        traces = batch.traces
        for trace_id in [tid for tid, trace in traces.items() if not trace.span_count]:
            del traces[trace_id]
        batch.rejected_spans = rejected
        batch.rejection_message = f"{rejected} span(s) rejected: {INVALID_IDS}"
    if over_cap and cap is not None:
        batch.over_limit_spans = over_cap
        batch.over_limit_reason = cap.reason
        batch.rejected_spans += over_cap
        over = f"{over_cap} span(s) rejected: {cap.advice}"
        batch.rejection_message = f"{batch.rejection_message}; {over}" if batch.rejection_message else over


class RequestSplitter:
    """Splits parsed requests per trace; owns the intern table for resource/scope prefixes,
    and applies the receiver's input limits (ReceiveLimits)."""

    def __init__(self, max_spans_per_request: int = 0, span_limits: SpanLimitsConfig | None = None) -> None:
        self.scope_keys: dict[ScopeKey, ScopeKey] = {}
        self.limits = ReceiveLimits(max_spans_per_request, span_limits)

    def split(
        self, request: ExportTraceServiceRequest, cap: SpanCap | None = None, fields: SpanFields | None = None
    ) -> DecodedBatch:
        """The request split per trace (`cap` in place of max_spans_per_request's); with `fields`,
        what the span metrics count by is gathered from every accepted span."""
        batch = DecodedBatch()
        traces = batch.traces
        rejected = 0
        accepted = 0
        limits = self.limits
        if cap is None:
            cap = limits.cap
        over_cap = _drop_spans_past(request, cap.spans) if cap is not None else 0
        scope_keys = self.scope_keys
        limited = limits.limited
        count_limit = limits.count_limit
        length_limit = limits.length_limit
        for resource_spans in request.resource_spans:
            resource = resource_prefix(
                resource_spans.resource.SerializeToString() if resource_spans.HasField("resource") else b"",
                resource_spans.schema_url,
            )
            service = "" if fields is None else service_name(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                key = intern_key(
                    scope_keys,
                    (
                        resource,
                        scope_prefix(
                            scope_spans.scope.SerializeToString() if scope_spans.HasField("scope") else b"",
                            scope_spans.schema_url,
                        ),
                    ),
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
                    start = span.start_time_unix_nano
                    end = span.end_time_unix_nano
                    status_code = span.status.code
                    if fields is not None:
                        fields.add(service, span.name, span.kind, status_code, start, end)
                    data = span.SerializeToString()
                    # A span no longer than the length limit cannot hold a longer value.
                    if limited and (len(data) > length_limit or len(span.attributes) > count_limit):
                        data = apply_span_limits(span, data, batch, limits)
                    spans = trace.groups.get(key)
                    if spans is None:
                        trace.groups[key] = spans = bytearray()
                    size = len(data)
                    spans += TAG_SCOPE_SPAN
                    spans += varint(size)
                    spans += data
                    trace.span_count += 1
                    trace.nbytes += size
                    if start and (start < trace.start_min or not trace.start_min):
                        trace.start_min = start
                    if end > trace.end_max:
                        trace.end_max = end
                    if not span.parent_span_id:
                        trace.root_seen = True
                    if status_code == _STATUS_CODE_ERROR:
                        trace.error_seen = True
                    accepted += 1
        finish_batch(batch, accepted, rejected, over_cap, cap)
        return batch


def _drop_spans_past(request: ExportTraceServiceRequest, limit: int) -> int:
    """Remove the spans after the first `limit`; how many were removed."""
    kept = 0
    removed = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            spans = scope_spans.spans
            room = limit - kept
            if len(spans) > room:
                removed += len(spans) - room
                del spans[room:]
            kept += len(spans)
    return removed


def _truncate_values(span: Span, limit: int) -> int:
    """Truncate string and bytes attribute values of the span, its events and links to `limit`
    characters (bytes), inside arrays and key-value lists too; how many values were truncated.

    Walks with an explicit stack: AnyValues nest as deep as the parser allowed."""
    pending: list[AnyValue] = [attribute.value for attribute in span.attributes]
    for event in span.events:
        pending.extend(attribute.value for attribute in event.attributes)
    for link in span.links:
        pending.extend(attribute.value for attribute in link.attributes)
    truncated = 0
    while pending:
        value = pending.pop()
        kind = value.WhichOneof("value")
        if kind == "string_value":
            if len(value.string_value) > limit:
                value.string_value = value.string_value[:limit]
                truncated += 1
        elif kind == "bytes_value":
            if len(value.bytes_value) > limit:
                value.bytes_value = value.bytes_value[:limit]
                truncated += 1
        elif kind == "array_value":
            pending.extend(value.array_value.values)
        elif kind == "kvlist_value":
            pending.extend(entry.value for entry in value.kvlist_value.values)
    return truncated
