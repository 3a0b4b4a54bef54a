"""Zipkin v2 spans to OTLP (the Zipkin receiver), by the mapping sampler/codecs/zipkin/mapping.py describes."""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from sampler.codecs.zipkin.mapping import (
    DEBUG,
    KIND_FROM_ZIPKIN,
    LOCAL_ADDRESS,
    LOCAL_PORT,
    PEER_ADDRESS,
    PEER_PORT,
    PEER_SERVICE,
    SERVICE_NAME,
    SHARED,
    TAG_DROPPED_ATTRIBUTES,
    TAG_DROPPED_EVENTS,
    TAG_DROPPED_LINKS,
    TAG_ERROR,
    TAG_LIBRARY_NAME,
    TAG_LIBRARY_VERSION,
    TAG_LINK_PREFIX,
    TAG_SCOPE_NAME,
    TAG_SCOPE_VERSION,
    TAG_STATUS_CODE,
    TAG_STATUS_DESCRIPTION,
    TAG_TRACE_STATE,
    compact_json,
)

_STATUS_FROM_TAG = {
    "ERROR": Status.STATUS_CODE_ERROR,
    "STATUS_CODE_ERROR": Status.STATUS_CODE_ERROR,
    "OK": Status.STATUS_CODE_OK,
    "STATUS_CODE_OK": Status.STATUS_CODE_OK,
}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_FLOAT_CHARACTERS = frozenset("0123456789.-+eE")

# Zipkin times are µs since the epoch; in ns, start + duration must stay within a uint64.
_MAX_MICROS = (1 << 63) // 1000
_MAX_UINT32 = 0xFFFFFFFF


def any_value(value: Any) -> AnyValue:
    """A JSON value as an attribute value."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value) if -(1 << 63) <= value < (1 << 63) else AnyValue(string_value=str(value))
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, list):
        result = AnyValue()
        result.array_value.values.extend(any_value(item) for item in value)
        return result
    if isinstance(value, dict):
        result = AnyValue()
        result.kvlist_value.values.extend(KeyValue(key=str(k), value=any_value(v)) for k, v in value.items())
        return result
    return AnyValue()


def _small_count(text: str) -> int | None:
    """A decimal count that fits a uint32, or None."""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if value <= _MAX_UINT32 else None


def _typed_tag(text: str) -> AnyValue:
    """parse_string_tags: "true"/"false", integers and decimals get their types back."""
    if text == "true" or text == "false":
        return AnyValue(bool_value=text == "true")
    digits = text[1:] if text[:1] == "-" else text
    if digits.isascii() and digits.isdigit():
        if len(digits) <= 19:  # longer cannot be an int64 (and int() of huge strings refuses)
            value = int(text)
            if -(1 << 63) <= value < (1 << 63):
                return AnyValue(int_value=value)
    elif digits and _FLOAT_CHARACTERS.issuperset(digits) and any(c.isdigit() for c in digits):
        try:
            return AnyValue(double_value=float(text))
        except ValueError:
            pass
    return AnyValue(string_value=text)


def _hex_id(span: dict[str, Any], field: str, size: int, required: bool = True) -> bytes:
    value = span.get(field)
    if value is None:
        if required:
            raise ValueError(f"{field} is required")
        return b""
    if not isinstance(value, str) or not 0 < len(value) <= size * 2 or not _HEX_DIGITS.issuperset(value):
        raise ValueError(f"{field} must be 1 to {size * 2} hex digits, not {str(value)[:64]!r}")
    return bytes.fromhex(value.rjust(size * 2, "0"))


def _micros(span: dict[str, Any], field: str) -> int:
    value = span.get(field)
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_MICROS:
        raise ValueError(f"{field} must be a whole number of microseconds, not {str(value)[:64]!r}")
    return value


def _text(obj: dict[str, Any], field: str, where: str = "") -> str:
    value = obj.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{where}{field} must be a string")
    return value


def _tags(span: dict[str, Any]) -> dict[str, str]:
    tags = span.get("tags")
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise ValueError("tags must be an object of strings")
    result = {}
    for key, value in tags.items():
        if isinstance(value, str):
            result[key] = value
        elif isinstance(value, (bool, int, float)):  # lenient with clients that send numbers
            result[key] = compact_json(value)
        else:
            raise ValueError(f"tag {key!r} must be a string")
    return result


def _endpoint(span: dict[str, Any], field: str) -> tuple[str, str, int]:
    """(serviceName, ip, port) of an endpoint; empty when absent."""
    endpoint = span.get(field)
    if endpoint is None:
        return "", "", 0
    if not isinstance(endpoint, dict):
        raise ValueError(f"{field} must be an object")
    where = f"{field}."
    service = _text(endpoint, "serviceName", where)
    ip = _text(endpoint, "ipv4", where) or _text(endpoint, "ipv6", where)
    port = endpoint.get("port", 0) or 0
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
        raise ValueError(f"{where}port must be a port number")
    return service, ip, port


def _event(annotation: Any) -> Span.Event:
    if not isinstance(annotation, dict):
        raise ValueError("annotations must be objects")
    value = _text(annotation, "value", "annotations[].")
    event = Span.Event(time_unix_nano=_micros(annotation, "timestamp") * 1000, name=value)
    if value[:1] == '"':  # the specification's `"name":{attributes}`
        try:
            parsed = json.loads("{" + value + "}")
        except (ValueError, RecursionError):  # JSONDecodeError, or an int of too many digits
            parsed = None
        if isinstance(parsed, dict) and len(parsed) == 1:
            name, attributes = next(iter(parsed.items()))
            if isinstance(attributes, dict):
                event.name = name
                event.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in attributes.items())
        return event
    parts = value.split("|")
    dropped = _small_count(parts[-1]) if len(parts) >= 3 else None
    if dropped is not None:  # the Collector's `name|{attributes}|dropped`
        try:
            attributes = json.loads("|".join(parts[1:-1]))
        except (ValueError, RecursionError):  # JSONDecodeError, or an int of too many digits
            return event
        if isinstance(attributes, dict):
            event.name = parts[0]
            event.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in attributes.items())
            event.dropped_attributes_count = dropped
    return event


def _link(text: str) -> Span.Link | None:
    """A link from the Collector's `traceid|spanid|tracestate|{attributes}|dropped` tag."""
    parts = text.split("|")
    dropped = _small_count(parts[-1]) if len(parts) >= 5 else None
    if dropped is None:
        return None
    trace_hex, span_hex, trace_state = parts[0], parts[1], parts[2]
    if len(trace_hex) != 32 or len(span_hex) != 16 or not _HEX_DIGITS.issuperset(trace_hex + span_hex):
        return None
    try:
        attributes = json.loads("|".join(parts[3:-1]))
    except (ValueError, RecursionError):  # JSONDecodeError, or an int of too many digits
        return None
    if not isinstance(attributes, dict):
        return None
    link = Span.Link(
        trace_id=bytes.fromhex(trace_hex),
        span_id=bytes.fromhex(span_hex),
        trace_state=trace_state,
        dropped_attributes_count=dropped,
    )
    link.attributes.extend(KeyValue(key=k, value=any_value(v)) for k, v in attributes.items())
    return link


