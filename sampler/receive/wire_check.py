"""Walk OTLP trace messages on the wire: validate them and tell whether they are canonical.

"Canonical" means: exactly the bytes the protobuf library (upb) writes when it
re-serializes the parsed message. The receivers keep spans as those bytes, and
`sampler.policies.attribute_lookup` relies on it (an attribute key is found by
searching for `0x0A <minimal length> <key>`), as do byte counts everywhere. upb
writes known fields in field-number order, each singular field once, proto3
defaults (zero, empty) left out except inside a oneof or for a present message,
minimal varints, and unknown fields last. A span that deviates is still valid;
the caller re-encodes it with upb, which is rare and exact.

Anything this walker does not fully understand raises `Unsupported`: malformed
input, groups, a known field with an unexpected wire type, nesting deeper than
`MAX_DEPTH`, invalid UTF-8. The caller then hands the whole request to the
protobuf path, which either rejects it (with its own error message) or splits it.
So the walker only ever has to be *at least as strict* as upb, never equally
lenient, and every input it accepts yields the bytes upb would.

Written for mypyc (native `i64` arithmetic, no per-field objects); it also runs
as plain Python, only slower.
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import i64

VARINT: Final = 0
I64: Final = 1
LEN: Final = 2
I32: Final = 5

# Message levels below the request that the walker follows (upb allows 100); deeper input
# goes to the protobuf path, which decides.
MAX_DEPTH: Final = 64


class Unsupported(Exception):
    """The walker cannot vouch for this input: let the protobuf path decide."""


class SpanScan:
    """The top-level fields of one span, filled by `scan_span` (reused from span to span)."""

    def __init__(self) -> None:
        self.trace_id_pos: i64 = 0
        self.trace_id_len: i64 = 0
        self.span_id_pos: i64 = 0
        self.span_id_len: i64 = 0
        self.parent_len: i64 = 0
        self.name_start: i64 = 0
        self.name_end: i64 = 0
        self.kind: i64 = 0
        self.start: int = 0
        self.end: int = 0
        self.status_code: i64 = 0
        self.attribute_count: i64 = 0


def read_tag(data: bytes, pos: i64, end: i64) -> tuple[i64, i64, bool]:
    """(tag, position after it, minimally encoded) of the field starting at `pos`."""
    if pos >= end:
        raise Unsupported
    byte: i64 = data[pos]
    if byte < 0x80:
        if byte < 8:  # field number 0
            raise Unsupported
        return byte, pos + 1, True
    value: i64 = byte & 0x7F
    shift: i64 = 7
    start = pos
    pos += 1
    while True:
        if pos >= end or shift > 28:
            raise Unsupported
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    if value >= 0x100000000 or value < 8:
        raise Unsupported
    return value, pos, byte != 0 or pos - start == 1


def read_length(data: bytes, pos: i64, end: i64) -> tuple[i64, i64, bool]:
    """(start, stop, minimally encoded) of the length-delimited payload whose length is at `pos`."""
    if pos >= end:
        raise Unsupported
    byte: i64 = data[pos]
    if byte < 0x80:
        stop = pos + 1 + byte
        if stop > end:
            raise Unsupported
        return pos + 1, stop, True
    value: i64 = byte & 0x7F
    shift: i64 = 7
    start = pos
    pos += 1
    while True:
        if pos >= end or shift > 28:
            raise Unsupported
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    stop = pos + value
    if stop > end:
        raise Unsupported
    return pos, stop, byte != 0 or pos - start == 1


def skip_varint(data: bytes, pos: i64, end: i64) -> tuple[i64, bool]:
    """(position after the varint at `pos`, canonical as a 64-bit value)."""
    start = pos
    while True:
        if pos >= end or pos - start >= 10:
            raise Unsupported
        byte: i64 = data[pos]
        pos += 1
        if byte < 0x80:
            break
    size = pos - start
    if size == 1:
        return pos, True
    # Minimal, and a 10-byte varint carries only the 64th bit in its last byte.
    return pos, byte != 0 and (size < 10 or byte == 1)


def read_int32(data: bytes, pos: i64, end: i64) -> tuple[i64, i64, bool]:
    """(value, position after it, canonical) of an int32 or enum varint. A parser keeps the
    low 32 bits; upb writes a negative value sign-extended to 10 bytes."""
    start = pos
    value: i64 = 0
    shift: i64 = 0
    while True:
        if pos >= end or pos - start >= 10:
            raise Unsupported
        byte: i64 = data[pos]
        pos += 1
        if shift < 35:
            value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    size = pos - start
    if size == 10:
        canonical = (
            byte == 1
            and (value >> 31) == 0xF
            and data[start + 5] == 0xFF
            and data[start + 6] == 0xFF
            and data[start + 7] == 0xFF
            and data[start + 8] == 0xFF
        )
    else:
        canonical = size <= 5 and value < 0x80000000 and (size == 1 or byte != 0)
    value &= 0xFFFFFFFF
    if value >= 0x80000000:
        value -= 0x100000000
    return value, pos, canonical


def read_uint32(data: bytes, pos: i64, end: i64) -> tuple[i64, i64, bool]:
    """Like read_int32 for a uint32 varint."""
    start = pos
    value: i64 = 0
    shift: i64 = 0
    while True:
        if pos >= end or pos - start >= 10:
            raise Unsupported
        byte: i64 = data[pos]
        pos += 1
        if shift < 35:
            value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    size = pos - start
    canonical = size <= 5 and value < 0x100000000 and (size == 1 or byte != 0)
    return value & 0xFFFFFFFF, pos, canonical


def read_fixed64(data: bytes, pos: i64) -> int:
    low: i64 = data[pos] | data[pos + 1] << 8 | data[pos + 2] << 16 | data[pos + 3] << 24
    high: i64 = data[pos + 4] | data[pos + 5] << 8 | data[pos + 6] << 16 | data[pos + 7] << 24
    if high < 0x80000000:  # below 2**63, the native case (nanosecond times until 2262)
        return int(high << 32 | low)
    return int(high) * 0x100000000 + int(low)


def skip_unknown(data: bytes, pos: i64, end: i64, wire_type: i64) -> i64:
    """Step over an unknown field's payload; groups are left to the protobuf path."""
    if wire_type == VARINT:
        after, _ = skip_varint(data, pos, end)
        return after
    if wire_type == I64:
        pos += 8
    elif wire_type == I32:
        pos += 4
    elif wire_type == LEN:
        _, pos, _ = read_length(data, pos, end)
    else:
        raise Unsupported
    if pos > end:
        raise Unsupported
    return pos


