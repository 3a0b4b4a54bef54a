"""Optional traces of the daemon itself (telemetry.traces): one span per decision batch and per
export batch, never per buffered span, sent with the OpenTelemetry SDK to a backend of its own."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Tracer

from sampler import __version__
from sampler.config.model import SelfTracesConfig

SERVICE_NAME = "tail-sampler"


def make_exporter(endpoint: str, protocol: str) -> SpanExporter:
    """An OTLP span exporter of the OpenTelemetry SDK: plaintext gRPC to host:port, or HTTP to a URL."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, insecure=True)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    url = endpoint if endpoint.startswith("http") else f"http://{endpoint}"
    if not url.rstrip("/").endswith("/v1/traces"):
        url = url.rstrip("/") + "/v1/traces"
    return HttpExporter(endpoint=url)


class SelfTracing:
    """A tracer provider private to one daemon (the global one is left to the host application)."""

    def __init__(self, config: SelfTracesConfig) -> None:
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": SERVICE_NAME, "service.version": __version__}),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            shutdown_on_exit=False,  # the daemon flushes it on shutdown, within its deadline
        )
        self._provider.add_span_processor(BatchSpanProcessor(make_exporter(config.endpoint, config.protocol)))
        self.tracer: Tracer = self._provider.get_tracer("tail_sampler")

    def shutdown(self) -> None:
        """Send the spans still buffered, then stop; blocking (bounded by the OTLP exporter's timeout)."""
        self._provider.shutdown()
