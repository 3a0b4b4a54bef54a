"""Real peers for the tests: OTLP sinks (gRPC and HTTP servers), the daemon
running in a thread of its own, SDK clients, and a Prometheus scrape parser."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import requests
import yaml
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families

from sampler.config import Config, parse_config
from sampler.daemon import Daemon
from sampler.spans.framing import frame

T0 = 1_700_000_000_000_000_000  # a fixed epoch in ns for hand-built spans
MS = 1_000_000


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> Any:
    """Poll until predicate() is truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


# --- sinks -------------------------------------------------------------------


@dataclass
class SpanSeen:
    trace_id: bytes
    span_id: bytes
    name: str
    service: str
    scope: str
    span: Span


def spans_of(requests_: Iterable[ExportTraceServiceRequest]) -> list[SpanSeen]:
    seen = []
    for request in requests_:
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), ""
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    seen.append(SpanSeen(span.trace_id, span.span_id, span.name, service, scope_spans.scope.name, span))
    return seen


@dataclass
class LogSeen:
    trace_id: bytes
    span_id: bytes
    body: str
    service: str
    scope_attributes: dict[str, Any]


def logs_of(requests_: Iterable[ExportLogsServiceRequest]) -> list[LogSeen]:
    seen = []
    for request in requests_:
        for resource_logs in request.resource_logs:
            service = next(
                (a.value.string_value for a in resource_logs.resource.attributes if a.key == "service.name"), ""
            )
            for scope_logs in resource_logs.scope_logs:
                scope = {
                    a.key: getattr(a.value, a.value.WhichOneof("value") or "string_value")
                    for a in scope_logs.scope.attributes
                }
                for record in scope_logs.log_records:
                    seen.append(LogSeen(record.trace_id, record.span_id, record.body.string_value, service, scope))
    return seen


class _SinkBase:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[ExportTraceServiceRequest] = []
        self.log_requests: list[ExportLogsServiceRequest] = []
        self.raw_sizes: list[int] = []
        self.attempts = 0

    def log_records(self) -> list[LogSeen]:
        with self.lock:
            return logs_of(list(self.log_requests))

    def spans(self) -> list[SpanSeen]:
        with self.lock:
            return spans_of(list(self.requests))

    def trace_ids(self) -> set[bytes]:
        return {s.trace_id for s in self.spans()}

    def span_count(self) -> int:
        return len(self.spans())

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[SpanSeen]:
        wait_until(lambda: self.span_count() >= count, timeout, what=f"{count} spans at the sink")
        return self.spans()


# A sink's TLS: (cert_file, key_file) it serves, and optionally the CA file its clients' certificates must chain to.
SinkCertificate = tuple[str | Path, str | Path]


class GrpcSink(_SinkBase, trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP/gRPC server. `failures` are (StatusCode, retry_delay_seconds | None) answered first.
    `port` 0 picks a free one; a fixed port lets a test bring a backend back where it was."""

    def __init__(
        self,
        failures: Iterable[tuple[grpc.StatusCode, float | None]] = (),
        tls: SinkCertificate | None = None,
        client_ca_file: str | Path | None = None,
        port: int = 0,
    ) -> None:
        super().__init__()
        self.failures = deque(failures)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self.server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_LogsServicer(self), self.server)
        if tls is None:
            self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        else:
            credentials = grpc.ssl_server_credentials(
                [(Path(tls[1]).read_bytes(), Path(tls[0]).read_bytes())],
                root_certificates=Path(client_ca_file).read_bytes() if client_ca_file else None,
                require_client_auth=client_ca_file is not None,
            )
            self.port = self.server.add_secure_port(f"127.0.0.1:{port}", credentials)
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def Export(self, request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> ExportTraceServiceResponse:  # noqa: N802
        with self.lock:
            self.attempts += 1
            failure = self.failures.popleft() if self.failures else None
            if failure is None:
                self.requests.append(request)
                self.raw_sizes.append(request.ByteSize())
        if failure is not None:
            code, delay = failure
            if delay is not None:
                retry = error_details_pb2.RetryInfo(
                    retry_delay=duration_pb2.Duration(seconds=int(delay), nanos=int((delay % 1) * 1e9))
                )
                status = status_pb2.Status(code=code.value[0], message="sink told to fail")
                status.details.add().Pack(retry)
                context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            context.abort(code, "sink told to fail")
        return ExportTraceServiceResponse()

    def close(self) -> None:
        self.server.stop(0)


class _LogsServicer(logs_service_pb2_grpc.LogsServiceServicer):
    """A GrpcSink's LogsService: log requests are kept beside the trace requests."""

    def __init__(self, sink: GrpcSink) -> None:
        self.sink = sink

    def Export(self, request: ExportLogsServiceRequest, context: grpc.ServicerContext) -> ExportLogsServiceResponse:  # noqa: N802
        with self.sink.lock:
            self.sink.log_requests.append(request)
        return ExportLogsServiceResponse()


class HttpSink(_SinkBase):
    """A real OTLP/HTTP server. `failures` are (HTTP status, Retry-After header | None) answered first."""

    def __init__(
        self,
        failures: Iterable[tuple[int, str | None]] = (),
        tls: SinkCertificate | None = None,
        client_ca_file: str | Path | None = None,
        port: int = 0,
    ) -> None:
        super().__init__()
        self.failures = deque(failures)
        self.headers_seen: list[dict[str, str]] = []
        self.scheme = "http" if tls is None else "https"
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with sink.lock:
                    sink.attempts += 1
                    sink.headers_seen.append(dict(self.headers))
                    failure = sink.failures.popleft() if sink.failures else None
                    if failure is None and self.path.endswith("/v1/logs"):
                        sink.log_requests.append(ExportLogsServiceRequest.FromString(body))
                    elif failure is None:
                        sink.requests.append(ExportTraceServiceRequest.FromString(body))
                if failure is not None:
                    status, retry_after = failure
                    self.send_response(status)
                    if retry_after is not None:
                        self.send_header("Retry-After", retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls[0], tls[1])
            if client_ca_file is not None:
                context.load_verify_locations(cafile=client_ca_file)
                context.verify_mode = ssl.CERT_REQUIRED
            # The handshake happens in the request's thread, so a failed one never blocks accepting.
            self.server.socket = context.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- config and the daemon ---------------------------------------------------


DEFAULT_POLICIES = [{"name": "keep-all", "type": "always_sample"}]


def config_dict(
    exporters: dict[str, Any],
    policies: list[dict[str, Any]] | None = None,
    **sampling: Any,
) -> dict[str, Any]:
    tail_sampling = {"decision_wait": "300ms", "num_traces": 10000, "policies": policies or DEFAULT_POLICIES}
    tail_sampling.update(sampling)
    return {
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}
        },
        "tail_sampling": tail_sampling,
        "batch": {"timeout": "50ms"},
        "exporters": exporters,
        "admin": {"endpoint": "127.0.0.1:0"},
        "logging": {"summary_interval": "0s"},
        "shutdown": {"timeout": "5s"},
    }


