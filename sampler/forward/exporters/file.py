"""File exporter: OTLP/JSON, one export request per line (the Collector's file exporter format),
trace and log requests alike in the one file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sampler.clock import Clock, monotonic
from sampler.codecs import otlp_json
from sampler.config.exporters import FileExporterConfig
from sampler.forward.batcher import Payload
from sampler.forward.exporter import Exporter, RetryableError
from sampler.telemetry.metrics import Metrics


class FileExporter(Exporter):
    kind = "file"

    def __init__(self, name: str, config: FileExporterConfig, metrics: Metrics, clock: Clock = monotonic) -> None:
        super().__init__(name, metrics, config.sending_queue, retry=None, clock=clock)
        self.path = Path(config.path)
        self.target = str(self.path)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _write(self, payload: Payload) -> None:
        if payload.signal == "logs":
            line = otlp_json.logs_request_to_json(ExportLogsServiceRequest.FromString(payload.data))
        else:
            line = otlp_json.request_to_json(ExportTraceServiceRequest.FromString(payload.data))
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    async def send(self, payload: Payload) -> int:
        try:
            await asyncio.to_thread(self._write, payload)
        except OSError as exc:
            raise RetryableError("io_error", f"cannot write {self.path}: {exc}") from None
        return 0