def valid_utf8(data: bytes, start: i64, stop: i64) -> bool:
    """Whether data[start:stop] is valid UTF-8 (upb rejects proto3 strings that are not)."""
    pos = start
    while pos < stop:
        byte: i64 = data[pos]
        if byte >= 0x80:
            try:
                data[pos:stop].decode("utf-8")
            except UnicodeDecodeError:
                return False
            return True
        pos += 1
    return True


def is_ascii(data: bytes, start: i64, stop: i64) -> bool:
    pos = start
    while pos < stop:
        byte: i64 = data[pos]
        if byte >= 0x80:
            return False
        pos += 1
    return True


def string_field(data: bytes, pos: i64, end: i64, wire_type: i64) -> tuple[i64, i64, bool]:
    """(start, stop, minimally framed) of a string field's UTF-8 payload."""
    if wire_type != LEN:
        raise Unsupported
    start, stop, minimal = read_length(data, pos, end)
    if not valid_utf8(data, start, stop):
        raise Unsupported
    return start, stop, minimal


def fixed_field(pos: i64, end: i64, wire_type: i64, expected: i64, size: i64) -> i64:
    if wire_type != expected or pos + size > end:
        raise Unsupported
    return pos + size


# --- the request ---------------------------------------------------------------------------

_RESOURCE_SPANS: Final = 1 << 3 | LEN  # ExportTraceServiceRequest.resource_spans
_SCOPE_SPANS: Final = 2 << 3 | LEN  # ResourceSpans.scope_spans
_SPANS: Final = 2 << 3 | LEN  # ScopeSpans.spans


def count_spans(data: bytes) -> i64:
    """How many spans an ExportTraceServiceRequest holds, counted on the wire without reading
    them: the `spans` frames of every ScopeSpans of every ResourceSpans. Raises Unsupported where
    the walk cannot tell (malformed framing, groups)."""
    end: i64 = len(data)
    return _count_frames(data, 0, end, _RESOURCE_SPANS, 0)