def _count_tag(tags: dict[str, str], key: str) -> int:
    text = tags.get(key)
    count = None if text is None else _small_count(text)
    if count is None:  # absent, or not a count: an unparsable one stays a tag
        return 0
    del tags[key]
    return count


def _apply_status(span: Span, tags: dict[str, str]) -> None:
    code = _STATUS_FROM_TAG.get(tags.get(TAG_STATUS_CODE, "").upper())
    if code is not None:
        del tags[TAG_STATUS_CODE]
    description = tags.pop(TAG_STATUS_DESCRIPTION, None)
    error = tags.get(TAG_ERROR)
    if error is not None and error.lower() != "false":
        del tags[TAG_ERROR]
        code = Status.STATUS_CODE_ERROR
        if description is None and error.lower() != "true":
            description = error
    if code is not None:
        span.status.code = code
        if code == Status.STATUS_CODE_ERROR and description:
            span.status.message = description


def span_from_zipkin(zipkin: Any, parse_string_tags: bool = False) -> tuple[str, str, str, Span]:
    """(service name, scope name, scope version, OTLP span) of one Zipkin v2 span.
    Raises ValueError naming the field that is not as the Zipkin v2 API defines it."""
    if not isinstance(zipkin, dict):
        raise ValueError("must be a JSON object")
    span = Span(
        trace_id=_hex_id(zipkin, "traceId", 16),
        span_id=_hex_id(zipkin, "id", 8),
        name=_text(zipkin, "name"),
    )
    parent = _hex_id(zipkin, "parentId", 8, required=False)
    if parent and parent != span.span_id:
        span.parent_span_id = parent
    kind = zipkin.get("kind")
    if kind is None:
        span.kind = Span.SPAN_KIND_INTERNAL
    elif isinstance(kind, str) and kind in KIND_FROM_ZIPKIN:
        span.kind = KIND_FROM_ZIPKIN[kind]
    else:
        raise ValueError(f"kind must be one of {', '.join(KIND_FROM_ZIPKIN)}, not {str(kind)[:64]!r}")
    start = _micros(zipkin, "timestamp") * 1000
    span.start_time_unix_nano = start
    span.end_time_unix_nano = start + _micros(zipkin, "duration") * 1000
    annotations = zipkin.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, list):
            raise ValueError("annotations must be an array")
        span.events.extend(_event(annotation) for annotation in annotations)

    tags = _tags(zipkin)
    _apply_status(span, tags)
    scope_name = tags.pop(TAG_SCOPE_NAME, None)
    library_name = tags.pop(TAG_LIBRARY_NAME, "")
    scope_version = tags.pop(TAG_SCOPE_VERSION, None)
    library_version = tags.pop(TAG_LIBRARY_VERSION, "")
    span.dropped_attributes_count = _count_tag(tags, TAG_DROPPED_ATTRIBUTES)
    span.dropped_events_count = _count_tag(tags, TAG_DROPPED_EVENTS)
    span.dropped_links_count = _count_tag(tags, TAG_DROPPED_LINKS)
    span.trace_state = tags.pop(TAG_TRACE_STATE, "")
    index = 0
    while (text := tags.get(f"{TAG_LINK_PREFIX}{index}")) is not None:
        link = _link(text)
        if link is None:
            break
        span.links.append(link)
        del tags[f"{TAG_LINK_PREFIX}{index}"]
        index += 1

    service, local_ip, local_port = _endpoint(zipkin, "localEndpoint")
    peer_service, peer_ip, peer_port = _endpoint(zipkin, "remoteEndpoint")
    attributes = span.attributes
    for key, text in tags.items():
        attributes.append(
            KeyValue(key=key, value=_typed_tag(text) if parse_string_tags else AnyValue(string_value=text))
        )
    # An endpoint's fields become attributes where no tag already says the same.
    for key, text, number in (
        (LOCAL_ADDRESS, local_ip, 0),
        (LOCAL_PORT, "", local_port),
        (PEER_SERVICE, peer_service, 0),
        (PEER_ADDRESS, peer_ip, 0),
        (PEER_PORT, "", peer_port),
    ):
        if (text or number) and key not in tags:
            attributes.append(
                KeyValue(key=key, value=AnyValue(int_value=number) if number else AnyValue(string_value=text))
            )
    if zipkin.get("shared") is True:
        attributes.append(KeyValue(key=SHARED, value=AnyValue(bool_value=True)))
    if zipkin.get("debug") is True:
        attributes.append(KeyValue(key=DEBUG, value=AnyValue(bool_value=True)))
    return service, scope_name or library_name, scope_version or library_version, span


