"""The work one request may cost, bounded before it is parsed, and done where it stalls nobody.

- **A cap on its spans.** Spans past `max_spans_per_request` are refused (partial success), and
  so are those past what the window's `memory_limit_mib` could ever hold: a request's worst case
  is one new trace per span, and the spans are counted on the wire (`wire_check.count_spans`)
  before anything is parsed, whenever its size alone does not already show that it fits.
- **Large bodies are decoded in a thread**, one at a time, beside the event loop: other
  requests, decisions and the admin endpoint go on meanwhile (upb and the compiled walker hold
  the interpreter for a moment at most; the walker lets go every few thousand spans).
- **A large batch enters the window in slices**, the event loop free between them.

Protobuf trace bodies go through the wire-level splitter when it runs compiled
(`wire_split.COMPILED`), through the protobuf objects otherwise: same results either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sampler.config.receivers import OtlpReceiverConfig
from sampler.decide.engine import TailSampler
from sampler.receive import wire_split
from sampler.receive.split import RequestSplitter, SpanCap, parse_protobuf
from sampler.receive.wire_check import Unsupported, count_spans
from sampler.spans.fields import SpanFields
from sampler.spans.trace import DecodedBatch
from sampler.window.window import SPAN_OVERHEAD_BYTES, TRACE_OVERHEAD_BYTES

Argument = TypeVar("Argument")
Result = TypeVar("Result")

# Bodies of at least this many bytes are decoded in the decoding thread; smaller ones cost less
# than a millisecond or two on the event loop, less than the trip to a thread and back.
OFFLOAD_BYTES = 1 << 20
# Parsed requests (OTLP/JSON, Zipkin, logs) with at least this many spans (log records) are split
# in the thread.
OFFLOAD_SPANS = 5_000
# Traces of one batch taken into the window between two turns of the event loop.
INGEST_SLICE_TRACES = 2_000
# The smallest span a splitter accepts, framed: a 16-byte trace ID and an 8-byte span ID.
MIN_SPAN_BYTES = 2 + (2 + 16) + (2 + 8)
# What one accepted span may hold in the window at worst: a trace of its own.
WORST_SPAN_MEMORY = TRACE_OVERHEAD_BYTES + SPAN_OVERHEAD_BYTES


class TraceDecoder:
    """Splits trace requests per trace within the caps above, off the event loop when large."""

    def __init__(self, config: OtlpReceiverConfig, memory_limit: int) -> None:
        self.wire = wire_split.WireSplitter(config.max_spans_per_request, config.span_limits)
        self.objects: RequestSplitter = self.wire.protobuf
        self.compiled = wire_split.COMPILED
        self._memory_limit = memory_limit
        self._thread: ThreadPoolExecutor | None = None

    async def offload(self, work: Callable[[bytes], Result], data: bytes) -> Result:
        """work(data): in the decoding thread if `data` is large, else at once."""
        return await self.run(work, data, len(data) >= OFFLOAD_BYTES)

    async def run(self, work: Callable[[Argument], Result], argument: Argument, heavy: bool) -> Result:
        """work(argument): in the decoding thread if `heavy`, else at once."""
        if not heavy:
            return work(argument)
        if self._thread is None:
            # One thread: large requests are decoded one at a time, so their transient memory
            # does not add up.
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="tail-sampler-decode")
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, argument)

    async def split(self, request: ExportTraceServiceRequest | bytes, fields: SpanFields | None) -> DecodedBatch:
        """The request (serialized protobuf, or already parsed from another format) split per
        trace; raises BadRequest for a malformed protobuf body."""
        if isinstance(request, bytes):
            return await self.offload(lambda data: self.split_protobuf(data, fields), request)
        spans = sum(
            len(scope_spans.spans) for resource in request.resource_spans for scope_spans in resource.scope_spans
        )
        cap = self.cap(spans, request.ByteSize() if self._memory_limit else 0)
        return await self.run(lambda parsed: self.objects.split(parsed, cap, fields), request, spans >= OFFLOAD_SPANS)

    def split_protobuf(self, data: bytes, fields: SpanFields | None) -> DecodedBatch:
        cap = self.limits_for(data)
        if self.compiled:
            return self.wire.split(data, fields, cap)
        return self.objects.split(parse_protobuf(data), cap, fields)

    def limits_for(self, data: bytes) -> SpanCap | None:
        """The cap of a serialized request: the spans are counted on the wire only if its size
        alone leaves memory_limit_mib in doubt."""
        cap = self.objects.limits.cap
        most = len(data) // MIN_SPAN_BYTES
        if cap is not None:
            most = min(most, cap.spans)
        if not self._memory_limit or most * WORST_SPAN_MEMORY + len(data) <= self._memory_limit:
            return cap
        try:
            spans = count_spans(data)
        except Unsupported:
            return cap  # malformed or unusual: the protobuf parser decides, within max_spans_per_request
        return self.cap(spans, len(data))

    def cap(self, spans: int, size: int) -> SpanCap | None:
        """max_spans_per_request's cap, or a lower one if `spans` spans of `size` bytes in all
        would not fit in memory_limit_mib even as traces of their own."""
        cap = self.objects.limits.cap
        limit = self._memory_limit
        if not limit or not spans:
            return cap
        per_span = WORST_SPAN_MEMORY + size / spans
        fit = int(limit // per_span)
        if fit >= spans or (cap is not None and cap.spans <= fit):
            return cap
        mib = limit / (1024 * 1024)
        return SpanCap(
            fit,
            "memory_limit",
            f"the request's {spans} spans could take up to {spans * per_span / (1024 * 1024):.0f} MiB in the trace "
            f"window, more than memory_limit_mib ({mib:g}) allows; send smaller batches",
        )

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=False)


async def ingest_in_slices(sampler: TailSampler, batch: DecodedBatch) -> int:
    """sampler.ingest(batch), a slice of traces at a time with the event loop free between them;
    how many traces were new."""
    traces = batch.traces
    if len(traces) <= INGEST_SLICE_TRACES:
        return sampler.ingest(batch)
    items = list(traces.items())
    new = 0
    for start in range(0, len(items), INGEST_SLICE_TRACES):
        new += sampler.ingest(DecodedBatch(traces=dict(items[start : start + INGEST_SLICE_TRACES])))
        await asyncio.sleep(0)
    return new