def _count_frames(data: bytes, pos: i64, end: i64, tag_wanted: i64, level: i64) -> i64:
    """The spans below the `tag_wanted` frames of one message level (request, ResourceSpans,
    ScopeSpans) in data[pos:end]."""
    count: i64 = 0
    while pos < end:
        tag, after, _ = read_tag(data, pos, end)
        if tag == tag_wanted:
            start, pos, _ = read_length(data, after, end)
            if level == 2:
                count += 1
            else:
                count += _count_frames(data, start, pos, _SCOPE_SPANS if level == 0 else _SPANS, level + 1)
        elif tag >> 3 == tag_wanted >> 3:
            raise Unsupported  # the field, with another wire type
        else:
            pos = skip_unknown(data, after, end, tag & 7)
    return count


# --- common.proto ---------------------------------------------------------------------------


def check_key_values(data: bytes, pos: i64, end: i64, depth: i64, field_number: i64) -> tuple[i64, bool]:
    """Check the run of framed KeyValue fields (repeated field `field_number`) starting at `pos`;
    (position after the run, all canonical). The run ends at the first other field."""
    canonical = True
    while pos < end:
        tag, after, minimal = read_tag(data, pos, end)
        if tag != field_number << 3 | LEN:
            break
        start, stop, framed = read_length(data, after, end)
        if not (minimal and framed and check_key_value(data, start, stop, depth + 1)):
            canonical = False
        pos = stop
    return pos, canonical


def check_key_value(data: bytes, pos: i64, end: i64, depth: i64) -> bool:
    if depth > MAX_DEPTH:
        raise Unsupported
    # Most attributes are an ASCII key and one string, int, bool or double value, every length
    # under 128: 0A <key length> key 12 <value length> <the AnyValue's one field>. Checked in
    # one go; anything else takes the general walk below.
    if end - pos >= 5 and data[pos] == 0x0A and depth < MAX_DEPTH:
        key_length: i64 = data[pos + 1]
        key_end = pos + 2 + key_length
        if 0 < key_length < 0x80 and key_end + 3 <= end and data[key_end] == 0x12:
            value_length: i64 = data[key_end + 1]
            value = key_end + 2
            if value_length < 0x80 and value + value_length == end and is_ascii(data, pos + 2, key_end):
                value_tag: i64 = data[value]
                if value_tag == 0x0A:  # string_value
                    if value_length >= 2 and data[value + 1] + 2 == value_length and is_ascii(data, value + 2, end):
                        return True
                elif value_tag == 0x18:  # int_value
                    after, minimal = skip_varint(data, value + 1, end)
                    if after == end and minimal:
                        return True
                elif value_tag == 0x10:  # bool_value
                    if value_length == 2 and data[value + 1] <= 1:
                        return True
                elif value_tag == 0x21 and value_length == 9:  # double_value
                    return True
    canonical = True
    last: i64 = 0
    while pos < end:
        tag, pos, minimal = read_tag(data, pos, end)
        field = tag >> 3
        wire_type = tag & 7
        if not minimal or field <= last:
            canonical = False
        last = field
        if field == 1:  # key
            start, pos, minimal = string_field(data, pos, end, wire_type)
            if not minimal or start == pos:
                canonical = False
        elif field == 2:  # value
            if wire_type != LEN:
                raise Unsupported
            start, pos, minimal = read_length(data, pos, end)
            if not (check_any_value(data, start, pos, depth + 1) and minimal):
                canonical = False
        elif field == 3:  # key_strindex
            if wire_type != VARINT:
                raise Unsupported
            value, pos, minimal = read_int32(data, pos, end)
            if not minimal or value == 0:
                canonical = False
        else:
            pos = skip_unknown(data, pos, end, wire_type)
            canonical = False
    return canonical


