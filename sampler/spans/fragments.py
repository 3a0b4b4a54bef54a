"""Trace fragments between worker processes: which worker owns a trace, and the bytes its
fragments travel in from the worker that received them to that owner.

A fragment is a `TraceSpans`: its spans (and log records) are already framed bytes, so the
encoding only adds small headers. The (resource, scope) prefixes the fragments of one request
share are written once per message, in a table the groups refer to by index.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from sampler.spans.trace import ScopeKey, TraceSpans

_COUNT = struct.Struct("<I")
_KEY_LENGTHS = struct.Struct("<II")
# trace_id, start_min, end_max, span_count, nbytes, flags (root_seen, error_seen), span groups,
# log_count, log_nbytes, log record groups
_TRACE = struct.Struct("<16sQQIIBHIIH")
_GROUP = struct.Struct("<HI")
_ROOT_SEEN = 1
_ERROR_SEEN = 2


def owner_of(trace_id: bytes, workers: int) -> int:
    """The worker (0 to workers - 1) that decides the trace: a stable hash of the whole ID, the same
    in every process and every run (Python's own hash() of bytes is salted per process)."""
    return zlib.crc32(trace_id) % workers


class FragmentError(ValueError):
    """Bytes that are not an encoding of fragments (a bug or a torn message)."""


def encode_fragments(traces: Iterable[TraceSpans], prefix: bytes = b"") -> bytes:
    """The fragments as one buffer, after `prefix` (a header of the caller's, joined in the same copy)."""
    keys: dict[ScopeKey, int] = {}
    body: list[bytes | bytearray] = []
    count = 0
    pack_trace = _TRACE.pack
    pack_group = _GROUP.pack
    for trace in traces:
        count += 1
        flags = (_ROOT_SEEN if trace.root_seen else 0) | (_ERROR_SEEN if trace.error_seen else 0)
        groups = trace.groups
        logs = trace.logs or {}
        body.append(
            pack_trace(
                trace.trace_id,
                trace.start_min,
                trace.end_max,
                trace.span_count,
                trace.nbytes,
                flags,
                len(groups),
                trace.log_count,
                trace.log_nbytes,
                len(logs),
            )
        )
        for framed_groups in (groups, logs):
            for key, framed in framed_groups.items():
                index = keys.get(key)
                if index is None:
                    keys[key] = index = len(keys)
                body.append(pack_group(index, len(framed)))
                body.append(framed)
    head: list[bytes | bytearray] = [prefix, _COUNT.pack(len(keys))]
    for resource, scope in keys:
        head.append(_KEY_LENGTHS.pack(len(resource), len(scope)))
        head.append(resource)
        head.append(scope)
    head.append(_COUNT.pack(count))
    head += body
    return b"".join(head)


class FragmentDecoder:
    """Decodes fragments, sharing one copy of each (resource, scope) prefix pair across messages
    as the request splitter does, so buffered traces do not each hold their own."""

    def __init__(self, intern_limit: int = 4096) -> None:
        self._interned: dict[ScopeKey, ScopeKey] = {}
        self._limit = intern_limit

    def _intern(self, key: ScopeKey) -> ScopeKey:
        interned = self._interned.get(key)
        if interned is None:
            if len(self._interned) >= self._limit:
                self._interned.clear()
            self._interned[key] = interned = key
        return interned

    def decode(self, data: bytes | memoryview) -> list[TraceSpans]:
        try:
            return self._decode(memoryview(data))
        except (struct.error, IndexError) as exc:
            raise FragmentError(f"truncated fragments: {exc}") from None

    def _decode(self, view: memoryview) -> list[TraceSpans]:
        (key_count,) = _COUNT.unpack_from(view, 0)
        position = _COUNT.size
        keys: list[ScopeKey] = []
        for _ in range(key_count):
            resource_length, scope_length = _KEY_LENGTHS.unpack_from(view, position)
            position += _KEY_LENGTHS.size
            resource = bytes(view[position : position + resource_length])
            position += resource_length
            scope = bytes(view[position : position + scope_length])
            position += scope_length
            keys.append(self._intern((resource, scope)))
        (count,) = _COUNT.unpack_from(view, position)
        position += _COUNT.size
        unpack_trace = _TRACE.unpack_from
        traces: list[TraceSpans] = []
        for _ in range(count):
            (
                trace_id,
                start_min,
                end_max,
                span_count,
                nbytes,
                flags,
                group_count,
                log_count,
                log_nbytes,
                log_groups,
            ) = unpack_trace(view, position)
            position += _TRACE.size
            trace = TraceSpans(trace_id)
            trace.start_min = start_min
            trace.end_max = end_max
            trace.span_count = span_count
            trace.nbytes = nbytes
            trace.root_seen = bool(flags & _ROOT_SEEN)
            trace.error_seen = bool(flags & _ERROR_SEEN)
            position = self._groups(view, position, group_count, keys, trace.groups)
            if log_groups:
                trace.logs = {}
                trace.log_count = log_count
                trace.log_nbytes = log_nbytes
                position = self._groups(view, position, log_groups, keys, trace.logs)
            traces.append(trace)
        if position != len(view):
            raise FragmentError(f"{len(view) - position} unexpected byte(s) after the fragments")
        return traces

    @staticmethod
    def _groups(
        view: memoryview, position: int, count: int, keys: list[ScopeKey], groups: dict[ScopeKey, bytearray]
    ) -> int:
        """Read `count` groups of framed fields into `groups`; the position after them."""
        unpack_group = _GROUP.unpack_from
        for _ in range(count):
            index, length = unpack_group(view, position)
            position += _GROUP.size
            end = position + length
            if end > len(view):
                raise FragmentError("a group of spans runs past the end")
            groups[keys[index]] = bytearray(view[position:end])
            position = end
        return position
