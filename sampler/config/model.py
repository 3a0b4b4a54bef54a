"""The whole configuration file (`Config`) and its small sections: admin, logging, reload, shutdown,
telemetry, span metrics."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sampler.config.exporters import BatchConfig
from sampler.config.receivers import ReceiverAuthConfig, ReceiversConfig
from sampler.config.tail_sampling import TailSamplingConfig
from sampler.config.types import Duration, Model
from sampler.extras import demo_extra_missing


class AdminConfig(Model):
    endpoint: str = "127.0.0.1:8888"
    # A token for everything but /healthz and /readyz (the console, its API, /metrics), checked as
    # the receivers check theirs; for an endpoint exposed beyond loopback.
    auth: ReceiverAuthConfig | None = None


class LoggingConfig(Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    # How often the daemon logs a one-line summary of what it received, kept and dropped; 0 turns it off.
    summary_interval: Duration = Field(10.0, ge=0)
    # text: one readable line per record; json: one JSON object per line, for log pipelines.
    format: Literal["text", "json"] = "text"


class ReloadConfig(Model):
    # Poll the config file for changes (ConfigMap updates included) and reload the policies.
    watch_file: bool = True
    check_interval: Duration = Field(1.0, gt=0)


class ShutdownConfig(Model):
    timeout: Duration = Field(10.0, gt=0)


class SelfTracesConfig(Model):
    # Where the daemon sends traces of its own decision and export batches: host:port (plaintext)
    # or an http:// or https:// URL for OTLP/gRPC, a URL for OTLP/HTTP. Unset: the
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT variable (see telemetry/selftrace.py).
    endpoint: str | None = None
    protocol: Literal["grpc", "http"] = "grpc"
    sample_ratio: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _sdk_installed(self) -> SelfTracesConfig:
        # At load (check, run, reload), not when the first span is due: the SDK is an extra.
        missing = demo_extra_missing(self.protocol)
        if missing:
            raise ValueError(f"self-tracing {missing}")
        return self


class TelemetryConfig(Model):
    traces: SelfTracesConfig | None = None


# The Collector's spanmetrics connector's default explicit buckets, in seconds (it emits them in ms).
SPAN_METRICS_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0)


class SpanMetricsConfig(Model):
    """Request, error and duration metrics of every span received, before sampling, as the
    Collector's spanmetrics connector names them (see sampler/telemetry/span_metrics.py)."""

    enabled: bool = True
    # Series (service, span name, kind, status) at most; spans of further ones are counted in one
    # overflow series, labelled otel_metric_overflow="true".
    aggregation_cardinality_limit: int = Field(2000, gt=0)
    # Upper bounds of the duration histogram's buckets.
    buckets: list[Duration] = Field(default_factory=lambda: list(SPAN_METRICS_BUCKETS), min_length=1)

    @model_validator(mode="after")
    def _increasing(self) -> SpanMetricsConfig:
        if any(later <= earlier for earlier, later in zip(self.buckets, self.buckets[1:], strict=False)):
            raise ValueError("buckets must be increasing")
        if self.buckets[0] <= 0:
            raise ValueError("buckets must be longer than 0s")
        return self


class Config(Model):
    receivers: ReceiversConfig = ReceiversConfig()
    tail_sampling: TailSamplingConfig
    batch: BatchConfig = BatchConfig()
    # Validated per exporter type in a second step, the type being the key's prefix.
    exporters: dict[str, Any] = Field(min_length=1)
    admin: AdminConfig = AdminConfig()
    logging: LoggingConfig = LoggingConfig()
    reload: ReloadConfig = ReloadConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    span_metrics: SpanMetricsConfig = SpanMetricsConfig()
    # Worker processes, each deciding the traces whose IDs hash to it (see sampler/workers);
    # none: one per CPU the process may use. 1 runs today's single process.
    workers: int | None = Field(None, ge=1, le=256)

    @property
    def policies(self) -> list[Any]:
        return self.tail_sampling.policies