def check_any_value(data: bytes, pos: i64, end: i64, depth: i64) -> bool:
    """An AnyValue: one oneof member at most (a second one would replace the first)."""
    if depth > MAX_DEPTH:
        raise Unsupported
    canonical = True
    fields: i64 = 0
    while pos < end:
        tag, pos, minimal = read_tag(data, pos, end)
        field = tag >> 3
        wire_type = tag & 7
        fields += 1
        if not minimal or fields > 1:
            canonical = False
        if field == 1:  # string_value
            _, pos, minimal = string_field(data, pos, end, wire_type)
        elif field == 2:  # bool_value: upb writes 0 or 1
            if wire_type != VARINT:
                raise Unsupported
            byte: i64 = data[pos] if pos < end else 0
            after, _ = skip_varint(data, pos, end)
            minimal = after == pos + 1 and byte <= 1
            pos = after
        elif field == 3:  # int_value
            if wire_type != VARINT:
                raise Unsupported
            pos, minimal = skip_varint(data, pos, end)
        elif field == 4:  # double_value
            pos = fixed_field(pos, end, wire_type, I64, 8)
        elif field == 5 or field == 6:  # array_value, kvlist_value
            if wire_type != LEN:
                raise Unsupported
            start, pos, framed = read_length(data, pos, end)
            nested = check_values(data, start, pos, depth + 1, key_values=field == 6)
            minimal = framed and nested
        elif field == 7:  # bytes_value
            if wire_type != LEN:
                raise Unsupported
            _, pos, minimal = read_length(data, pos, end)
        elif field == 8:  # string_value_strindex
            if wire_type != VARINT:
                raise Unsupported
            _, pos, minimal = read_int32(data, pos, end)
        else:
            pos = skip_unknown(data, pos, end, wire_type)
            minimal = False
        if not minimal:
            canonical = False
    return canonical


def check_values(data: bytes, pos: i64, end: i64, depth: i64, key_values: bool) -> bool:
    """An ArrayValue (`values` = 1, AnyValues) or a KeyValueList (`values` = 1, KeyValues)."""
    if depth > MAX_DEPTH:
        raise Unsupported
    canonical = True
    while pos < end:
        tag, pos, minimal = read_tag(data, pos, end)
        if tag == 1 << 3 | LEN:
            start, pos, framed = read_length(data, pos, end)
            if key_values:
                nested = check_key_value(data, start, pos, depth + 1)
            else:
                nested = check_any_value(data, start, pos, depth + 1)
            if not (nested and minimal and framed):
                canonical = False
        elif tag >> 3 == 1:
            raise Unsupported
        else:
            pos = skip_unknown(data, pos, end, tag & 7)
            canonical = False
    return canonical


def check_scope(data: bytes, pos: i64, end: i64, depth: i64) -> bool:
    """An InstrumentationScope: name = 1, version = 2, attributes = 3, dropped_attributes_count = 4."""
    canonical = True
    last: i64 = 0
    while pos < end:
        tag, after, minimal = read_tag(data, pos, end)
        field = tag >> 3
        wire_type = tag & 7
        if not minimal or field <= last:
            canonical = False
        last = field
        if field == 1 or field == 2:
            start, pos, minimal = string_field(data, after, end, wire_type)
            if not minimal or start == pos:
                canonical = False
        elif field == 3:
            if wire_type != LEN:
                raise Unsupported
            pos, nested = check_key_values(data, pos, end, depth, 3)
            if not nested:
                canonical = False
        elif field == 4:
            if wire_type != VARINT:
                raise Unsupported
            value, pos, minimal = read_uint32(data, after, end)
            if not minimal or value == 0:
                canonical = False
        else:
            pos = skip_unknown(data, after, end, wire_type)
            canonical = False
    return canonical


# --- resource.proto --------------------------------------------------------------------------


def check_resource(data: bytes, pos: i64, end: i64, depth: i64) -> bool:
    """A Resource: attributes = 1, dropped_attributes_count = 2, entity_refs = 3."""
    canonical = True
    last: i64 = 0
    while pos < end:
        tag, after, minimal = read_tag(data, pos, end)
        field = tag >> 3
        wire_type = tag & 7
        if not minimal or field <= last:
            canonical = False
        last = field
        if field == 1:
            if wire_type != LEN:
                raise Unsupported
            pos, nested = check_key_values(data, pos, end, depth, 1)
            if not nested:
                canonical = False
        elif field == 2:
            if wire_type != VARINT:
                raise Unsupported
            value, pos, minimal = read_uint32(data, after, end)
            if not minimal or value == 0:
                canonical = False
        elif field == 3:
            if wire_type != LEN:
                raise Unsupported
            start, pos, framed = read_length(data, after, end)
            if not (check_entity_ref(data, start, pos, depth + 1) and framed):
                canonical = False
            last = 2  # repeated: the next entity_refs element is in order
        else:
            pos = skip_unknown(data, after, end, wire_type)
            canonical = False
    return canonical


