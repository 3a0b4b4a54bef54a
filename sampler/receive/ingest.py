"""What both receivers do with a decoded request: split it per trace, hand it
to the sampler, count it, and say which spans (or log records) were refused."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from sampler.config.receivers import OtlpReceiverConfig
from sampler.decide.durable import DurableWindow
from sampler.decide.engine import TailSampler
from sampler.receive.bounds import OFFLOAD_SPANS, TraceDecoder, ingest_in_slices
from sampler.receive.split import BadRequest
from sampler.receive.split_logs import LogSplitter
from sampler.spans.trace import DecodedBatch, ScopeKey
from sampler.telemetry.metrics import Metrics
from sampler.telemetry.span_metrics import SpanMetrics
from sampler.window.log import StorageFull

log = logging.getLogger(__name__)

# Where log records that name no trace go (the batcher), or None to drop them.
PassThrough = Callable[[dict[ScopeKey, bytearray], int], None]

Parsed = TypeVar("Parsed")

PROTOCOLS = ("grpc", "http", "zipkin")
_UNREADABLE_LOG_EVERY = 1000
# When a client refused for a full window should retry.
RETRY_AFTER_SECONDS = 1
_REFUSAL = f"no room: the trace window is full or the exporters are backed up; retry in {RETRY_AFTER_SECONDS}s"


class WindowFull(Exception):
    """block_on_overflow: no room in the window before the request's deadline."""

    # What tail_sampler_receiver_requests_total counts the refusal as.
    result = "backpressure"


class StorageRefused(WindowFull):
    """tail_sampling.storage could not take a request: its log is full or cannot be written."""

    def __init__(self, message: str, result: str) -> None:
        super().__init__(message)
        self.result = result  # storage_full or storage_error


class Handover(Protocol):
    """Where a request's traces go when several worker processes share them (receive/handoff.py)."""

    async def take(self, batch: DecodedBatch, protocol: str, timeout: float | None, count_traces: bool = True) -> int:
        """Every trace of the batch handed to the worker that owns it; how many were new to this
        worker (each owner counts its own in tail_sampler_received_traces_total, unless
        `count_traces` is off: a logs request's traces are not counted as received). Raises
        WindowFull when they cannot all be taken."""


