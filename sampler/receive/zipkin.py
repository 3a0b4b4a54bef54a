"""Zipkin receiver: POST /api/v2/spans, Zipkin v2 spans as a JSON array or a protobuf
ListOfSpans, optionally gzip.

The spans are mapped to one OTLP export request (sampler.codecs.zipkin.to_otlp) and ingested like
an OTLP one, so the window, the policies and every exporter treat them the same.
Answers follow the Zipkin server: 202 when accepted, a plain-text reason otherwise.
"""

from __future__ import annotations

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from sampler.codecs.zipkin import proto, to_otlp
from sampler.config.receivers import ZipkinReceiverConfig
from sampler.receive.http import BodyTooLarge, HttpReceiver, UnsupportedEncoding, read_body
from sampler.receive.ingest import Ingest, WindowFull
from sampler.receive.split import BadRequest

SPANS_PATH = "/api/v2/spans"
PROTOCOL = "zipkin"
_JSON = "application/json"
# What aiohttp reports when a request has no Content-Type; Zipkin reads such a body as JSON.
_NO_CONTENT_TYPE = "application/octet-stream"


def _reply(status: int, text: str = "") -> web.Response:
    return web.Response(status=status, text=text) if text else web.Response(status=status)


class ZipkinReceiver(HttpReceiver):
    listener_name = "Zipkin"
    endpoint_key = "receivers.zipkin.endpoint"
    protocol = PROTOCOL

    def __init__(self, config: ZipkinReceiverConfig, ingest: Ingest) -> None:
        super().__init__(config, ingest)
        self._parse_string_tags = config.parse_string_tags

    def _from_protobuf(self, data: bytes) -> ExportTraceServiceRequest:
        try:
            return to_otlp.request_from_zipkin(proto.decode(data), self._parse_string_tags)
        except ValueError as exc:
            raise BadRequest(f"malformed Zipkin v2 protobuf: {exc}") from None

    def _from_json(self, data: bytes) -> ExportTraceServiceRequest:
        try:
            return to_otlp.parse_json(data, self._parse_string_tags)
        except ValueError as exc:
            raise BadRequest(f"malformed Zipkin v2 JSON: {exc}") from None

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_post(SPANS_PATH, self._spans)

    def _error(self, request: web.Request, http_status: int, code: int, message: str) -> web.Response:
        return _reply(http_status, message)  # Zipkin answers in plain text

    async def _spans(self, request: web.Request) -> web.Response:
        content_type = request.content_type
        protobuf = content_type == proto.CONTENT_TYPE
        json_body = content_type == _JSON or (
            content_type == _NO_CONTENT_TYPE and "Content-Type" not in request.headers
        )
        if not (protobuf or json_body):
            self._ingest.count_failure(PROTOCOL, "unsupported_media_type")
            return _reply(
                415,
                f"unsupported Content-Type {content_type!r}; "
                f"this receiver takes Zipkin v2 {_JSON} or {proto.CONTENT_TYPE}",
            )
        try:
            left = await self._ingest.room(PROTOCOL)
        except WindowFull as exc:
            return self._window_full(request, exc)
        limit = self._config.max_request_body_size
        try:
            data = await read_body(request, limit)
        except UnsupportedEncoding as exc:
            self._ingest.count_failure(PROTOCOL, "unsupported_media_type")
            return _reply(415, str(exc))
        except BodyTooLarge:
            self._ingest.count_failure(PROTOCOL, "too_large")
            return _reply(413, f"request body exceeds max_request_body_size ({limit} bytes)")
        except Exception as exc:  # corrupt gzip stream and the like
            self._ingest.count_failure(PROTOCOL, "invalid")
            return _reply(400, f"cannot read request body: {exc}")
        try:
            what = f"Zipkin v2 {'protobuf' if protobuf else 'JSON'} body"
            parsed = await self._ingest.decode(
                self._from_protobuf if protobuf else self._from_json, data, PROTOCOL, what
            )
        except BadRequest as exc:  # malformed, or a gap in the mapping: still the body's fault, never a 500
            self._ingest.count_failure(PROTOCOL, "invalid")
            return _reply(400, str(exc))
        try:
            response = await self._ingest.accept(parsed, PROTOCOL, left)
        except WindowFull as exc:
            return self._window_full(request, exc)
        return _reply(202, response.partial_success.error_message)
