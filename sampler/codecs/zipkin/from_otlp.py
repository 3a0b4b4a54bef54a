"""OTLP spans to Zipkin v2 (the Zipkin exporter), by the mapping sampler/codecs/zipkin/mapping.py describes."""

from __future__ import annotations

import base64
import ipaddress
import math
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

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
    TAG_TRACE_STATE,
    compact_json,
)

DEFAULT_SERVICE_NAME = "unknown_service"

_KIND_TO_ZIPKIN = {kind: name for name, kind in KIND_FROM_ZIPKIN.items()}
_REMOTE_SERVICE_KINDS = (Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_PRODUCER)

# The specification's ranking of attributes naming the remote side of a client or producer
# span, after peer.service; address attributes (ranks 4, 6, 8) fill the endpoint's IP instead.
_REMOTE_NAME_RANKING = (
    "server.address",
    "net.peer.name",
    "server.socket.domain",
    "net.sock.peer.name",
    "peer.hostname",
    "peer.address",
    "db.name",
)
_REMOTE_IP_RANKING = (
    (PEER_ADDRESS, PEER_PORT),
    ("server.socket.address", "server.socket.port"),
    ("net.sock.peer.addr", "net.sock.peer.port"),
)

_ZERO_HIGH_HALF = bytes(8)
_ZERO_SPAN_ID = bytes(8)


def plain_value(value: AnyValue) -> Any:
    """An attribute value as the JSON value it stands for (bytes as base64)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        # JSON has no NaN or infinity, and a Zipkin server refuses a whole request over one.
        return number if math.isfinite(number) else repr(number)
    if kind == "array_value":
        return [plain_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: plain_value(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def tag_value(value: AnyValue) -> str:
    """An attribute value as a Zipkin tag: booleans in lower case, arrays and maps as JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value)
    if kind is None:
        return ""
    plain = plain_value(value)
    return plain if isinstance(plain, str) else compact_json(plain)


def _trace_id_hex(trace_id: bytes) -> str:
    # Zipkin keeps a 64-bit trace ID as 16 digits; an OTLP ID whose high half is zero is one.
    if trace_id[:8] == _ZERO_HIGH_HALF:
        return trace_id[8:].hex()
    return trace_id.hex()


def _ip_endpoint(address: str | None, port: str | None) -> dict[str, Any]:
    """ipv4 or ipv6 and port fields, or nothing when the address is not an IP literal."""
    if not address:
        return {}
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return {}
    fields: dict[str, Any] = {"ipv4" if ip.version == 4 else "ipv6": str(ip)}
    if port and port.isdigit() and 0 < int(port) < 65536:
        fields["port"] = int(port)
    return fields


def _local_endpoint(service: str, tags: dict[str, str]) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"serviceName": service}
    address = _ip_endpoint(tags.get(LOCAL_ADDRESS), tags.get(LOCAL_PORT))
    if address:
        endpoint.update(address)
        tags.pop(LOCAL_ADDRESS)
        if "port" in address:
            tags.pop(LOCAL_PORT)
    return endpoint


def _remote_endpoint(kind: int, tags: dict[str, str]) -> dict[str, Any] | None:
    endpoint: dict[str, Any] = {}
    peer_service = tags.pop(PEER_SERVICE, None)
    if peer_service:
        endpoint["serviceName"] = peer_service
    elif kind in _REMOTE_SERVICE_KINDS:
        for key in _REMOTE_NAME_RANKING:
            name = tags.get(key)
            if name:
                endpoint["serviceName"] = name
                break
    for address_key, port_key in _REMOTE_IP_RANKING:
        address = _ip_endpoint(tags.get(address_key), tags.get(port_key))
        if address:
            endpoint.update(address)
            if address_key == PEER_ADDRESS:  # the one received endpoints turn back into
                tags.pop(PEER_ADDRESS)
                if "port" in address:
                    tags.pop(PEER_PORT)
            break
    return endpoint or None


def _annotation_value(event: Span.Event) -> str:
    if not event.attributes:
        return event.name
    attributes = {item.key: plain_value(item.value) for item in event.attributes}
    return f"{compact_json(event.name)}:{compact_json(attributes)}"