def fast_retry(endpoint: str, kind: str = "otlp", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "endpoint": endpoint,
        "retry_on_failure": {"initial_interval": "50ms", "max_interval": "200ms", "max_elapsed_time": "10s"},
    }
    if kind == "otlp":
        body["tls"] = {"insecure": True}
    body.update(extra)
    return body


def make_config(data: dict[str, Any]) -> Config:
    return parse_config(yaml.safe_dump(data), "<test>")


class DaemonThread:
    """The real daemon on its own event loop in a background thread, on ephemeral loopback ports."""

    def __init__(self, config: Config, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.loop = asyncio.new_event_loop()
        self.daemon: Daemon | None = None
        self._error: BaseException | None = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="daemon", daemon=True)
        self.thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.daemon = Daemon(self.config, config_path=self.config_path)
            self.loop.run_until_complete(self.daemon.start())
        except BaseException as exc:  # surfaced in the test thread
            self._error = exc
            if self.daemon is not None:  # release what did start (admin port, exporters)
                self.loop.run_until_complete(self.daemon.stop())
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], Any]) -> Any:
        async def wrapper() -> Any:
            return fn()

        return self.run(wrapper())

    @property
    def grpc_endpoint(self) -> str:
        assert self.daemon and self.daemon.grpc_receiver
        return f"127.0.0.1:{self.daemon.grpc_receiver.port}"

    @property
    def http_url(self) -> str:
        assert self.daemon and self.daemon.http_receiver
        return f"http://127.0.0.1:{self.daemon.http_receiver.port}/v1/traces"

    @property
    def http_logs_url(self) -> str:
        assert self.daemon and self.daemon.http_receiver
        return f"http://127.0.0.1:{self.daemon.http_receiver.port}/v1/logs"

    @property
    def admin_url(self) -> str:
        assert self.daemon
        return f"http://127.0.0.1:{self.daemon.admin.port}"

    @property
    def admin_token(self) -> str | None:
        """The first token of admin.auth, if the config sets one: the tests' own scrapes carry it."""
        auth = self.config.admin.auth
        return auth.bearer_tokens[0].get_secret_value() if auth is not None and auth.bearer_tokens else None

    def scrape(self) -> Metrics:
        return Metrics.scrape(self.admin_url, self.admin_token)

    def stop(self) -> None:
        if self.daemon is not None and self.thread.is_alive():
            self.run(self.daemon.stop(), timeout=60)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def wait_until_exported(daemon: DaemonThread, spans: int, timeout: float = 10.0) -> Metrics:
    """Wait until the daemon has kept at least `spans` spans (of traces kept when decided, and late
    spans of kept traces) and its exporters have settled every span it kept: sent, or counted as
    dropped. Then nothing more reaches a sink until more spans come in, so a test may assert what
    did not arrive. Call it once the decisions it depends on are counted
    (tail_sampler_traces_decided_total); it returns the scrape that showed the settled state."""

    def settled() -> Metrics | None:
        metrics = daemon.scrape()
        kept = metrics.value("tail_sampler_spans_decided_total", decision="kept") + metrics.value(
            "tail_sampler_late_spans_total", decision="kept"
        )
        done = metrics.value("tail_sampler_exporter_sent_spans_total") + metrics.value(
            "tail_sampler_exporter_dropped_spans_total"
        )
        return metrics if kept >= spans and done == kept else None

    return wait_until(settled, timeout, what=f"at least {spans} kept spans, all of them exported")


