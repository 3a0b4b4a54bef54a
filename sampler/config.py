"""Configuration: YAML with `${env:NAME}` substitution, validated by typed models.

Every validation error is reported with the file, the line, the key path and,
where there is a fixed set, the valid choices.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sampler.endpoints import split_endpoint
from sampler.extras import demo_extra_missing

SHIPPED_CONFIG = Path("config") / "sampler.yaml"


def default_config_path() -> Path:
    """The shipped config: config/sampler.yaml in the working directory, else in the source checkout."""
    if SHIPPED_CONFIG.exists():
        return SHIPPED_CONFIG
    return Path(__file__).resolve().parent.parent / SHIPPED_CONFIG


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_ENV_REFERENCE = re.compile(r"\$\$|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """An invalid configuration; the message names file, line and key path."""


def parse_duration(value: Any) -> float:
    """A Go-style duration ("30s", "1m30s", "250ms") in seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s or 250ms")
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        raise ValueError(f"duration {value!r} has no unit; write it like 30s, 250ms or 1m")
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30s or 250ms")
    text = value.strip()
    if text in ("0", ""):
        return 0.0
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        raise ValueError(f"invalid duration {value!r}; valid units are ns, us, ms, s, m, h (e.g. 30s, 1m30s)")
    return total


DURATION_JSON_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": "^(0|([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|ms|s|m|h))+$"},
        {"const": 0},
    ],
    "description": "a duration such as 30s, 250ms or 1m30s",
}
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_JSON_SCHEMA)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- receivers ---------------------------------------------------------------

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
    # 0: no limit. Spans past the limit are refused through OTLP partial success.
    max_spans_per_request: int = Field(0, ge=0)
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


# --- tail sampling -----------------------------------------------------------


class DecisionCacheConfig(Model):
    sampled_cache_size: int = Field(100_000, ge=0)
    non_sampled_cache_size: int = Field(100_000, ge=0)
    # Saved on shutdown and loaded on start, so late spans after a restart follow their trace's decision.
    persist_path: str | None = None


class TailSamplingConfig(Model):
    decision_wait: Duration = Field(30.0, gt=0)
    decision_wait_after_root_received: Duration = Field(0.0, ge=0)
    num_traces: int = Field(50_000, gt=0)
    num_shards: int = Field(4, gt=0, le=1024)
    expected_new_traces_per_sec: int = Field(0, ge=0)
    sample_on_first_match: bool = False
    maximum_trace_size_bytes: int = Field(0, ge=0)
    block_on_overflow: bool = False
    # trace-complete: decide whole traces when due. span-ingest: decide as spans arrive,
    # with stateless policies only (see sampler/engine.py).
    sampling_strategy: Literal["trace-complete", "span-ingest"] = "trace-complete"
    # With block_on_overflow: how long a request whose client set no deadline (HTTP) waits for room.
    block_on_overflow_timeout: Duration = Field(5.0, gt=0)
    # Kept spans' scopes carry tailsampling.policy and friends (see sampler/records.py).
    record_policy: bool = True
    drop_pending_traces_on_shutdown: bool = False
    # Bound on the estimated memory of buffered traces (span bytes plus bookkeeping, see
    # sampler/buffer.py); when passed, the oldest traces are decided early. 0 turns it off.
    memory_limit_mib: float = Field(0, ge=0)
    # A trace reaching this many buffered spans is decided at once. 0 turns it off.
    max_spans_per_trace: int = Field(0, ge=0)
    decision_cache: DecisionCacheConfig = DecisionCacheConfig()
    # Validated per policy type in a second step (see parse_config), since the
    # models of policy types come from the policy registry.
    policies: list[Any] = Field(min_length=1)


# --- forwarding --------------------------------------------------------------


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


class OtlpHttpExporterConfig(_NetworkExporterConfig):
    tls: HttpClientTlsConfig = HttpClientTlsConfig()
    traces_endpoint: str | None = None
    timeout: Duration = Field(30.0, gt=0)


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


EXPORTER_TYPES: Mapping[str, type[Model]] = {
    "otlp": OtlpExporterConfig,
    "otlphttp": OtlpHttpExporterConfig,
    "file": FileExporterConfig,
    "zipkin": ZipkinExporterConfig,
}

ExporterConfig = OtlpExporterConfig | OtlpHttpExporterConfig | FileExporterConfig | ZipkinExporterConfig


def exporter_type(name: str) -> str:
    return name.split("/", 1)[0]


class AdminConfig(Model):
    endpoint: str = "127.0.0.1:8888"


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
    # Where the daemon sends traces of its own decision and export batches: host:port for
    # OTLP/gRPC (plaintext), a URL for OTLP/HTTP.
    endpoint: str
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

    @property
    def policies(self) -> list[Any]:
        return self.tail_sampling.policies


