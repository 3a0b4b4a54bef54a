"""What both receivers do with a decoded request: split it per trace, hand it
to the sampler, count it, and say which spans were refused."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from sampler.engine import TailSampler
from sampler.metrics import Metrics
from sampler.receive.decode import RequestSplitter

PROTOCOLS = ("grpc", "http")


class Ingest:
    def __init__(self, sampler: TailSampler, metrics: Metrics) -> None:
        self._sampler = sampler
        self._splitter = RequestSplitter()
        self._spans = {p: metrics.received_spans.labels(p) for p in PROTOCOLS}
        self._traces = {p: metrics.received_traces.labels(p) for p in PROTOCOLS}
        self._invalid_ids = {p: metrics.rejected_spans.labels(p, "invalid_id") for p in PROTOCOLS}
        self._requests = metrics.requests

    def accept(self, request: ExportTraceServiceRequest, protocol: str) -> ExportTraceServiceResponse:
        batch = self._splitter.split(request)
        new_traces = self._sampler.ingest(batch)
        self._spans[protocol].inc(batch.span_count)
        self._traces[protocol].inc(new_traces)
        response = ExportTraceServiceResponse()
        if batch.rejected_spans:
            self._invalid_ids[protocol].inc(batch.rejected_spans)
            self._requests.labels(protocol, "partial").inc()
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=batch.rejected_spans, error_message=batch.rejection_message)
            )
        else:
            self._requests.labels(protocol, "ok").inc()
        return response

    def count_failure(self, protocol: str, result: str) -> None:
        self._requests.labels(protocol, result).inc()
