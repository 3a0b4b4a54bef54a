"""Split a serialized OTLP export request per trace without parsing it into objects.

`WireSplitter.split(data)` returns the `DecodedBatch` that
`RequestSplitter.split(parse_protobuf(data))` returns, byte for byte, or raises the
same `BadRequest`. Spans are sliced out of the request as they arrived: the walker
(sampler.receive.wire_check) proves each one canonical, i.e. equal to what the
protobuf path would re-encode. What it cannot vouch for goes the protobuf way:
a non-canonical span is re-encoded by upb on its own; anything malformed or
unusual (groups, a repeated resource, deep nesting) sends the whole request to
the protobuf path, which rejects it with its own message or splits it.

With a `SpanFields` to fill, it also gathers what the span metrics count by (service,
name, kind, status code, duration) of every accepted span, so they need not read the
spans again.

Written for mypyc: compiled (setup.py, `COMPILED`), it costs a fraction of the protobuf
path; as plain Python, several times more, so the receivers use it only when compiled
(receive/bounds.py).
"""

from __future__ import annotations

import time
from typing import Final

from google.protobuf.message import DecodeError
from mypy_extensions import i64
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sampler.config.receivers import SpanLimitsConfig
from sampler.receive.split import (
    ReceiveLimits,
    RequestSplitter,
    SpanCap,
    apply_span_limits,
    finish_batch,
    intern_key,
    parse_protobuf,
)
from sampler.receive.wire_check import (
    LEN,
    SpanScan,
    Unsupported,
    check_resource,
    check_scope,
    read_length,
    read_tag,
    scan_span,
    skip_unknown,
    string_field,
)
from sampler.spans.fields import SpanFields
from sampler.spans.framing import TAG_SCOPE_SPAN, resource_prefix, scope_prefix, varint
from sampler.spans.trace import DecodedBatch, ScopeKey, TraceSpans

# Whether this module runs compiled (mypyc, see setup.py): a compiled module is an extension
# module. As plain Python the walker costs several times the protobuf path; compiled, a fraction.
COMPILED: Final = not __file__.endswith(".py")
_ZERO_TRACE_ID: Final = bytes(16)
_STATUS_CODE_ERROR: Final = 2
_FIELD_1: Final = 1 << 3 | LEN  # resource_spans / resource / scope
_FIELD_2: Final = 2 << 3 | LEN  # scope_spans / spans
_FIELD_3: Final = 3 << 3 | LEN  # schema_url
_SERVICE_NAME_KEY: Final = b"\x0a\x0cservice.name"
# Message depth of a span below the request: request > ResourceSpans > ScopeSpans > Span.
_SPAN_DEPTH: Final = 3
# Every this many spans, the walker lets another thread have the interpreter: compiled code
# never does by itself, and a large request may be split in a thread beside the event loop.
_SPANS_PER_PAUSE: Final = 4096
_NO_CAP: Final = 1 << 62


def scan_head(data: bytes, pos: i64, end: i64) -> tuple[i64, i64, str, i64]:
    """The head of a ResourceSpans or a ScopeSpans, which share their shape: field 1 the resource
    or scope (at most once), field 2 the repeated children, field 3 the schema URL (at most
    once; the parser would merge or replace repeats, so those go to it). The head may follow
    the children on the wire. Returns (head start or -1, head end, schema URL, first child or -1)."""
    head_start: i64 = -1
    head_end: i64 = 0
    schema_url = ""
    heads = 0
    schema_urls = 0
    first_child: i64 = -1
    while pos < end:
        tag, after, _ = read_tag(data, pos, end)
        if tag == _FIELD_1:
            head_start, head_end, _ = read_length(data, after, end)
            heads += 1
            pos = head_end
        elif tag == _FIELD_2:
            if first_child < 0:
                first_child = pos
            _, pos, _ = read_length(data, after, end)
        elif tag == _FIELD_3:
            url_start, pos, _ = string_field(data, after, end, LEN)
            schema_url = data[url_start:pos].decode("utf-8")
            schema_urls += 1
        elif tag >> 3 <= 3:
            raise Unsupported
        else:
            pos = skip_unknown(data, after, end, tag & 7)
    if heads > 1 or schema_urls > 1:
        raise Unsupported
    return head_start, head_end, schema_url, first_child


