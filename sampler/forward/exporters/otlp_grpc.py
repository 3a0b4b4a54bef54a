"""OTLP/gRPC exporter: sends the batched request bytes as they are (traces, and logs to LogsService)."""

from __future__ import annotations

from pathlib import Path

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sampler.clock import Clock, monotonic
from sampler.config.exporters import OtlpExporterConfig
from sampler.forward.batcher import Payload
from sampler.forward.exporter import Exporter, PermanentError, RetryableError
from sampler.telemetry.metrics import Metrics

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_EXPORT_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

# Per the OTLP specification; RESOURCE_EXHAUSTED only when the server says when to retry.
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_MAX_MESSAGE = 64 * 1024 * 1024


def grpc_target(endpoint: str) -> str:
    """The channel target for an endpoint: without its scheme, if it has one."""
    for scheme in ("https://", "http://"):
        if endpoint.startswith(scheme):
            return endpoint[len(scheme) :].rstrip("/")
    return endpoint


def failure_cause(code: grpc.StatusCode, details: str, secure: bool) -> str:
    """What went wrong, in words an operator acts on: the TLS handshake, the connection, the answer."""
    text = details.lower()
    if "handshake" in text or "ssl" in text or "tls" in text or "certificate" in text:
        if secure:
            return (
                f"TLS handshake failed ({details}); if the backend speaks plaintext, write the endpoint as "
                "http://host:port or set tls.insecure: true"
            )
        return f"TLS handshake failed ({details})"
    if "connection refused" in text:
        return f"connection refused ({details})"
    if "dns resolution failed" in text or "name or service not known" in text:
        return f"the host name does not resolve ({details})"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer within the timeout ({details})"
    return f"{code.name}: {details}"


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay a server attached to a failed call, if any."""
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


class OtlpGrpcExporter(Exporter):
    kind = "otlp"

    def __init__(self, name: str, config: OtlpExporterConfig, metrics: Metrics, clock: Clock = monotonic) -> None:
        super().__init__(name, metrics, config.sending_queue, config.retry_on_failure, clock)
        self._config = config
        self._metadata = tuple((key.lower(), value) for key, value in config.headers.items())
        self._channel: grpc.aio.Channel | None = None
        self._export: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] | None = None
        self._export_logs: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] | None = None
        self._secure = config.uses_tls()
        self.target = f"{config.endpoint} ({'TLS' if self._secure else 'plaintext'})"

    async def open(self) -> None:
        config = self._config
        target = grpc_target(config.endpoint)
        options = [("grpc.max_send_message_length", _MAX_MESSAGE), ("grpc.max_receive_message_length", _MAX_MESSAGE)]
        if config.retry_on_failure.enabled:
            # gRPC's own reconnect backoff grows to 120 s during an outage; without this cap a backend
            # that is back waits up to that long, however often the exporter retries.
            max_interval_ms = int(config.retry_on_failure.max_interval * 1000)
            options.append(("grpc.max_reconnect_backoff_ms", max_interval_ms))
        compression = grpc.Compression.Gzip if config.compression == "gzip" else grpc.Compression.NoCompression
        if self._secure:
            tls = config.tls
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self._read(tls.ca_file, "ca_file"),
                private_key=self._read(tls.key_file, "key_file"),
                certificate_chain=self._read(tls.cert_file, "cert_file"),
            )
            self._channel = grpc.aio.secure_channel(target, credentials, options=options, compression=compression)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=options, compression=compression)
        # No serializers: the payload is already a serialized request.
        self._export = self._channel.unary_unary(EXPORT_METHOD)
        self._export_logs = self._channel.unary_unary(LOGS_EXPORT_METHOD)

    def _read(self, path: str | None, key: str) -> bytes | None:
        if path is None:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise OSError(f"exporter {self.name}: cannot read tls.{key} {path}: {exc.strerror}") from None

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def send(self, payload: Payload) -> int:
        export = self._export_logs if payload.signal == "logs" else self._export
        assert export is not None
        try:
            response = await export(payload.data, timeout=self._config.timeout, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            reason = code.name.lower()
            message = failure_cause(code, exc.details() or "", self._secure)
            if code in _RETRYABLE:
                raise RetryableError(reason, message, retry_delay(exc)) from None
            if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
                delay = retry_delay(exc)
                if delay is not None:
                    raise RetryableError(reason, message, delay) from None
            raise PermanentError(reason, message) from None
        try:
            if payload.signal == "logs":
                return int(ExportLogsServiceResponse.FromString(response).partial_success.rejected_log_records)
            return int(ExportTraceServiceResponse.FromString(response).partial_success.rejected_spans)
        except DecodeError:
            return 0