def _link_tag(link: Span.Link) -> str:
    attributes = {item.key: plain_value(item.value) for item in link.attributes}
    return (
        f"{link.trace_id.hex()}|{link.span_id.hex()}|{link.trace_state}|"
        f"{compact_json(attributes)}|{link.dropped_attributes_count}"
    )


def span_to_zipkin(span: Span, service: str, inherited_tags: dict[str, str]) -> dict[str, Any]:
    """One Zipkin v2 span (a JSON-ready dict). `inherited_tags` are the resource and scope tags."""
    tags = dict(inherited_tags)
    for attribute in span.attributes:
        tags[attribute.key] = tag_value(attribute.value)
    zipkin: dict[str, Any] = {"traceId": _trace_id_hex(span.trace_id), "id": span.span_id.hex()}
    parent = span.parent_span_id
    if len(parent) == 8 and parent != _ZERO_SPAN_ID:  # anything else a Zipkin server would refuse
        zipkin["parentId"] = parent.hex()
    kind = _KIND_TO_ZIPKIN.get(span.kind)
    if kind is not None:
        zipkin["kind"] = kind
    if span.name:
        zipkin["name"] = span.name
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    if start:
        zipkin["timestamp"] = start // 1000
    if end > start:
        zipkin["duration"] = max(1, (end - start) // 1000)
    zipkin["localEndpoint"] = _local_endpoint(service, tags)
    remote = _remote_endpoint(span.kind, tags)
    if remote is not None:
        zipkin["remoteEndpoint"] = remote
    if span.events:
        zipkin["annotations"] = [
            {"timestamp": event.time_unix_nano // 1000, "value": _annotation_value(event)} for event in span.events
        ]
    code = span.status.code
    if code == Status.STATUS_CODE_ERROR:
        tags[TAG_STATUS_CODE] = "ERROR"
        tags[TAG_ERROR] = span.status.message
    else:
        # Zipkin counts any span with an error tag as failed.
        tags.pop(TAG_ERROR, None)
        if code == Status.STATUS_CODE_OK:
            tags[TAG_STATUS_CODE] = "OK"
    if span.dropped_attributes_count:
        tags[TAG_DROPPED_ATTRIBUTES] = str(span.dropped_attributes_count)
    if span.dropped_events_count:
        tags[TAG_DROPPED_EVENTS] = str(span.dropped_events_count)
    if span.dropped_links_count:
        tags[TAG_DROPPED_LINKS] = str(span.dropped_links_count)
    if span.trace_state:
        tags[TAG_TRACE_STATE] = span.trace_state
    for index, link in enumerate(span.links):
        tags[f"{TAG_LINK_PREFIX}{index}"] = _link_tag(link)
    if tags.pop(SHARED, None) == "true":
        zipkin["shared"] = True
    if tags.pop(DEBUG, None) == "true":
        zipkin["debug"] = True
    if tags:
        zipkin["tags"] = tags
    return zipkin


def request_to_zipkin(
    request: ExportTraceServiceRequest, default_service_name: str = DEFAULT_SERVICE_NAME
) -> list[dict[str, Any]]:
    """Every span of an OTLP export request as Zipkin v2 spans."""
    spans: list[dict[str, Any]] = []
    for resource_spans in request.resource_spans:
        service = default_service_name
        resource_tags: dict[str, str] = {}
        for attribute in resource_spans.resource.attributes:
            if attribute.key == SERVICE_NAME:
                service = tag_value(attribute.value) or default_service_name
            else:
                resource_tags[attribute.key] = tag_value(attribute.value)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_tags = dict(resource_tags)
            for attribute in scope.attributes:
                scope_tags[attribute.key] = tag_value(attribute.value)
            if scope.name:
                scope_tags[TAG_SCOPE_NAME] = scope_tags[TAG_LIBRARY_NAME] = scope.name
            if scope.version:
                scope_tags[TAG_SCOPE_VERSION] = scope_tags[TAG_LIBRARY_VERSION] = scope.version
            for span in scope_spans.spans:
                spans.append(span_to_zipkin(span, service, scope_tags))
    return spans


def encode_json(request: ExportTraceServiceRequest, default_service_name: str = DEFAULT_SERVICE_NAME) -> bytes:
    """The body of a Zipkin `POST /api/v2/spans` (JSON)."""
    return compact_json(request_to_zipkin(request, default_service_name)).encode()