class WireSplitter:
    """`RequestSplitter` for serialized requests: same limits, same results, far less CPU.
    Holds no state of a request, so requests may be split in several threads at once."""

    def __init__(self, max_spans_per_request: int = 0, span_limits: SpanLimitsConfig | None = None) -> None:
        # The protobuf path: for requests the walker leaves to it; its limits and intern table are shared.
        self.protobuf = RequestSplitter(max_spans_per_request, span_limits)
        self.limits: ReceiveLimits = self.protobuf.limits
        # How often the walker handed a request or a span to upb (for benchmarks and tests).
        self.protobuf_requests = 0
        self.reencoded_spans = 0

    def split(self, data: bytes, fields: SpanFields | None = None, cap: SpanCap | None = None) -> DecodedBatch:
        """The request split per trace (`cap` in place of max_spans_per_request's); raises
        BadRequest as parse_protobuf does."""
        if cap is None:
            cap = self.limits.cap
        try:
            return _Walk(self, data, fields, cap).run()
        except Unsupported:
            pass
        self.protobuf_requests += 1
        if fields is not None:
            fields.clear()
        return self.protobuf.split(parse_protobuf(data), cap, fields)


class _Walk:
    """One request on its way through the walker."""

    def __init__(self, splitter: WireSplitter, data: bytes, fields: SpanFields | None, cap: SpanCap | None) -> None:
        self.splitter = splitter
        self.data = data
        self.fields = fields
        self.cap = cap
        self.max_spans: i64 = _NO_CAP if cap is None else cap.spans
        limits = splitter.limits
        self.limited = limits.limited
        self.count_limit: i64 = limits.count_limit
        self.length_limit: i64 = limits.length_limit
        self.scope_keys = splitter.protobuf.scope_keys
        self.batch = DecodedBatch()
        self.scan = SpanScan()
        # Spans seen (for the cap), past the cap, rejected for their IDs, accepted.
        self.seen: i64 = 0
        self.over_cap: i64 = 0
        self.rejected: i64 = 0
        self.accepted: i64 = 0

    def run(self) -> DecodedBatch:
        data = self.data
        end: i64 = len(data)
        pos: i64 = 0
        while pos < end:
            tag, after, _ = read_tag(data, pos, end)
            if tag == _FIELD_1:
                start, pos, _ = read_length(data, after, end)
                self.resource_spans(start, pos)
            elif tag >> 3 == 1:
                raise Unsupported
            else:
                pos = skip_unknown(data, after, end, tag & 7)
        batch = self.batch
        finish_batch(batch, self.accepted, self.rejected, self.over_cap, self.cap)
        return batch

    def resource_spans(self, pos: i64, end: i64) -> None:
        data = self.data
        resource_start, resource_end, schema_url, first_scope = scan_head(data, pos, end)
        resource = b""
        service = b""
        if resource_start >= 0:
            if check_resource(data, resource_start, resource_end, 2):
                resource = data[resource_start:resource_end]
            else:
                resource = _reencode(Resource, data[resource_start:resource_end])
            if self.fields is not None:
                service = service_name(resource, 0, len(resource))
        prefix = resource_prefix(resource, schema_url)
        if first_scope < 0:
            return
        pos = first_scope
        while pos < end:
            tag, after, _ = read_tag(data, pos, end)
            if tag == _FIELD_2:
                start, pos, _ = read_length(data, after, end)
                self.scope_spans(start, pos, prefix, service)
            else:
                pos = skip_unknown(data, after, end, tag & 7)

    def scope_spans(self, pos: i64, end: i64, resource: bytes, service: bytes) -> None:
        data = self.data
        scope_start, scope_end, schema_url, first_span = scan_head(data, pos, end)
        scope = b""
        if scope_start >= 0:
            if check_scope(data, scope_start, scope_end, 3):
                scope = data[scope_start:scope_end]
            else:
                scope = _reencode(InstrumentationScope, data[scope_start:scope_end])
        key = intern_key(self.scope_keys, (resource, scope_prefix(scope, schema_url)))
        if first_span < 0:
            return
        pos = first_span
        while pos < end:
            frame_start = pos
            tag, after, tag_minimal = read_tag(data, pos, end)
            if tag == _FIELD_2:
                start, pos, length_minimal = read_length(data, after, end)
                self.span(frame_start, start, pos, tag_minimal and length_minimal, key, service)
            else:
                pos = skip_unknown(data, after, end, tag & 7)

    def span(self, frame_start: i64, start: i64, end: i64, framed: bool, key: ScopeKey, service: bytes) -> None:
        data = self.data
        scan = self.scan
        self.seen += 1
        if not self.seen % _SPANS_PER_PAUSE:
            time.sleep(0)  # releases the interpreter for a moment: see _SPANS_PER_PAUSE
        canonical = scan_span(data, start, end, _SPAN_DEPTH, scan)
        if self.seen > self.max_spans:
            self.over_cap += 1  # validated above, then refused, as the protobuf path does
            return
        if not canonical:
            data = _reencode(Span, data[start:end])
            self.splitter.reencoded_spans += 1
            start = 0
            end = len(data)
            framed = False
            scan_span(data, start, end, _SPAN_DEPTH, scan, nested=False)
        if scan.trace_id_len != 16:
            self.rejected += 1
            return
        trace_id = data[scan.trace_id_pos : scan.trace_id_pos + 16]
        traces = self.batch.traces
        trace = traces.get(trace_id)
        if trace is None:
            if trace_id == _ZERO_TRACE_ID:
                self.rejected += 1
                return
            traces[trace_id] = trace = TraceSpans(trace_id)
        if scan.span_id_len != 8 or _all_zero(data, scan.span_id_pos, 8):
            self.rejected += 1
            return
        fields = self.fields
        if fields is not None:
            fields.add(
                service, data[scan.name_start : scan.name_end], scan.kind, scan.status_code, scan.start, scan.end
            )
        size = end - start
        if self.limited and (size > self.length_limit or scan.attribute_count > self.count_limit):
            raw = data[start:end]
            data = apply_span_limits(Span.FromString(raw), raw, self.batch, self.splitter.limits)
            start = 0
            end = size = len(data)
            framed = False
        spans = trace.groups.get(key)
        if spans is None:
            trace.groups[key] = spans = bytearray()
        if framed:
            spans += data[frame_start:end]
        else:
            spans += TAG_SCOPE_SPAN
            spans += varint(size)
            spans += data[start:end]
        trace.span_count += 1
        trace.nbytes += size
        span_start = scan.start
        if span_start and (span_start < trace.start_min or not trace.start_min):
            trace.start_min = span_start
        if scan.end > trace.end_max:
            trace.end_max = scan.end
        if not scan.parent_len:
            trace.root_seen = True
        if scan.status_code == _STATUS_CODE_ERROR:
            trace.error_seen = True
        self.accepted += 1