class Ingest:
    def __init__(
        self,
        sampler: TailSampler,
        metrics: Metrics,
        config: OtlpReceiverConfig | None = None,
        untraced_logs: PassThrough | None = None,
        span_metrics: SpanMetrics | None = None,
        durable: DurableWindow | None = None,
    ) -> None:
        self._sampler = sampler
        self._durable = durable
        self.metrics = metrics
        self._span_metrics = span_metrics
        config = config or OtlpReceiverConfig()
        self.decoder = TraceDecoder(config, sampler.memory_limit)
        self._log_splitter = LogSplitter()
        self._untraced_logs = untraced_logs
        self._log_records = {p: metrics.received_log_records.labels(p) for p in PROTOCOLS}
        self._passed_through = metrics.log_records.labels("passed_through")
        self._untraced_dropped = metrics.log_records.labels("untraced_dropped")
        self._invalid_log_ids = {p: metrics.rejected_log_records.labels(p, "invalid_id") for p in PROTOCOLS}
        self._spans = {p: metrics.received_spans.labels(p) for p in PROTOCOLS}
        self._traces = {p: metrics.received_traces.labels(p) for p in PROTOCOLS}
        self._invalid_ids = {p: metrics.rejected_spans.labels(p, "invalid_id") for p in PROTOCOLS}
        self._over_limit = {
            (p, reason): metrics.rejected_spans.labels(p, reason)
            for p in PROTOCOLS
            for reason in ("max_spans_per_request", "memory_limit")
        }
        self._dropped_attributes = {p: metrics.limited_attributes.labels(p, "attribute_count_limit") for p in PROTOCOLS}
        self._truncated_values = {
            p: metrics.limited_attributes.labels(p, "attribute_value_length_limit") for p in PROTOCOLS
        }
        self._unreadable = 0
        self._refused_connections = metrics.refused_connections
        self._open_connections = metrics.open_connections
        self._requests = metrics.requests
        # Set in a worker process (the `workers` key): the traces go to the workers that own them.
        self.handover: Handover | None = None

    async def room(self, protocol: str, timeout: float | None = None) -> float | None:
        """With block_on_overflow, before a request is decoded: wait until there is any room at
        all, so an overloaded daemon refuses without spending time and memory on decoding.
        Raises WindowFull if there is none within the wait budget; returns the time left of it
        for accept(). Without block_on_overflow, returns `timeout` at once."""
        sampler = self._sampler
        if not sampler.blocking:
            return timeout
        if self.handover is not None:
            # With workers, the room is the owners' to give: they are asked once the request is split.
            return sampler.wait_budget(timeout)
        loop = asyncio.get_running_loop()
        started = loop.time()
        if not await sampler.wait_for_room(None, timeout):
            self._requests.labels(protocol, "backpressure").inc()
            raise WindowFull(_REFUSAL)
        return sampler.wait_budget(timeout) - (loop.time() - started)

    async def decode(self, parse: Callable[[bytes], Parsed], data: bytes, protocol: str, what: str) -> Parsed:
        """parse(data), off the event loop if the body is large (see receive/bounds.py). Raises
        BadRequest for a malformed body, with or without a reason of the parser's own."""
        try:
            return await self.decoder.offload(parse, data)
        except BadRequest:
            raise
        except Exception as exc:  # a gap in the decoder: still the body's fault, never a 500
            raise BadRequest(self.unreadable(protocol, what, exc)) from None

    async def accept(
        self, request: ExportTraceServiceRequest | bytes, protocol: str, deadline: float | None = None
    ) -> ExportTraceServiceResponse:
        """Ingest a request: a serialized protobuf one, or one parsed from another format. With
        block_on_overflow, first wait for room in the window until `deadline` seconds pass
        (block_on_overflow_timeout when None); raises WindowFull if there is none by then (the
        client should retry), BadRequest if a protobuf body is malformed."""
        fields = self._span_metrics.new_fields() if self._span_metrics is not None else None
        try:
            batch = await self.decoder.split(request, fields)
        except BadRequest:
            raise
        except Exception as exc:  # a gap in the decoder: still the body's fault, never a 500
            raise BadRequest(self.unreadable(protocol, "OTLP trace export request", exc)) from None
        new_traces = await self._take(batch, protocol, deadline)
        if self._span_metrics is not None and fields is not None:
            self._span_metrics.count(fields)
        self._spans[protocol].inc(batch.span_count)
        self._traces[protocol].inc(new_traces)
        response = ExportTraceServiceResponse()
        if batch.dropped_attributes:
            self._dropped_attributes[protocol].inc(batch.dropped_attributes)
        if batch.truncated_values:
            self._truncated_values[protocol].inc(batch.truncated_values)
        if batch.rejected_spans:
            if batch.over_limit_spans:
                self._over_limit[(protocol, batch.over_limit_reason)].inc(batch.over_limit_spans)
            if batch.rejected_spans > batch.over_limit_spans:
                self._invalid_ids[protocol].inc(batch.rejected_spans - batch.over_limit_spans)
            self._requests.labels(protocol, "partial").inc()
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=batch.rejected_spans, error_message=batch.rejection_message)
            )
        else:
            self._requests.labels(protocol, "ok").inc()
        return response

    async def accept_logs(
        self, request: ExportLogsServiceRequest, protocol: str, deadline: float | None = None
    ) -> ExportLogsServiceResponse:
        """Ingest a logs request: records naming a trace join it in the window (or follow its
        decision), the others pass through or are dropped. Raises WindowFull as accept() does."""
        records = sum(len(scope.log_records) for resource in request.resource_logs for scope in resource.scope_logs)
        batch = await self.decoder.run(self._log_splitter.split, request, records >= OFFLOAD_SPANS)
        if batch.traces:
            await self._take(batch, protocol, deadline, count_traces=False)
        untraced = batch.untraced_log_count
        if untraced:
            if self._untraced_logs is not None:
                self._untraced_logs(batch.untraced_logs, untraced)
                self._passed_through.inc(untraced)
            else:
                self._untraced_dropped.inc(untraced)
        self._log_records[protocol].inc(batch.log_records + untraced)
        response = ExportLogsServiceResponse()
        if batch.rejected_spans:
            self._invalid_log_ids[protocol].inc(batch.rejected_spans)
            self._requests.labels(protocol, "partial").inc()
            response.partial_success.CopyFrom(
                ExportLogsPartialSuccess(
                    rejected_log_records=batch.rejected_spans, error_message=batch.rejection_message
                )
            )
        else:
            self._requests.labels(protocol, "ok").inc()
        return response

    async def _take(self, batch: DecodedBatch, protocol: str, deadline: float | None, count_traces: bool = True) -> int:
        """The batch's traces into the window (with workers: each to the worker owning it); how many
        were new. Raises WindowFull (counted by its result) when they cannot all be taken."""
        try:
            if self.handover is not None:
                return await self.handover.take(batch, protocol, deadline, count_traces)
            if not await self._sampler.wait_for_room(batch, deadline):
                raise WindowFull(_REFUSAL)
            await self.store(batch, self._sampler.wait_budget(deadline))
            return await ingest_in_slices(self._sampler, batch)
        except WindowFull as refusal:
            self._requests.labels(protocol, refusal.result).inc()
            raise

    async def store(self, batch: DecodedBatch, budget: float) -> None:
        """tail_sampling.storage: a batch is taken into the window (and its request acknowledged)
        only once it is in the window's log. Raises StorageRefused if it cannot be, within `budget`
        seconds. The workers' hand-over calls this too, in the worker that owns the traces."""
        if self._durable is None:
            return
        try:
            await self._durable.admit(batch, budget)
        except StorageFull as exc:
            raise StorageRefused(f"{exc}; retry in {RETRY_AFTER_SECONDS}s", exc.reason) from None

    def count_failure(self, protocol: str, result: str) -> None:
        self._requests.labels(protocol, result).inc()

    def unreadable(self, protocol: str, what: str, exc: Exception) -> str:
        """A body its decoder failed on without a reason of its own (a gap in the decoder), to be
        answered 4xx and counted invalid like any malformed body: logged, the first time and then
        every _UNREADABLE_LOG_EVERY times, so the gap gets closed. Returns the message."""
        if self._unreadable % _UNREADABLE_LOG_EVERY == 0:
            log.warning(
                "%s receiver: a %s could not be decoded (%s: %s); answered 400. Please report it with the body.",
                protocol,
                what,
                type(exc).__name__,
                exc,
            )
        self._unreadable += 1
        return f"malformed {what}: it cannot be decoded ({type(exc).__name__})"

    def count_refused_connection(self, protocol: str, reason: str) -> None:
        self._refused_connections.labels(protocol, reason).inc()

    def watch_open_connections(self, protocol: str, count: Callable[[], int]) -> None:
        self._open_connections.labels(protocol).set_function(count)
