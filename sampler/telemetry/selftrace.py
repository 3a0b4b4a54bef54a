"""Optional traces of the daemon itself (telemetry.traces): one span per decision batch and per
export batch, never per buffered span, sent with the OpenTelemetry SDK to a backend of its own.

The SDK's environment variables apply as in any instrumented service: OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES name the daemon (service.name is "tail-sampler" unless they say
otherwise), and the OTEL_EXPORTER_OTLP_* (and _TRACES_*) variables give the endpoint when the
config does not, and the TLS certificates, headers, compression and timeout."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Tracer

from sampler import __version__
from sampler.config.model import SelfTracesConfig

SERVICE_NAME = "tail-sampler"


_INSECURE_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE")


def make_exporter(endpoint: str | None, protocol: str, environ: Mapping[str, str] = os.environ) -> SpanExporter:
    """An OTLP span exporter of the OpenTelemetry SDK.

    gRPC: `https://host:port` speaks TLS (with OTEL_EXPORTER_OTLP_CERTIFICATE's CA, if set),
    `http://host:port` plaintext, and a bare `host:port` plaintext unless
    OTEL_EXPORTER_OTLP_INSECURE=false. HTTP: a URL (`/v1/traces` is added), or a bare host:port
    as http://. No endpoint: the SDK reads it from the OTEL_EXPORTER_OTLP_* variables."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        # A bare host:port has meant plaintext here from the start; the variables can say otherwise.
        bare = endpoint is not None and not urlparse(endpoint).netloc
        plaintext = True if bare and not any(name in environ for name in _INSECURE_VARIABLES) else None
        return GrpcExporter(endpoint=endpoint, insecure=plaintext)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    if endpoint is None:
        return HttpExporter()
    url = endpoint if endpoint.startswith(("http://", "https://")) else f"http://{endpoint}"
    if not url.rstrip("/").endswith("/v1/traces"):
        url = url.rstrip("/") + "/v1/traces"
    return HttpExporter(endpoint=url)


def resource() -> Resource:
    """service.name tail-sampler and the version, unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise."""
    from_environment = OTELResourceDetector().detect().attributes
    return Resource.create({"service.name": SERVICE_NAME, "service.version": __version__, **from_environment})


class SelfTracing:
    """A tracer provider private to one daemon (the global one is left to the host application)."""

    def __init__(self, config: SelfTracesConfig) -> None:
        self._provider = TracerProvider(
            resource=resource(),
            sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            shutdown_on_exit=False,  # the daemon flushes it on shutdown, within its deadline
        )
        self._provider.add_span_processor(BatchSpanProcessor(make_exporter(config.endpoint, config.protocol)))
        self.tracer: Tracer = self._provider.get_tracer("tail_sampler")

    def shutdown(self) -> None:
        """Send the spans still buffered, then stop; blocking (bounded by the OTLP exporter's timeout)."""
        self._provider.shutdown()
