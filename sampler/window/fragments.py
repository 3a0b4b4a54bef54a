"""The records of the window's log: one request's trace fragments (spans, and log records
naming the trace), as the bytes they were split into, with the summary the policies need and
the request's arrival time.

A record's payload, little-endian: a head, then the fragments' spans one after the other.

    u64 arrival (wall-clock ns), u32 scope-key count, u32 fragment count, u32 index length
    per scope key: u32 length, ResourceSpans prefix, u32 length, ScopeSpans prefix
    the index, per fragment: u8 trace-ID length, trace ID, u32 span count, u32 span bytes
        (unframed), u64 earliest start, u64 latest end, u8 flags (1: root seen, 2: error seen),
        u16 group count, u32 log-record count, u32 log-record bytes, u16 log group count,
        then per group (spans first, then log records): u32 scope-key index, u32 length
    then, per fragment and group in the same order, the framed spans or log records

The record's count (sampler/storage/format.py) is the request's span count. Encoding parses
nothing; decoding (on start, after a crash) rebuilds the fragments.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from struct import Struct

from sampler.spans.trace import ScopeKey, TraceSpans

_HEAD = Struct("<QIII")
_LENGTH = Struct("<I")
_SUMMARY = Struct("<IIQQBHIIH")
_GROUP = Struct("<II")
_ROOT, _ERROR = 1, 2
_ID_LENGTHS = [bytes((length,)) for length in range(256)]


class DamagedRecordError(ValueError):
    """A payload that passed its checksum but does not parse (written by another version?)."""


def encode(fragments: Sequence[TraceSpans], arrival_ns: int) -> bytes:
    """The record's payload. Its parts are joined here, once: the checksum and the write then
    take one buffer, which costs less than going over hundreds of small parts twice."""
    keys: dict[ScopeKey, int] = {}
    index: list[bytes] = []
    spans: list[bytes | bytearray] = []
    summary = _SUMMARY.pack
    group = _GROUP.pack
    ids = _ID_LENGTHS
    for fragment in fragments:
        trace_id = fragment.trace_id
        groups = fragment.groups
        logs = fragment.logs or {}
        flags = (_ROOT if fragment.root_seen else 0) | (_ERROR if fragment.error_seen else 0)
        index += (
            ids[len(trace_id)],
            trace_id,
            summary(
                fragment.span_count,
                fragment.nbytes,
                fragment.start_min,
                fragment.end_max,
                flags,
                len(groups),
                fragment.log_count,
                fragment.log_nbytes,
                len(logs),
            ),
        )
        for held in (groups, logs) if logs else (groups,):
            for key, framed in held.items():
                number = keys.get(key)
                if number is None:
                    number = keys[key] = len(keys)
                index.append(group(number, len(framed)))
                spans.append(framed)
    table = b"".join(index)
    head_parts: list[bytes] = []
    for resource, scope in keys:
        head_parts += (_LENGTH.pack(len(resource)), resource, _LENGTH.pack(len(scope)), scope)
    head = _HEAD.pack(arrival_ns, len(keys), len(fragments), len(table)) + b"".join(head_parts) + table
    spans.insert(0, head)
    return b"".join(spans)


def decode(payload: bytes) -> tuple[int, list[TraceSpans]]:
    """(arrival in wall-clock ns, the fragments, in the order written); raises DamagedRecordError."""
    try:
        return _decode(memoryview(payload))
    except (struct.error, IndexError, ValueError) as exc:
        raise DamagedRecordError(f"a window log record does not parse: {exc}") from None


def _decode(view: memoryview) -> tuple[int, list[TraceSpans]]:
    arrival, key_count, fragment_count, index_length = _HEAD.unpack_from(view, 0)
    position = _HEAD.size

    def chunk() -> bytes:
        nonlocal position
        (length,) = _LENGTH.unpack_from(view, position)
        position += _LENGTH.size
        value = bytes(view[position : position + length])
        if len(value) != length:
            raise ValueError("a length runs past the end")
        position += length
        return value

    keys: list[ScopeKey] = []
    for _ in range(key_count):
        resource = chunk()
        keys.append((resource, chunk()))
    index_end = position + index_length
    spans_at = index_end
    fragments = []
    for _ in range(fragment_count):
        id_length = view[position]
        trace_id = bytes(view[position + 1 : position + 1 + id_length])
        position += 1 + id_length
        fragment = TraceSpans(trace_id)
        span_count, nbytes, start, end, flags, group_count, log_count, log_nbytes, log_groups = _SUMMARY.unpack_from(
            view, position
        )
        position += _SUMMARY.size
        fragment.span_count = span_count
        fragment.nbytes = nbytes
        fragment.start_min = start
        fragment.end_max = end
        fragment.root_seen = bool(flags & _ROOT)
        fragment.error_seen = bool(flags & _ERROR)
        if log_groups:
            fragment.logs = {}
            fragment.log_count = log_count
            fragment.log_nbytes = log_nbytes
        for held, count in ((fragment.groups, group_count), (fragment.logs, log_groups)):
            for _ in range(count):
                number, length = _GROUP.unpack_from(view, position)
                position += _GROUP.size
                framed = bytearray(view[spans_at : spans_at + length])
                if len(framed) != length:
                    raise ValueError("a group of spans or log records runs past the end")
                spans_at += length
                assert held is not None
                held[keys[number]] = framed
        fragments.append(fragment)
    if position != index_end or spans_at != len(view):
        raise ValueError("the index and the spans do not add up to the record")
    return arrival, fragments