# --- loading -----------------------------------------------------------------


def _substitute_env(value: str, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set")

    return _ENV_REFERENCE.sub(replace, value)


def _prepare_nodes(
    node: yaml.Node,
    path: tuple[Any, ...],
    lines: dict[tuple[Any, ...], int],
    environ: Mapping[str, str],
    source: str,
    seen: set[int],
) -> None:
    """Record the line of every key path and substitute environment references.

    A substituted value stays a string; the typed models convert it to what the
    key expects, so `headers: {x-key: ${env:KEY}}` stays a string even if KEY is
    digits (the Collector's behaviour since v0.107)."""
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:  # an alias: the node was handled where it was anchored
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]: x`: YAML allows it, no config key is one
                line = key_node.start_mark.line + 1
                raise ConfigError(
                    f"{source}:{line}: {_format_path(path)}: a key must be a plain value, not a list or map"
                )
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            _prepare_nodes(value_node, path + (key,), lines, environ, source, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _prepare_nodes(item, path + (index,), lines, environ, source, seen)
    elif isinstance(node, yaml.ScalarNode) and "$" in node.value:
        try:
            substituted = _substitute_env(node.value, environ)
        except ConfigError as exc:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: {_format_path(path)}: {exc}") from None
        if substituted != node.value:
            node.value = substituted
            node.tag = "tag:yaml.org,2002:str"


def _format_path(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _line_of(path: tuple[Any, ...], lines: Mapping[tuple[Any, ...], int]) -> int:
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return 1


def _field_model(annotation: Any) -> Any:
    """The model a field's value is validated by: list items, optional values, annotated types unwrapped."""
    while True:
        origin = get_origin(annotation)
        if origin in (Union, Annotated) or type(annotation).__name__ == "UnionType":
            annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
        elif origin in (list, tuple):
            annotation = get_args(annotation)[0]
        else:
            return annotation


def _model_for(model: Any, node: Any) -> type[BaseModel] | None:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model
    # Policies (and sub-policies) are untyped until their `type` key picks the model.
    if isinstance(node, dict):
        from sampler.policies import POLICY_TYPES, policy_model

        if node.get("type") in POLICY_TYPES:
            return policy_model(node["type"])
    return None


def _allowed_keys_anywhere(data: Any, path: tuple[Any, ...]) -> list[str]:
    """The keys valid at `path`, found by walking the models alongside the data."""
    model: Any = Config
    node = data
    if len(path) >= 2 and path[0] == "exporters":
        # An exporter's model is picked by the type in its key (otlp/name).
        model = EXPORTER_TYPES.get(exporter_type(str(path[1])))
        node = data.get("exporters", {}).get(path[1]) if isinstance(data.get("exporters"), dict) else None
        path = path[2:]
    for part in path:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            continue
        resolved = _model_for(model, node)
        field = resolved.model_fields.get(part) if resolved is not None else None
        if field is None:
            return []
        model = _field_model(field.annotation)
        node = node.get(part) if isinstance(node, dict) else None
    resolved = _model_for(model, node)
    return sorted(resolved.model_fields) if resolved is not None else []


def _describe_error(error: Mapping[str, Any], data: Any) -> tuple[tuple[Any, ...], str]:
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    message = error["msg"]
    if error["type"] == "extra_forbidden" and loc:
        allowed = _allowed_keys_anywhere(data, loc[:-1])
        key = str(loc[-1])
        message = f"unknown key {key!r}"
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        if allowed:
            message += f"; valid keys: {', '.join(allowed)}"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return loc, message


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    return parse_config(text, source, os.environ if environ is None else environ)


def parse_config(text: str, source: str = "<config>", environ: Mapping[str, str] | None = None) -> Config:
    environ = os.environ if environ is None else environ
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:  # a control character: the reader checks the whole text first
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"{source}:{line}: invalid YAML: character {exc.character:#x} is not allowed") from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(f"{source}: the config file is empty")
        lines: dict[tuple[Any, ...], int] = {}
        _prepare_nodes(node, (), lines, environ, source, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError(f"{source}:{line}: invalid YAML: {exc.problem or exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid YAML: an alias refers to itself") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}:1: the config must be a mapping of sections (receivers, tail_sampling, exporters...)"
        )
    try:
        config = _validate(data, lines, source)
    except RecursionError:
        raise ConfigError(f"{source}: invalid configuration: a YAML alias refers to itself") from None
    return _admin_endpoint_from_environment(config, environ)


# Set, this variable is the admin endpoint whatever the file's admin.endpoint says (and `run
# --admin-endpoint` sets it): the image sets it to all interfaces, so that its published port and
# its HEALTHCHECK work with a user's own config file too.
ADMIN_ENDPOINT_ENV = "TAIL_SAMPLER_ADMIN_ENDPOINT"


