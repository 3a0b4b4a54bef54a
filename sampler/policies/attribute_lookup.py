"""Attribute lookups on buffered span bytes, for the attribute policies.

Parsing whole spans to find one attribute costs about 3.7 µs a span, most of it
making a Python object of every KeyValue. Two shortcuts, both exact:

- A KeyValue's key is always encoded as field 1 (tag 0x0A), its length and the
  UTF-8 key. Buffered spans and resources are our own canonical serialization
  (the receivers re-encode every span), so when those bytes do not occur in a
  trace, no span or resource of it has the key, and nothing needs parsing.
- Otherwise, the bytes are parsed as "projection" messages that keep only the
  attributes, declared as `map<string, AnyValue>`: a map entry has the same wire
  form as a KeyValue (key = 1, value = 2), so the map parses straight from the
  span bytes and a lookup is one C call. A key repeated within one span (which
  the OTLP specification forbids) yields its last value only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.common.v1 import common_pb2

from sampler.spans.framing import varint
from sampler.spans.trace import TraceSpans

_PACKAGE = "tail_sampler.projection"


def _projection_classes() -> tuple[Any, Any]:
    """ResourceSpans and ScopeSpans look-alikes that parse only resource and span attributes."""
    pool = descriptor_pool.DescriptorPool()
    common = descriptor_pb2.FileDescriptorProto()
    common_pb2.DESCRIPTOR.CopyToProto(common)
    pool.Add(common)
    any_value = f".{common_pb2.AnyValue.DESCRIPTOR.full_name}"
    projection = descriptor_pb2.FileDescriptorProto(
        name="tail_sampler_projection.proto", package=_PACKAGE, syntax="proto3", dependency=[common.name]
    )

    def with_attribute_map(name: str, number: int) -> None:
        message = projection.message_type.add(name=name)
        entry = message.nested_type.add(name="AttributesEntry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING, label=1)
        entry.field.add(
            name="value", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE, label=1, type_name=any_value
        )
        message.field.add(
            name="attributes",
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
            type_name=f".{_PACKAGE}.{name}.AttributesEntry",
        )

    def with_message(name: str, field: str, number: int, of: str, repeated: bool) -> None:
        message = projection.message_type.add(name=name)
        message.field.add(
            name=field,
            number=number,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if repeated else 1,
            type_name=f".{_PACKAGE}.{of}",
        )

    with_attribute_map("ResourceAttributes", 1)  # Resource.attributes
    with_message("ResourceSpansAttributes", "resource", 1, "ResourceAttributes", repeated=False)
    with_attribute_map("SpanAttributes", 9)  # Span.attributes
    with_message("ScopeSpansAttributes", "spans", 2, "SpanAttributes", repeated=True)
    pool.Add(projection)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.ResourceSpansAttributes")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.ScopeSpansAttributes")),
    )


# Declared at run time from descriptors, so their fields are unknown to the type checker.
_RESOURCE_SPANS_ATTRIBUTES, _SCOPE_SPANS_ATTRIBUTES = _projection_classes()


def key_marker(key: str) -> bytes:
    """How `key` begins on the wire as a KeyValue's key field. An empty key is not
    written at all (proto3 omits empty strings): its marker, b"", is found anywhere."""
    encoded = key.encode("utf-8")
    return b"\n" + varint(len(encoded)) + encoded if encoded else b""


class AttributeIndex:
    """The resource and span attributes of one trace, parsed group by group only
    where a looked-up key's marker occurs, and kept for the next lookup."""

    __slots__ = ("_groups", "_resources", "_spans")

    def __init__(self, trace: TraceSpans) -> None:
        self._groups = [(resource, spans) for (resource, _), spans in trace.groups.items()]
        self._resources: list[Any] = [None] * len(self._groups)
        self._spans: list[list[Any] | None] = [None] * len(self._groups)

    def values(self, key: str) -> Iterator[Any]:
        """The values of `key` on each group's resource, then on each of its spans."""
        marker = key_marker(key)
        for index, (resource_prefix, spans) in enumerate(self._groups):
            if marker in resource_prefix:
                resource = self._resources[index]
                if resource is None:
                    resource = _RESOURCE_SPANS_ATTRIBUTES.FromString(resource_prefix).resource.attributes
                    self._resources[index] = resource
                value = resource.get(key)
                if value is not None:
                    kind = value.WhichOneof("value")
                    if kind is not None:
                        yield getattr(value, kind)
            if marker in spans:
                span_attributes = self._spans[index]
                if span_attributes is None:
                    parsed = _SCOPE_SPANS_ATTRIBUTES.FromString(bytes(spans)).spans
                    span_attributes = self._spans[index] = [span.attributes for span in parsed]
                for attributes in span_attributes:
                    value = attributes.get(key)
                    if value is not None:
                        kind = value.WhichOneof("value")
                        if kind is not None:
                            yield getattr(value, kind)
