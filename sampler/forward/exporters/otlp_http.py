"""OTLP/HTTP exporter (binary protobuf): traces to /v1/traces, logs to /v1/logs."""

from __future__ import annotations

import email.utils
import gzip
import ssl
import time

import aiohttp
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sampler.clock import Clock, monotonic
from sampler.config.exporters import HttpClientTlsConfig, OtlpHttpExporterConfig, ZipkinExporterConfig
from sampler.forward.batcher import Payload
from sampler.forward.exporter import Exporter, PermanentError, RetryableError
from sampler.telemetry.metrics import Metrics

_RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def traces_url(config: OtlpHttpExporterConfig) -> str:
    if config.traces_endpoint:
        return config.traces_endpoint
    return config.endpoint.rstrip("/") + "/v1/traces"


def logs_url(config: OtlpHttpExporterConfig) -> str:
    if config.logs_endpoint:
        return config.logs_endpoint
    return config.endpoint.rstrip("/") + "/v1/logs"


def client_ssl_context(exporter: str, tls: HttpClientTlsConfig) -> ssl.SSLContext:
    """The context for https:// downstreams: the system's CAs unless ca_file is given."""
    try:
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        files = ", ".join(path for path in (tls.ca_file, tls.cert_file, tls.key_file) if path)
        raise OSError(
            f"exporter {exporter}: cannot load tls files ({files}): {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connection_failure(exc: BaseException) -> str:
    """What went wrong before an answer came, in words an operator acts on."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS: the server's certificate is not accepted ({exc.certificate_error})"
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ClientSSLError) or "ssl" in text.lower():
        return f"TLS handshake failed ({text}); if the backend speaks plaintext, use an http:// endpoint"
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ConnectionRefusedError):
        return f"connection refused ({text})"
    if isinstance(exc, TimeoutError):
        return "no answer within the timeout"
    return text


class OtlpHttpExporter(Exporter):
    """Posts each payload over HTTP; subclasses for other formats over HTTP (Zipkin)
    override the URL, the content type, the body and the reading of the response."""

    kind = "otlphttp"
    content_type = "application/x-protobuf"

    def __init__(
        self,
        name: str,
        config: OtlpHttpExporterConfig | ZipkinExporterConfig,
        metrics: Metrics,
        clock: Clock = monotonic,
    ) -> None:
        super().__init__(name, metrics, config.sending_queue, config.retry_on_failure, clock)
        self._config = config
        self._url = self._target_url()
        self._logs_url = logs_url(config) if isinstance(config, OtlpHttpExporterConfig) else ""
        self.target = f"{self._url} ({'TLS' if config.uses_tls() else 'plaintext'})"
        self._session: aiohttp.ClientSession | None = None
        headers = {"Content-Type": self.content_type, **config.headers}
        if config.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        self._headers = headers

    def _target_url(self) -> str:
        assert isinstance(self._config, OtlpHttpExporterConfig)
        return traces_url(self._config)

    async def _body(self, payload: Payload) -> bytes:
        return payload.data

    def _rejected_spans(self, content: bytes, payload: Payload) -> int:
        try:
            if payload.signal == "logs":
                return int(ExportLogsServiceResponse.FromString(content).partial_success.rejected_log_records)
            return int(ExportTraceServiceResponse.FromString(content).partial_success.rejected_spans)
        except DecodeError:
            return 0

    async def open(self) -> None:
        ssl_context = client_ssl_context(self.name, self._config.tls)
        connector = aiohttp.TCPConnector(ssl=ssl_context, limit=self._config.sending_queue.num_consumers * 2)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self._config.timeout)
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, payload: Payload) -> int:
        assert self._session is not None
        data = await self._body(payload)
        body = gzip.compress(data, compresslevel=5) if self._config.compression == "gzip" else data
        try:
            url = self._logs_url if payload.signal == "logs" else self._url
            async with self._session.post(url, data=body, headers=self._headers) as response:
                content = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableError("connection", connection_failure(exc)) from None
        if status in _RETRYABLE_STATUS:
            raise RetryableError(f"http_{status}", f"HTTP {status}", parse_retry_after(retry_after))
        if status >= 300:
            raise PermanentError(f"http_{status}", f"HTTP {status}: {content[:200]!r}")
        return self._rejected_spans(content, payload)
