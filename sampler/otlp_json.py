"""The OTLP/JSON mapping of trace export requests.

OTLP/JSON is protobuf's JSON mapping with two differences that matter here:
trace and span IDs are hex strings (not base64), and enums are integers.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _child_list(obj: dict[str, Any], camel: str, snake: str) -> list[Any]:
    value = obj.get(camel, obj.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{camel} must be an array")
    return value


def _convert_ids(request: Any, convert: Callable[[str, str], str]) -> None:
    if not isinstance(request, dict):
        raise ValueError("the request must be a JSON object")
    for resource_spans in _child_list(request, "resourceSpans", "resource_spans"):
        if not isinstance(resource_spans, dict):
            raise ValueError("resourceSpans entries must be objects")
        for scope_spans in _child_list(resource_spans, "scopeSpans", "scope_spans"):
            if not isinstance(scope_spans, dict):
                raise ValueError("scopeSpans entries must be objects")
            for span in _child_list(scope_spans, "spans", "spans"):
                if not isinstance(span, dict):
                    raise ValueError("spans entries must be objects")
                _convert_fields(span, convert)
                for link in _child_list(span, "links", "links"):
                    if isinstance(link, dict):
                        _convert_fields(link, convert)


def _convert_fields(obj: dict[str, Any], convert: Callable[[str, str], str]) -> None:
    for name in _ID_FIELDS:
        value = obj.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a hex string")
            obj[name] = convert(name, value)


def _hex_to_base64(name: str, value: str) -> str:
    try:
        return base64.b64encode(bytes.fromhex(value)).decode("ascii")
    except ValueError:
        raise ValueError(f"{name} {value[:64]!r} is not a hex string") from None


def _base64_to_hex(name: str, value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).hex()
    except binascii.Error:  # pragma: no cover - protobuf always emits valid base64
        raise ValueError(f"{name} is not base64") from None


def request_from_json(data: bytes | str) -> ExportTraceServiceRequest:
    """Parse an OTLP/JSON trace request; raises ValueError with a readable reason."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    _convert_ids(document, _hex_to_base64)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    return request


def request_to_dict(request: ExportTraceServiceRequest) -> dict[str, Any]:
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    _convert_ids(document, _base64_to_hex)
    return document


def request_to_json(request: ExportTraceServiceRequest) -> str:
    """One line of OTLP/JSON, as the Collector's file exporter writes it."""
    return json.dumps(request_to_dict(request), separators=(",", ":"))