@dataclass
class Metrics:
    """A Prometheus scrape, parsed with prometheus-client's own text parser."""

    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    @classmethod
    def scrape(cls, admin_url: str, token: str | None = None) -> Metrics:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        text = requests.get(admin_url + "/metrics", headers=headers, timeout=5).text
        samples = []
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.append((sample.name, dict(sample.labels), sample.value))
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        return sum(v for n, lbl, v in self.samples if n == name and all(lbl.get(k) == w for k, w in labels.items()))

    def names(self) -> set[str]:
        return {n for n, _, _ in self.samples}


# --- clients -----------------------------------------------------------------


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def make_span(
    trace_id: bytes,
    span_id: bytes | None = None,
    parent: bytes = b"",
    name: str = "op",
    start_ms: int = 0,
    duration_ms: int = 10,
    error: bool = False,
    attributes: dict[str, Any] | None = None,
) -> Span:
    span = Span(
        trace_id=trace_id,
        span_id=span_id or os.urandom(8),
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=T0 + start_ms * MS,
        end_time_unix_nano=T0 + (start_ms + duration_ms) * MS,
        attributes=[kv(k, v) for k, v in (attributes or {}).items()],
    )
    if error:
        span.status.code = 2
    return span


def make_request(
    spans: Iterable[Span], service: str = "svc", scope: str = "test", resource_attributes: dict[str, Any] | None = None
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(kv("service.name", service))
    for key, value in (resource_attributes or {}).items():
        resource_spans.resource.attributes.append(kv(key, value))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return request


def make_trace(
    spans: int = 3,
    root: bool = True,
    error: bool = False,
    duration_ms: int = 50,
    attributes: dict[str, Any] | None = None,
) -> tuple[bytes, list[Span]]:
    trace_id = os.urandom(16)
    root_id = os.urandom(8)
    result = []
    for index in range(spans):
        is_root = index == 0 and root
        result.append(
            make_span(
                trace_id,
                root_id if index == 0 else None,
                parent=b"" if is_root else (root_id if index else os.urandom(8)),
                name=f"op-{index}",
                start_ms=0 if index == 0 else index,
                duration_ms=duration_ms if index == 0 else 1,
                error=error and index == spans - 1,
                attributes=attributes if index == spans - 1 else None,
            )
        )
    return trace_id, result


def minimal_spans_body(size: int) -> tuple[bytes, int]:
    """A serialized ExportTraceServiceRequest of at most `size` bytes, all of it minimal spans (a
    trace ID and a span ID, nothing else), each of a trace of its own: (body, spans)."""
    span_bytes = 2 + 18 + 10  # frame, trace_id, span_id
    spans = (size - 16) // span_bytes
    ids = os.urandom(24 * spans)
    scope_spans = bytearray()
    for index in range(spans):
        at = 24 * index
        scope_spans += b"\x12\x1c\x0a\x10" + ids[at : at + 16] + b"\x12\x08" + ids[at + 16 : at + 24]
    resource_spans = frame(b"\x12", bytes(scope_spans))
    return frame(b"\x0a", resource_spans), spans


def grpc_export(
    endpoint: str, request: ExportTraceServiceRequest | bytes, timeout: float = 10, **kwargs: Any
) -> ExportTraceServiceResponse:
    """One OTLP/gRPC Export call over a real channel; the body may be raw bytes."""
    with grpc.insecure_channel(endpoint, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        call = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        data = request if isinstance(request, bytes) else request.SerializeToString()
        return ExportTraceServiceResponse.FromString(call(data, timeout=timeout, **kwargs))


def http_export(
    url: str, body: bytes, content_type: str = "application/x-protobuf", gzipped: bool = False
) -> requests.Response:
    headers = {"Content-Type": content_type}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return requests.post(url, data=body, headers=headers, timeout=10)


def json_body(request: ExportTraceServiceRequest) -> bytes:
    from sampler.codecs.otlp_json import request_to_dict

    return json.dumps(request_to_dict(request)).encode()


def sdk_tracer(endpoint: str, protocol: str = "grpc", service: str = "svc") -> tuple[Any, Any]:
    """A TracerProvider whose spans go, as each ends, through the SDK's own OTLP exporter."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from sampler.telemetry.selftrace import make_exporter

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(make_exporter(endpoint, protocol)))
    return provider, provider.get_tracer("tests")