def check_entity_ref(data: bytes, pos: i64, end: i64, depth: i64) -> bool:
    """An EntityRef: schema_url = 1, type = 2, id_keys = 3, description_keys = 4 (repeated strings)."""
    if depth > MAX_DEPTH:
        raise Unsupported
    canonical = True
    last: i64 = 0
    while pos < end:
        tag, pos, minimal = read_tag(data, pos, end)
        field = tag >> 3
        wire_type = tag & 7
        if not minimal or field < last or (field == last and field < 3):
            canonical = False
        last = field
        if 1 <= field <= 4:
            start, pos, minimal = string_field(data, pos, end, wire_type)
            # Repeated strings are written even when empty; singular ones are not.
            if not minimal or (start == pos and field < 3):
                canonical = False
        else:
            pos = skip_unknown(data, pos, end, wire_type)
            canonical = False
    return canonical


# --- trace.proto -----------------------------------------------------------------------------


def check_event(data: bytes, pos: i64, end: i64, depth: i64) -> bool:
    """A Span.Event: time_unix_nano = 1, name = 2, attributes = 3, dropped_attributes_count = 4."""
    if depth > MAX_DEPTH:
        raise Unsupported
    canonical = True
    last: i64 = 0
    while pos < end:
        tag, after, minimal = read_tag(data, pos, end)
        field = tag >> 3
        wire_type = tag & 7
        if not minimal or field <= last:
            canonical = False
        last = field
        if field == 1:
            pos = fixed_field(after, end, wire_type, I64, 8)
            if read_fixed64(data, after) == 0:
                canonical = False
        elif field == 2:
            start, pos, minimal = string_field(data, after, end, wire_type)
            if not minimal or start == pos:
                canonical = False
        elif field == 3:
            if wire_type != LEN:
                raise Unsupported
            pos, nested = check_key_values(data, pos, end, depth, 3)
            if not nested:
                canonical = False
        elif field == 4:
            if wire_type != VARINT:
                raise Unsupported
            value, pos, minimal = read_uint32(data, after, end)
            if not minimal or value == 0:
                canonical = False
        else:
            pos = skip_unknown(data, after, end, wire_type)
            canonical = False
    return canonical


def check_link(data: bytes, pos: i64, end: i64, depth: i64) -> bool:
    """A Span.Link: trace_id = 1, span_id = 2, trace_state = 3, attributes = 4,
    dropped_attributes_count = 5, flags = 6."""
    if depth > MAX_DEPTH:
        raise Unsupported
    canonical = True
    last: i64 = 0
    while pos < end:
        tag, after, minimal = read_tag(data, pos, end)
        field = tag >> 3
        wire_type = tag & 7
        if not minimal or field <= last:
            canonical = False
        last = field
        if field == 1 or field == 2:
            if wire_type != LEN:
                raise Unsupported
            start, pos, minimal = read_length(data, after, end)
            if not minimal or start == pos:
                canonical = False
        elif field == 3:
            start, pos, minimal = string_field(data, after, end, wire_type)
            if not minimal or start == pos:
                canonical = False
        elif field == 4:
            if wire_type != LEN:
                raise Unsupported
            pos, nested = check_key_values(data, pos, end, depth, 4)
            if not nested:
                canonical = False
        elif field == 5:
            if wire_type != VARINT:
                raise Unsupported
            value, pos, minimal = read_uint32(data, after, end)
            if not minimal or value == 0:
                canonical = False
        elif field == 6:
            pos = fixed_field(after, end, wire_type, I32, 4)
            if data[after] == 0 and data[after + 1] == 0 and data[after + 2] == 0 and data[after + 3] == 0:
                canonical = False
        else:
            pos = skip_unknown(data, after, end, wire_type)
            canonical = False
    return canonical


def scan_status(data: bytes, pos: i64, end: i64, scan: SpanScan) -> bool:
    """A Status: message = 2, code = 3; the code goes to `scan`."""
    canonical = True
    last: i64 = 0
    while pos < end:
        tag, pos, minimal = read_tag(data, pos, end)
        field = tag >> 3
        wire_type = tag & 7
        if not minimal or field <= last:
            canonical = False
        last = field
        if field == 2:
            start, pos, minimal = string_field(data, pos, end, wire_type)
            if not minimal or start == pos:
                canonical = False
        elif field == 3:
            if wire_type != VARINT:
                raise Unsupported
            code, pos, minimal = read_int32(data, pos, end)
            scan.status_code = code
            if not minimal or code == 0:
                canonical = False
        else:
            pos = skip_unknown(data, pos, end, wire_type)
            canonical = False
    return canonical