def _admin_endpoint_from_environment(config: Config, environ: Mapping[str, str]) -> Config:
    endpoint = environ.get(ADMIN_ENDPOINT_ENV)
    if not endpoint:
        return config
    try:
        split_endpoint(endpoint)
    except ValueError as exc:
        raise ConfigError(f"{ADMIN_ENDPOINT_ENV}: {exc}, e.g. 0.0.0.0:8888") from None
    return config.model_copy(update={"admin": AdminConfig(endpoint=endpoint)})


def _validate(data: dict[str, Any], lines: Mapping[tuple[Any, ...], int], source: str) -> Config:
    errors: list[dict[str, Any]] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors.extend(exc.errors())
    # Policies and exporters are checked even when other sections have errors, so one run reports all.
    raw_sampling = data.get("tail_sampling")
    raw_policies = raw_sampling.get("policies") if isinstance(raw_sampling, dict) else None
    raw_exporters = data.get("exporters")
    policies, policy_errors = _validate_policies(raw_policies if isinstance(raw_policies, list) else [], lines)
    exporters, exporter_errors = _validate_exporters(raw_exporters if isinstance(raw_exporters, dict) else {})
    errors.extend(policy_errors + exporter_errors)
    if isinstance(raw_sampling, dict) and raw_sampling.get("sampling_strategy") == "span-ingest":
        errors.extend(_span_ingest_errors(policies))
    if errors:
        described = []
        for error in errors:
            loc, message = _describe_error(error, data)
            line = _line_of(loc, lines)
            described.append((line, f"{source}:{line}: {_format_path(loc)}: {message}"))
        described.sort(key=lambda item: item[0])
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(text for _, text in described))
    assert config is not None
    return config.model_copy(
        update={
            "tail_sampling": config.tail_sampling.model_copy(update={"policies": policies}),
            "exporters": exporters,
        }
    )


def _span_ingest_errors(policies: list[Any]) -> list[dict[str, Any]]:
    from sampler.policies import stateful_reason

    errors = []
    for index, policy in enumerate(policies):
        reason = stateful_reason(policy)
        if reason:
            errors.append(
                {
                    "loc": ("tail_sampling", "policies", index, "type"),
                    "msg": f"policy {policy.name!r} cannot run with sampling_strategy: span-ingest: {reason}",
                    "type": "value_error",
                }
            )
    return errors


def _prefixed(exc: ValidationError, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [{**error, "loc": prefix + tuple(error["loc"])} for error in exc.errors()]


def _validate_policies(raw: list[Any], lines: Mapping[tuple[Any, ...], int]) -> tuple[list[Any], list[dict[str, Any]]]:
    from sampler.policies import validate_policy_config

    policies: list[Any] = []
    errors: list[dict[str, Any]] = []
    for index, body in enumerate(raw):
        try:
            policies.append(validate_policy_config(body))
        except ValidationError as exc:
            errors.extend(_prefixed(exc, ("tail_sampling", "policies", index)))
    first_index: dict[str, int] = {}
    for index, body in enumerate(raw):
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str):
            continue
        if name in first_index:
            first = first_index[name]
            first_line = lines.get(("tail_sampling", "policies", first, "name"))
            where = f"policies[{first}]" + (f" on line {first_line}" if first_line else "")
            errors.append(
                {
                    "loc": ("tail_sampling", "policies", index, "name"),
                    "msg": f"duplicate policy name {name!r}, already used by {where}",
                    "type": "value_error",
                }
            )
        else:
            first_index[name] = index
    return policies, errors


def _validate_exporters(raw: dict[str, Any]) -> tuple[dict[str, ExporterConfig], list[dict[str, Any]]]:
    exporters: dict[str, ExporterConfig] = {}
    errors: list[dict[str, Any]] = []
    for name, body in raw.items():
        kind = exporter_type(str(name))
        model = EXPORTER_TYPES.get(kind)
        if model is None:
            errors.append(
                {
                    "loc": ("exporters", name),
                    "msg": f"unknown exporter type {kind!r}; valid types: {', '.join(EXPORTER_TYPES)}",
                    "type": "value_error",
                }
            )
            continue
        try:
            exporters[name] = model.model_validate({} if body is None else body)  # type: ignore[assignment]
        except ValidationError as exc:
            errors.extend(_prefixed(exc, ("exporters", name)))
    return exporters, errors
