"""Zipkin exporter: kept spans as Zipkin v2 JSON or protobuf, `POST /api/v2/spans`.

It is the OTLP/HTTP exporter (connections, TLS, gzip, retryable statuses and
Retry-After) with another body: each payload is parsed once and mapped with
sampler.codecs.zipkin.from_otlp (and encoded with sampler.codecs.zipkin.proto for `format: proto`).
"""

from __future__ import annotations

import asyncio

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sampler.clock import Clock, monotonic
from sampler.codecs.zipkin import from_otlp, proto
from sampler.config.exporters import ZipkinExporterConfig
from sampler.forward.batcher import Payload
from sampler.forward.exporters.otlp_http import OtlpHttpExporter
from sampler.telemetry.metrics import Metrics


class ZipkinExporter(OtlpHttpExporter):
    kind = "zipkin"
    sends_logs = False  # Zipkin's model has spans only

    def __init__(self, name: str, config: ZipkinExporterConfig, metrics: Metrics, clock: Clock = monotonic) -> None:
        self._default_service_name = config.default_service_name
        self._proto = config.format == "proto"
        self.content_type = proto.CONTENT_TYPE if self._proto else "application/json"
        super().__init__(name, config, metrics, clock)

    def _target_url(self) -> str:
        return self._config.endpoint

    async def _body(self, payload: Payload) -> bytes:
        # Mapping a large batch takes a while; in a thread, the receivers and decisions keep going.
        return await asyncio.to_thread(self._encode, payload)

    def _encode(self, payload: Payload) -> bytes:
        request = ExportTraceServiceRequest.FromString(payload.data)
        if self._proto:
            return proto.encode(from_otlp.request_to_zipkin(request, self._default_service_name))
        return from_otlp.encode_json(request, self._default_service_name)

    def _rejected_spans(self, content: bytes, payload: Payload) -> int:
        # Zipkin accepts a request whole (202) or refuses it whole.
        return 0