def _reencode(message_type: type[Span] | type[Resource] | type[InstrumentationScope], data: bytes) -> bytes:
    try:
        return message_type.FromString(data).SerializeToString()
    except DecodeError:
        raise Unsupported from None


def _all_zero(data: bytes, pos: i64, size: i64) -> bool:
    stop = pos + size
    while pos < stop:
        if data[pos]:
            return False
        pos += 1
    return True


def service_name(resource: bytes, pos: i64, end: i64) -> bytes:
    """The value of a (valid) Resource's first `service.name` attribute if it is a string (as the
    span metrics read it, and the Collector's), else b""."""
    while pos < end:
        tag, after, _ = read_tag(resource, pos, end)
        if tag != _FIELD_1:
            pos = skip_unknown(resource, after, end, tag & 7)
            continue
        start, stop, _ = read_length(resource, after, end)
        pos = stop
        if not resource.startswith(_SERVICE_NAME_KEY, start):
            continue
        value_pos = start + len(_SERVICE_NAME_KEY)
        if value_pos == stop:
            return b""
        value_tag, after, _ = read_tag(resource, value_pos, stop)
        if value_tag != _FIELD_2:
            return b""
        value_start, value_end, _ = read_length(resource, after, stop)
        if value_start < value_end and resource[value_start] == _FIELD_1:
            string_start, string_end, _ = read_length(resource, value_start + 1, value_end)
            return resource[string_start:string_end]
        return b""
    return b""