# Span fields that may repeat on the wire: attributes, events, links.
_REPEATED_SPAN_FIELDS: Final = (1 << 9) | (1 << 11) | (1 << 13)


def scan_span(data: bytes, pos: i64, end: i64, depth: i64, scan: SpanScan, nested: bool = True) -> bool:
    """Validate the Span in data[pos:end], fill `scan` with its top-level fields (the last
    occurrence of each, as a parser takes it) and tell whether it is canonical. Without
    `nested`, attributes, events and links are stepped over unchecked: for spans that upb
    wrote, only to read their fields."""
    if depth > MAX_DEPTH:
        raise Unsupported
    scan.trace_id_len = 0
    scan.span_id_len = 0
    scan.parent_len = 0
    scan.name_start = 0
    scan.name_end = 0
    scan.kind = 0
    scan.start = 0
    scan.end = 0
    scan.status_code = 0
    scan.attribute_count = 0
    canonical = True
    last: i64 = 0
    while pos < end:
        tag, after, minimal = read_tag(data, pos, end)
        field = tag >> 3
        wire_type = tag & 7
        # Order: 1..15 by number, then flags (16).
        if not minimal or field < last or (field == last and not (_REPEATED_SPAN_FIELDS >> field) & 1):
            canonical = False
        last = field
        if field == 9:  # attributes
            if wire_type != LEN:
                raise Unsupported
            start, pos, framed = read_length(data, after, end)
            scan.attribute_count += 1
            if nested and not (check_key_value(data, start, pos, depth + 1) and framed):
                canonical = False
        elif field <= 4 and field != 3:  # trace_id, span_id, parent_span_id
            if wire_type != LEN:
                raise Unsupported
            start, pos, minimal = read_length(data, after, end)
            size = pos - start
            if not minimal or size == 0:
                canonical = False
            if field == 1:
                scan.trace_id_pos = start
                scan.trace_id_len = size
            elif field == 2:
                scan.span_id_pos = start
                scan.span_id_len = size
            else:
                scan.parent_len = size
        elif field == 3:  # trace_state
            start, pos, minimal = string_field(data, after, end, wire_type)
            if not minimal or start == pos:
                canonical = False
        elif field == 5:  # name
            start, pos, minimal = string_field(data, after, end, wire_type)
            scan.name_start = start
            scan.name_end = pos
            if not minimal or start == pos:
                canonical = False
        elif field == 6:  # kind
            if wire_type != VARINT:
                raise Unsupported
            kind, pos, minimal = read_int32(data, after, end)
            scan.kind = kind
            if not minimal or kind == 0:
                canonical = False
        elif field == 7 or field == 8:  # start_time_unix_nano, end_time_unix_nano
            pos = fixed_field(after, end, wire_type, I64, 8)
            time = read_fixed64(data, after)
            if field == 7:
                scan.start = time
            else:
                scan.end = time
            if time == 0:
                canonical = False
        elif field == 10 or field == 12 or field == 14:  # dropped_*_count
            if wire_type != VARINT:
                raise Unsupported
            count, pos, minimal = read_uint32(data, after, end)
            if not minimal or count == 0:
                canonical = False
        elif field == 11 or field == 13:  # events, links
            if wire_type != LEN:
                raise Unsupported
            start, pos, framed = read_length(data, after, end)
            if nested:
                if field == 11:
                    checked = check_event(data, start, pos, depth + 1)
                else:
                    checked = check_link(data, start, pos, depth + 1)
                if not (checked and framed):
                    canonical = False
        elif field == 15:  # status
            if wire_type != LEN:
                raise Unsupported
            start, pos, framed = read_length(data, after, end)
            # A second status would be merged into the first: not canonical, and the code read
            # here may not be the parser's; the caller re-encodes and scans the result.
            scan.status_code = 0
            if not (scan_status(data, start, pos, scan) and framed):
                canonical = False
        elif field == 16:  # flags
            pos = fixed_field(after, end, wire_type, I32, 4)
            if data[after] == 0 and data[after + 1] == 0 and data[after + 2] == 0 and data[after + 3] == 0:
                canonical = False
        else:
            pos = skip_unknown(data, after, end, wire_type)
            canonical = False
    return canonical
