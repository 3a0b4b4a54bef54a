"""Every exporter type, by the name config keys start with (`otlp`, `otlp/backend`): the model its
config block is validated by, and the exporter built from it. Config validation and the daemon
both read this one table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from sampler.clock import Clock
from sampler.config.exporters import (
    FileExporterConfig,
    OtlpExporterConfig,
    OtlpHttpExporterConfig,
    ZipkinExporterConfig,
    exporter_type,
)
from sampler.config.types import Model
from sampler.forward.exporter import Exporter
from sampler.forward.exporters.file import FileExporter
from sampler.forward.exporters.otlp_grpc import OtlpGrpcExporter
from sampler.forward.exporters.otlp_http import OtlpHttpExporter
from sampler.forward.exporters.zipkin import ZipkinExporter
from sampler.telemetry.metrics import Metrics


class ExporterClass(Protocol):
    """An exporter's constructor: its name in the config, its validated block, the metrics, the clock."""

    def __call__(self, name: str, config: Any, metrics: Metrics, clock: Clock) -> Exporter: ...


@dataclass(frozen=True)
class ExporterType:
    config_model: type[Model]
    exporter: ExporterClass


EXPORTERS: Mapping[str, ExporterType] = MappingProxyType(
    {
        "otlp": ExporterType(OtlpExporterConfig, OtlpGrpcExporter),
        "otlphttp": ExporterType(OtlpHttpExporterConfig, OtlpHttpExporter),
        "file": ExporterType(FileExporterConfig, FileExporter),
        "zipkin": ExporterType(ZipkinExporterConfig, ZipkinExporter),
    }
)


def build_exporter(name: str, config: Model, metrics: Metrics, clock: Clock) -> Exporter:
    """The exporter of a validated config block (config validation picked its model from `name`)."""
    return EXPORTERS[exporter_type(name)].exporter(name, config, metrics, clock)
