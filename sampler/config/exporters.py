"""The `batch` and `exporters` sections: batching, and each exporter type with its queue and retries."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sampler.config.types import Duration, Model


class BatchConfig(Model):
    send_batch_size: int = Field(8192, gt=0)
    send_batch_max_bytes: int = Field(3 * 1024 * 1024, gt=1024)
    timeout: Duration = Field(0.2, gt=0)


class TlsConfig(Model):
    insecure: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _certificate_with_its_key(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both for a client certificate, or neither")
        return self


class HttpClientTlsConfig(TlsConfig):
    # Accept any server certificate: encrypted but not authenticated. For tests and trusted networks only.
    insecure_skip_verify: bool = False


class RetryConfig(Model):
    enabled: bool = True
    initial_interval: Duration = Field(5.0, gt=0)
    max_interval: Duration = Field(30.0, gt=0)
    max_elapsed_time: Duration = Field(300.0, ge=0)


class QueueStorageConfig(Model):
    """A persistent queue: batches go to segment files under `directory` and are read back from there."""

    directory: str
    max_size_mib: float = Field(1024, gt=0)
    # always: each write reaches the device before it is sent; interval: every fsync_interval;
    # never: left to the operating system (survives a crash of the daemon, not of the machine).
    fsync: Literal["always", "interval", "never"] = "interval"
    fsync_interval: Duration = Field(1.0, gt=0)


class QueueConfig(Model):
    enabled: bool = True
    num_consumers: int = Field(2, gt=0, le=64)
    queue_size: int = Field(1000, gt=0)
    storage: QueueStorageConfig | None = None

    @field_validator("storage", mode="after")
    @classmethod
    def _storage_needs_the_queue(cls, value: QueueStorageConfig | None, info: Any) -> QueueStorageConfig | None:
        if value is not None and info.data.get("enabled") is False:
            raise ValueError("a persistent queue needs the sending queue enabled (enabled: true)")
        return value


class _NetworkExporterConfig(Model):
    endpoint: str
    tls: TlsConfig = TlsConfig()
    # Often credentials: kept out of the model's repr, like the receivers' tokens (SecretStr).
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    compression: Literal["gzip", "none", ""] = "gzip"
    retry_on_failure: RetryConfig = RetryConfig()
    sending_queue: QueueConfig = QueueConfig()

    @field_validator("headers")
    @classmethod
    def _header_values_on_one_line(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            # Header values are often secrets: the message names the header, never the value.
            if any((ord(char) < 0x20 and char != "\t") or ord(char) == 0x7F for char in text):
                raise ValueError(f"the value of header {name!r} contains a control character (a line break?)")
        return value


class OtlpExporterConfig(_NetworkExporterConfig):
    timeout: Duration = Field(5.0, gt=0)

    def uses_tls(self) -> bool:
        """As in the Collector: https:// is TLS, http:// plaintext, and a bare host:port TLS unless tls.insecure."""
        if self.endpoint.startswith("https://"):
            return True
        if self.endpoint.startswith("http://"):
            return False
        return not self.tls.insecure


class OtlpHttpExporterConfig(_NetworkExporterConfig):
    tls: HttpClientTlsConfig = HttpClientTlsConfig()
    traces_endpoint: str | None = None
    # Where log records go; by default `endpoint` + /v1/logs, as for the Collector's exporter.
    logs_endpoint: str | None = None
    timeout: Duration = Field(30.0, gt=0)

    def uses_tls(self) -> bool:
        return (self.traces_endpoint or self.endpoint).startswith("https://")


class FileExporterConfig(Model):
    path: str
    sending_queue: QueueConfig = QueueConfig(num_consumers=1)

    @field_validator("sending_queue", mode="after")
    @classmethod
    def _one_writer(cls, value: QueueConfig) -> QueueConfig:
        # Lines of one file must not interleave.
        return value.model_copy(update={"num_consumers": 1})


class ZipkinExporterConfig(_NetworkExporterConfig):
    # The full URL, as in the Collector: http://host:9411/api/v2/spans.
    endpoint: str
    tls: HttpClientTlsConfig = HttpClientTlsConfig()
    format: Literal["json", "proto"] = "json"
    default_service_name: str = "unknown_service"
    timeout: Duration = Field(5.0, gt=0)

    def uses_tls(self) -> bool:
        return self.endpoint.startswith("https://")


ExporterConfig = OtlpExporterConfig | OtlpHttpExporterConfig | FileExporterConfig | ZipkinExporterConfig


def exporter_type(name: str) -> str:
    """The type of the exporter a config key names: `otlp` for both `otlp` and `otlp/backend`."""
    return name.split("/", 1)[0]
