"""OTLP/HTTP receiver: POST /v1/traces and /v1/logs, binary protobuf or JSON, optionally gzip."""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2

from sampler.config.receivers import HttpProtocolConfig, ZipkinReceiverConfig
from sampler.receive.connections import LimitedTCPSite
from sampler.receive.credentials import ServerTls, TokenAuth, describe_security, token_middleware
from sampler.receive.ingest import RETRY_AFTER_SECONDS, Ingest, WindowFull
from sampler.receive.split import BadRequest, parse_json
from sampler.receive.split_logs import parse_logs_json, parse_logs_protobuf
from sampler.telemetry.endpoints import ListenError, split_endpoint

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"
_INVALID_ARGUMENT = 3
_RESOURCE_EXHAUSTED = 8
_UNAVAILABLE = 14
_UNAUTHENTICATED = 16


_ENCODINGS = ("identity", "", "gzip", "deflate")


class UnsupportedEncoding(Exception):
    """A Content-Encoding other than gzip, deflate or none."""


class BodyTooLarge(Exception):
    """The body, as sent or inflated, would pass max_request_body_size."""


def _inflate(data: bytes, limit: int) -> bytes:
    """Inflate a gzip (or zlib) body, one member after another, refusing to produce
    more than `limit` bytes: a small bomb costs no more than an honest full-size body."""
    inflated = bytearray()
    while data:
        decompressor = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
        inflated += decompressor.decompress(data, limit + 1 - len(inflated))
        if len(inflated) > limit or decompressor.unconsumed_tail:
            raise BodyTooLarge
        if not decompressor.eof:
            raise ValueError("the compressed body is truncated")
        data = decompressor.unused_data
    return bytes(inflated)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, inflated, of at most `limit` bytes. The receivers inflate bodies
    themselves (aiohttp's auto_decompress is off): aiohttp would inflate all of an
    oversized body while it drains the connection after the 413.

    Raises UnsupportedEncoding, BodyTooLarge, or another exception for a body that cannot be read."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in _ENCODINGS:
        raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    try:
        data = await request.read()  # client_max_size bounds the body as sent
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge from None
    return _inflate(data, limit) if encoding in ("gzip", "deflate") else data


def _encode(message: Message, content_type: str) -> bytes:
    if content_type == JSON:
        return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()
    return message.SerializeToString()


def _status_response(http_status: int, code: int, message: str, content_type: str) -> web.Response:
    body = _encode(status_pb2.Status(code=code, message=message), content_type)
    return web.Response(status=http_status, body=body, content_type=content_type)


class HttpReceiver:
    """OTLP/HTTP; subclasses serve other formats over HTTP (Zipkin) through `_add_routes`."""

    # Named when the endpoint cannot be listened on, with the config key that moves it.
    listener_name = "OTLP/HTTP"
    endpoint_key = "receivers.otlp.protocols.http.endpoint"
    # The protocol label of metrics.
    protocol = "http"

    def __init__(self, config: HttpProtocolConfig | ZipkinReceiverConfig, ingest: Ingest) -> None:
        self._config = config
        self._ingest = ingest
        self._runner: web.AppRunner | None = None
        self._auth: TokenAuth | None = None
        self.port = 0
        # Several worker processes listen on the same port (the `workers` key); the kernel spreads connections.
        self.reuse_port = False

    def _error(self, request: web.Request, http_status: int, code: int, message: str) -> web.Response:
        """A refusal in this receiver's format: for OTLP, a Status (gRPC `code`) in the request's encoding."""
        return _status_response(http_status, code, message, JSON if request.content_type == JSON else PROTOBUF)

    def _unauthenticated(self, request: web.Request, message: str) -> web.Response:
        return self._error(request, 401, _UNAUTHENTICATED, message)

    def _window_full(self, request: web.Request, exc: WindowFull) -> web.Response:
        reply = self._error(request, 503, _UNAVAILABLE, str(exc))
        reply.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return reply

    async def _export(self, request: web.Request) -> web.Response:
        # A protobuf body goes to the splitter as it is (receive/bounds.py).
        return await self._export_signal(request, parse_json, None, self._ingest.accept)

    async def _export_logs(self, request: web.Request) -> web.Response:
        return await self._export_signal(request, parse_logs_json, parse_logs_protobuf, self._ingest.accept_logs)

    async def _export_signal(
        self,
        request: web.Request,
        from_json: Callable[[bytes], Any],
        from_protobuf: Callable[[bytes], Any] | None,
        accept: Callable[[Any, str, float | None], Awaitable[Message]],
    ) -> web.Response:
        content_type = request.content_type
        if content_type not in (PROTOBUF, JSON):
            self._ingest.count_failure("http", "unsupported_media_type")
            return _status_response(
                415, _INVALID_ARGUMENT, f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}", PROTOBUF
            )
        try:
            left = await self._ingest.room("http")
        except WindowFull as exc:
            return self._window_full(request, exc)
        limit = self._config.max_request_body_size
        try:
            data = await read_body(request, limit)
        except UnsupportedEncoding as exc:
            self._ingest.count_failure("http", "unsupported_media_type")
            return _status_response(415, _INVALID_ARGUMENT, str(exc), content_type)
        except BodyTooLarge:
            self._ingest.count_failure("http", "too_large")
            return _status_response(
                413, _RESOURCE_EXHAUSTED, f"request body exceeds max_request_body_size ({limit} bytes)", content_type
            )
        except Exception as exc:  # corrupt gzip stream and the like
            self._ingest.count_failure("http", "invalid")
            return _status_response(400, _INVALID_ARGUMENT, f"cannot read request body: {exc}", content_type)
        parse = from_json if content_type == JSON else from_protobuf
        try:
            what = "OTLP JSON request" if content_type == JSON else "protobuf export request"
            parsed = data if parse is None else await self._ingest.decode(parse, data, "http", what)
            del data  # a large body need not outlive its parsing
            response = await accept(parsed, "http", left)
        except BadRequest as exc:
            self._ingest.count_failure("http", "invalid")
            return _status_response(400, _INVALID_ARGUMENT, str(exc), content_type)
        except WindowFull as exc:
            return self._window_full(request, exc)
        return web.Response(status=200, body=_encode(response, content_type), content_type=content_type)

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post(TRACES_PATH, self._export)
        app.router.add_post(LOGS_PATH, self._export_logs)

    async def start(self) -> None:
        metrics = self._ingest.metrics
        if self._config.auth is not None:
            self._auth = TokenAuth(self._config.auth, self.protocol, metrics)
        tls = ServerTls(self._config.tls, self.protocol, metrics) if self._config.tls is not None else None
        app = web.Application(
            client_max_size=self._config.max_request_body_size,
            middlewares=[token_middleware(self._auth, self._unauthenticated)] if self._auth is not None else [],
        )
        self._add_routes(app)
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5.0,
            auto_decompress=False,  # see read_body
            keepalive_timeout=self._config.idle_timeout,
        )
        await runner.setup()
        host, port = split_endpoint(self._config.endpoint)
        site = LimitedTCPSite(
            runner,
            host,
            port,
            ssl_context=tls.server_context() if tls is not None else None,
            max_connections=self._config.max_connections,
            reuse_port=self.reuse_port or None,
            on_refused=lambda: self._ingest.count_refused_connection(self.protocol, "max_connections"),
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ListenError(self.listener_name, self._config.endpoint, self.endpoint_key, exc) from None
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._ingest.watch_open_connections(self.protocol, lambda: site.open_connections)
        if tls is not None or self._auth is not None:
            log.info(
                "%s on port %d: %s",
                self.listener_name,
                self.port,
                describe_security(self._config.tls, self._config.auth),
            )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
