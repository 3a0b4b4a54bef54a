"""Zipkin v2 protobuf: the `ListOfSpans` of zipkin.proto (package zipkin.proto3) that a
Zipkin server takes on `POST /api/v2/spans` with `Content-Type: application/x-protobuf`.

The messages are declared here from the published schema instead of compiled from a
.proto file. Spans convert to and from the JSON model (dicts shaped as Zipkin v2 JSON),
so the mapping to OTLP lives in sampler.codecs.zipkin.to_otlp and from_otlp alone.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

CONTENT_TYPE = "application/x-protobuf"
_KINDS = ("CLIENT", "SERVER", "PRODUCER", "CONSUMER")  # enum values 1 to 4; 0 is absent


def _declare() -> Any:
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="sampler/zipkin.proto", package="zipkin.proto3", syntax="proto3")

    def add(message: descriptor_pb2.DescriptorProto, name: str, number: int, kind: int, **extra: Any) -> None:
        message.field.add(name=name, number=number, type=kind, label=extra.pop("label", field.LABEL_OPTIONAL), **extra)

    endpoint = file.message_type.add(name="Endpoint")
    add(endpoint, "service_name", 1, field.TYPE_STRING)
    add(endpoint, "ipv4", 2, field.TYPE_BYTES)
    add(endpoint, "ipv6", 3, field.TYPE_BYTES)
    add(endpoint, "port", 4, field.TYPE_INT32)

    annotation = file.message_type.add(name="Annotation")
    add(annotation, "timestamp", 1, field.TYPE_FIXED64)
    add(annotation, "value", 2, field.TYPE_STRING)

    span = file.message_type.add(name="Span")
    kind = span.enum_type.add(name="Kind")
    for number, name in enumerate(("SPAN_KIND_UNSPECIFIED", *_KINDS)):
        kind.value.add(name=name, number=number)
    tags_entry = span.nested_type.add(name="TagsEntry")
    tags_entry.options.map_entry = True
    add(tags_entry, "key", 1, field.TYPE_STRING)
    add(tags_entry, "value", 2, field.TYPE_STRING)
    add(span, "trace_id", 1, field.TYPE_BYTES)
    add(span, "parent_id", 2, field.TYPE_BYTES)
    add(span, "id", 3, field.TYPE_BYTES)
    add(span, "kind", 4, field.TYPE_ENUM, type_name=".zipkin.proto3.Span.Kind")
    add(span, "name", 5, field.TYPE_STRING)
    add(span, "timestamp", 6, field.TYPE_FIXED64)
    add(span, "duration", 7, field.TYPE_UINT64)
    add(span, "local_endpoint", 8, field.TYPE_MESSAGE, type_name=".zipkin.proto3.Endpoint")
    add(span, "remote_endpoint", 9, field.TYPE_MESSAGE, type_name=".zipkin.proto3.Endpoint")
    add(span, "annotations", 10, field.TYPE_MESSAGE, type_name=".zipkin.proto3.Annotation", label=field.LABEL_REPEATED)
    add(span, "tags", 11, field.TYPE_MESSAGE, type_name=".zipkin.proto3.Span.TagsEntry", label=field.LABEL_REPEATED)
    add(span, "debug", 12, field.TYPE_BOOL)
    add(span, "shared", 13, field.TYPE_BOOL)

    spans = file.message_type.add(name="ListOfSpans")
    add(spans, "spans", 1, field.TYPE_MESSAGE, type_name=".zipkin.proto3.Span", label=field.LABEL_REPEATED)

    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("zipkin.proto3.ListOfSpans"))


# Declared at run time from a descriptor, so its fields are unknown to the type checker.
ListOfSpans: Any = _declare()


def _endpoint_fields(endpoint: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if endpoint.get("serviceName"):
        fields["service_name"] = endpoint["serviceName"]
    for family in ("ipv4", "ipv6"):
        if endpoint.get(family):
            fields[family] = ipaddress.ip_address(endpoint[family]).packed
    if endpoint.get("port"):
        fields["port"] = endpoint["port"]
    return fields


def encode(spans: list[dict[str, Any]]) -> bytes:
    """A ListOfSpans from spans in the JSON model (as from_otlp.request_to_zipkin makes them)."""
    messages = []
    for span in spans:
        fields: dict[str, Any] = {
            "trace_id": bytes.fromhex(span["traceId"]),
            "id": bytes.fromhex(span["id"]),
            "name": span.get("name", ""),
            "timestamp": span.get("timestamp", 0),
            "duration": span.get("duration", 0),
            "local_endpoint": _endpoint_fields(span["localEndpoint"]),
            "debug": span.get("debug", False),
            "shared": span.get("shared", False),
        }
        if "parentId" in span:
            fields["parent_id"] = bytes.fromhex(span["parentId"])
        if "kind" in span:
            fields["kind"] = _KINDS.index(span["kind"]) + 1
        if "remoteEndpoint" in span:
            fields["remote_endpoint"] = _endpoint_fields(span["remoteEndpoint"])
        if "annotations" in span:
            fields["annotations"] = span["annotations"]
        if "tags" in span:
            fields["tags"] = span["tags"]
        messages.append(fields)
    return ListOfSpans(spans=messages).SerializeToString()


def _id(value: bytes, field: str, sizes: tuple[int, ...]) -> str:
    if len(value) not in sizes:
        raise ValueError(f"{field} must be {' or '.join(map(str, sizes))} bytes, not {len(value)}")
    return value.hex()


def _endpoint_json(endpoint: Any, field: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if endpoint.service_name:
        fields["serviceName"] = endpoint.service_name
    if endpoint.ipv4:
        if len(endpoint.ipv4) != 4:
            raise ValueError(f"{field}.ipv4 must be 4 bytes, not {len(endpoint.ipv4)}")
        fields["ipv4"] = str(ipaddress.IPv4Address(endpoint.ipv4))
    elif endpoint.ipv6:
        if len(endpoint.ipv6) != 16:
            raise ValueError(f"{field}.ipv6 must be 16 bytes, not {len(endpoint.ipv6)}")
        fields["ipv6"] = str(ipaddress.IPv6Address(endpoint.ipv6))
    if endpoint.port:
        fields["port"] = endpoint.port
    return fields


def decode(data: bytes) -> list[dict[str, Any]]:
    """The spans of a ListOfSpans in the JSON model; ValueError naming the span and field at fault."""
    try:
        message = ListOfSpans.FromString(data)
    except DecodeError as exc:
        raise ValueError(f"malformed Zipkin protobuf ListOfSpans: {exc}") from None
    spans = []
    for index, span in enumerate(message.spans):
        try:
            fields: dict[str, Any] = {
                "traceId": _id(span.trace_id, "trace_id", (8, 16)),
                "id": _id(span.id, "id", (8,)),
            }
            if span.parent_id:
                fields["parentId"] = _id(span.parent_id, "parent_id", (8,))
            if span.kind:
                if not 0 < span.kind <= len(_KINDS):
                    raise ValueError(f"kind {span.kind} is not one of the Zipkin kinds")
                fields["kind"] = _KINDS[span.kind - 1]
            if span.name:
                fields["name"] = span.name
            if span.timestamp:
                fields["timestamp"] = span.timestamp
            if span.duration:
                fields["duration"] = span.duration
            if span.HasField("local_endpoint"):
                fields["localEndpoint"] = _endpoint_json(span.local_endpoint, "local_endpoint")
            if span.HasField("remote_endpoint"):
                fields["remoteEndpoint"] = _endpoint_json(span.remote_endpoint, "remote_endpoint")
        except ValueError as exc:
            raise ValueError(f"span {index}: {exc}") from None
        if span.annotations:
            fields["annotations"] = [{"timestamp": a.timestamp, "value": a.value} for a in span.annotations]
        if span.tags:
            fields["tags"] = dict(span.tags)
        if span.debug:
            fields["debug"] = True
        if span.shared:
            fields["shared"] = True
        spans.append(fields)
    return spans
