"""OTLP/HTTP receiver: POST /v1/traces, binary protobuf or JSON, optionally gzip."""

from __future__ import annotations

import json

from aiohttp import web
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from sampler.config import HttpProtocolConfig
from sampler.endpoints import split_endpoint
from sampler.receive.decode import BadRequest, parse_json, parse_protobuf
from sampler.receive.ingest import RETRY_AFTER_SECONDS, Ingest, WindowFull

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACES_PATH = "/v1/traces"
_INVALID_ARGUMENT = 3
_RESOURCE_EXHAUSTED = 8
_UNAVAILABLE = 14


def _encode(message: status_pb2.Status | ExportTraceServiceResponse, content_type: str) -> bytes:
    if content_type == JSON:
        return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode()
    return message.SerializeToString()


def _status_response(http_status: int, code: int, message: str, content_type: str) -> web.Response:
    body = _encode(status_pb2.Status(code=code, message=message), content_type)
    return web.Response(status=http_status, body=body, content_type=content_type)


class HttpReceiver:
    def __init__(self, config: HttpProtocolConfig, ingest: Ingest) -> None:
        self._config = config
        self._ingest = ingest
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _export(self, request: web.Request) -> web.Response:
        content_type = request.content_type
        if content_type not in (PROTOBUF, JSON):
            self._ingest.count_failure("http", "unsupported_media_type")
            return _status_response(
                415, _INVALID_ARGUMENT, f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}", PROTOBUF
            )
        try:
            left = await self._ingest.room("http")
        except WindowFull as exc:
            return self._refusal(str(exc), content_type)
        try:
            # aiohttp decompresses Content-Encoding: gzip and enforces client_max_size on the decompressed body.
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            self._ingest.count_failure("http", "too_large")
            return _status_response(
                413,
                _RESOURCE_EXHAUSTED,
                f"request body exceeds max_request_body_size ({self._config.max_request_body_size} bytes)",
                content_type,
            )
        except Exception as exc:  # corrupt gzip stream and the like
            self._ingest.count_failure("http", "invalid")
            return _status_response(400, _INVALID_ARGUMENT, f"cannot read request body: {exc}", content_type)
        try:
            parsed = parse_json(data) if content_type == JSON else parse_protobuf(data)
        except BadRequest as exc:
            self._ingest.count_failure("http", "invalid")
            return _status_response(400, _INVALID_ARGUMENT, str(exc), content_type)
        try:
            response = await self._ingest.accept(parsed, "http", left)
        except WindowFull as exc:
            return self._refusal(str(exc), content_type)
        return web.Response(status=200, body=_encode(response, content_type), content_type=content_type)

    @staticmethod
    def _refusal(message: str, content_type: str) -> web.Response:
        reply = _status_response(503, _UNAVAILABLE, message, content_type)
        reply.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return reply

    async def start(self) -> None:
        app = web.Application(client_max_size=self._config.max_request_body_size)
        app.router.add_post(TRACES_PATH, self._export)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
        await runner.setup()
        host, port = split_endpoint(self._config.endpoint)
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(f"cannot listen for OTLP/HTTP on {self._config.endpoint}: {exc.strerror}") from None
        self._runner = runner
        self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
