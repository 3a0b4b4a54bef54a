"""Protobuf wire-format framing for OTLP trace requests.

Spans are buffered as the serialized bytes of their `Span` message. Because a
repeated message field on the wire is just the concatenation of its framed
elements, a kept trace can be re-assembled into an `ExportTraceServiceRequest`
by framing stored bytes, without parsing the spans a second time.
"""

from __future__ import annotations

from collections.abc import Iterable

# Field tags (field_number << 3 | wire type 2) of the length-delimited fields we frame.
TAG_REQUEST_RESOURCE_SPANS = b"\x0a"  # ExportTraceServiceRequest.resource_spans = 1
TAG_RESOURCE = b"\x0a"  # ResourceSpans.resource = 1
TAG_RESOURCE_SCOPE_SPANS = b"\x12"  # ResourceSpans.scope_spans = 2
TAG_RESOURCE_SCHEMA_URL = b"\x1a"  # ResourceSpans.schema_url = 3
TAG_SCOPE = b"\x0a"  # ScopeSpans.scope = 1
TAG_SCOPE_SPAN = b"\x12"  # ScopeSpans.spans = 2
TAG_SCOPE_SCHEMA_URL = b"\x1a"  # ScopeSpans.schema_url = 3
TAG_INSTRUMENTATION_SCOPE_ATTRIBUTE = b"\x1a"  # InstrumentationScope.attributes = 3 (decision records)


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Nearly every span is shorter than 16 KiB; a table lookup beats encoding its length per span.
_SHORT_VARINTS: tuple[bytes, ...] = tuple(encode_varint(n) for n in range(1 << 14))


def varint(value: int) -> bytes:
    if value < 16384:
        return _SHORT_VARINTS[value]
    return encode_varint(value)


def frame(tag: bytes, payload: bytes | bytearray) -> bytes:
    return tag + varint(len(payload)) + payload


def decode_varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def split_framed(data: bytes | bytearray, max_chunk: int) -> list[bytes]:
    """Cut a run of framed, length-delimited fields into chunks of at most
    `max_chunk` bytes, never inside a field (a single larger field stays whole)."""
    chunks: list[bytes] = []
    start = pos = 0
    end = len(data)
    while pos < end:
        length, body = decode_varint(data, pos + 1)
        next_pos = body + length
        if next_pos - start > max_chunk and pos > start:
            chunks.append(bytes(data[start:pos]))
            start = pos
        pos = next_pos
    if start < end:
        chunks.append(bytes(data[start:end]))
    return chunks


def count_fields(data: bytes | bytearray) -> int:
    """How many framed, length-delimited fields a run holds."""
    count = pos = 0
    end = len(data)
    while pos < end:
        length, body = decode_varint(data, pos + 1)
        pos = body + length
        count += 1
    return count


def resource_prefix(resource: bytes, schema_url: str) -> bytes:
    """The fields of a ResourceSpans other than its scope_spans."""
    out = frame(TAG_RESOURCE, resource) if resource else b""
    if schema_url:
        out += frame(TAG_RESOURCE_SCHEMA_URL, schema_url.encode())
    return out


def scope_prefix(scope: bytes, schema_url: str) -> bytes:
    """The fields of a ScopeSpans other than its spans."""
    out = frame(TAG_SCOPE, scope) if scope else b""
    if schema_url:
        out += frame(TAG_SCOPE_SCHEMA_URL, schema_url.encode())
    return out


def add_scope_attributes(prefix: bytes, attributes: bytes) -> bytes:
    """A ScopeSpans prefix whose InstrumentationScope carries `attributes` (framed KeyValue
    fields) as well: repeated fields concatenate on the wire, so they are appended."""
    scope = b""
    rest = prefix
    if prefix[:1] == TAG_SCOPE:
        length, body = decode_varint(prefix, 1)
        scope = prefix[body : body + length]
        rest = prefix[body + length :]
    return frame(TAG_SCOPE, scope + attributes) + rest


def encode_request(resources: Iterable[tuple[bytes, Iterable[tuple[bytes, bytes | bytearray]]]]) -> bytes:
    """Build an ExportTraceServiceRequest from (resource prefix, [(scope prefix, framed spans)])."""
    parts: list[bytes] = []
    for resource, scopes in resources:
        body = [resource]
        for scope, spans in scopes:
            body.append(frame(TAG_RESOURCE_SCOPE_SPANS, scope + spans))
        parts.append(frame(TAG_REQUEST_RESOURCE_SPANS, b"".join(body)))
    return b"".join(parts)