def request_from_zipkin(spans: Any, parse_string_tags: bool = False) -> ExportTraceServiceRequest:
    """An OTLP export request holding Zipkin v2 spans, one ResourceSpans per service and one
    ScopeSpans per instrumentation scope. Raises ValueError naming the span and field at fault."""
    if not isinstance(spans, list):
        raise ValueError("the body must be a JSON array of Zipkin v2 spans")
    request = ExportTraceServiceRequest()
    resources: dict[str, ResourceSpans] = {}
    scopes: dict[tuple[str, str, str], ScopeSpans] = {}
    for index, zipkin in enumerate(spans):
        try:
            service, scope_name, scope_version, span = span_from_zipkin(zipkin, parse_string_tags)
        except ValueError as exc:
            raise ValueError(f"span {index}: {exc}") from None
        except RecursionError:
            raise ValueError(f"span {index}: an annotation's attributes are nested too deeply") from None
        key = (service, scope_name, scope_version)
        scope_spans = scopes.get(key)
        if scope_spans is None:
            resource_spans = resources.get(service)
            if resource_spans is None:
                resource_spans = resources[service] = request.resource_spans.add()
                if service:
                    resource_spans.resource.attributes.add(key=SERVICE_NAME).value.string_value = service
            scope_spans = scopes[key] = resource_spans.scope_spans.add()
            if scope_name or scope_version:
                scope_spans.scope.name = scope_name
                scope_spans.scope.version = scope_version
        scope_spans.spans.append(span)
    return request


def parse_json(data: bytes, parse_string_tags: bool = False) -> ExportTraceServiceRequest:
    """A Zipkin `POST /api/v2/spans` JSON body as an OTLP export request; ValueError if malformed."""
    try:
        document = json.loads(data)
    except ValueError as exc:  # not JSON, not UTF-8, or an integer of too many digits
        raise ValueError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    return request_from_zipkin(document, parse_string_tags)
