"""The `receivers` section: OTLP over gRPC and HTTP, Zipkin, and their TLS, tokens and limits."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from sampler.config.types import Duration, Model

# An HTTP field name (RFC 9110 token); gRPC metadata keys are the lowercase subset.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class ServerTlsConfig(Model):
    """TLS on a receiver; the files are re-read when they change."""

    cert_file: str
    key_file: str
    # Clients must present a certificate signed by one of these CAs (mutual TLS).
    client_ca_file: str | None = None
    # The files are checked for changes at most this often, on a new connection; 0s never reloads.
    reload_interval: Duration = Field(10.0, ge=0)


class ReceiverAuthConfig(Model):
    """Requests must carry one of the tokens in a header (`authorization: Bearer <token>` by default)."""

    # One token per line; blank lines are ignored. Re-read when it changes.
    bearer_token_file: str | None = None
    bearer_tokens: list[SecretStr] = []
    header: str = "authorization"
    # The word before the token in the header's value; empty: the whole value is the token.
    scheme: str = "Bearer"
    reload_interval: Duration = Field(10.0, ge=0)

    @field_validator("header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not _HEADER_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid header name")
        return value.lower()

    @field_validator("bearer_tokens")
    @classmethod
    def _tokens_not_empty(cls, value: list[SecretStr]) -> list[SecretStr]:
        for index, token in enumerate(value):
            if not token.get_secret_value().strip():
                # The value is never echoed: it is a secret.
                raise ValueError(f"token [{index}] is empty")
        return value

    @model_validator(mode="after")
    def _has_tokens(self) -> ReceiverAuthConfig:
        if self.bearer_token_file is None and not self.bearer_tokens:
            raise ValueError("set bearer_token_file or bearer_tokens (or both)")
        return self


class GrpcServerParametersConfig(Model):
    # 0 leaves a connection open however long it idles or lives.
    max_connection_idle: Duration = Field(0.0, ge=0)
    max_connection_age: Duration = Field(0.0, ge=0)
    max_connection_age_grace: Duration = Field(0.0, ge=0)


class GrpcKeepaliveConfig(Model):
    server_parameters: GrpcServerParametersConfig = GrpcServerParametersConfig()


class GrpcProtocolConfig(Model):
    endpoint: str = "0.0.0.0:4317"
    max_recv_msg_size_mib: float = Field(4, gt=0)
    tls: ServerTlsConfig | None = None
    auth: ReceiverAuthConfig | None = None
    # 0: gRPC's own default (no limit).
    max_concurrent_streams: int = Field(0, ge=0)
    max_concurrent_rpcs: int = Field(0, ge=0)
    keepalive: GrpcKeepaliveConfig = GrpcKeepaliveConfig()


class HttpProtocolConfig(Model):
    endpoint: str = "0.0.0.0:4318"
    max_request_body_size: int = Field(20 * 1024 * 1024, gt=0)
    tls: ServerTlsConfig | None = None
    auth: ReceiverAuthConfig | None = None
    # 0: no limit.
    max_connections: int = Field(0, ge=0)
    # A connection with no request in progress is closed after this long (from its start or its last answer).
    idle_timeout: Duration = Field(60.0, gt=0)


class OtlpProtocolsConfig(Model):
    grpc: GrpcProtocolConfig | None = None
    http: HttpProtocolConfig | None = None


class SpanLimitsConfig(Model):
    """The OpenTelemetry SDK's span limits, applied on receipt. None: no limit."""

    attribute_count_limit: int | None = Field(None, ge=0)
    attribute_value_length_limit: int | None = Field(None, ge=0)


class OtlpReceiverConfig(Model):
    protocols: OtlpProtocolsConfig = OtlpProtocolsConfig(grpc=GrpcProtocolConfig(), http=HttpProtocolConfig())
    # Spans past the limit are refused through OTLP partial success; 0: no limit. The default bounds
    # what one request may cost (docs/operations/input-limits.md), far above what SDKs and
    # Collectors send in one request.
    max_spans_per_request: int = Field(100_000, ge=0)
    span_limits: SpanLimitsConfig = SpanLimitsConfig()

    @field_validator("protocols", mode="before")
    @classmethod
    def _empty_protocol_means_defaults(cls, value: Any) -> Any:
        # `grpc:` with no body enables the protocol with its defaults, as in the Collector.
        if isinstance(value, dict):
            return {key: ({} if body is None else body) for key, body in value.items()}
        return value


class ZipkinReceiverConfig(Model):
    endpoint: str = "0.0.0.0:9411"
    max_request_body_size: int = Field(20 * 1024 * 1024, gt=0)
    # Tags are strings in Zipkin; with this, "true", "42" and "1.5" become bool, int and double attributes.
    parse_string_tags: bool = False
    tls: ServerTlsConfig | None = None
    auth: ReceiverAuthConfig | None = None
    max_connections: int = Field(0, ge=0)
    idle_timeout: Duration = Field(60.0, gt=0)


class ReceiversConfig(Model):
    otlp: OtlpReceiverConfig = OtlpReceiverConfig()
    zipkin: ZipkinReceiverConfig | None = None

    @field_validator("zipkin", mode="before")
    @classmethod
    def _empty_zipkin_means_defaults(cls, value: Any) -> Any:
        # `zipkin:` with no body turns the receiver on with its defaults, as in the Collector.
        return {} if value is None else value
