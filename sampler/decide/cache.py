"""The decision caches: which trace IDs were kept or dropped, so late spans follow the decision
already made; and their snapshot file (tail_sampling.decision_cache.persist_path), into which the
decision journal (journal.py) is compacted, so they do so across a restart too.

File format version 2, little-endian:

    b"TSDC", u32 version
    u32 kept count, then per kept trace: u8 trace-ID length, trace ID,
        u64 bytes forwarded so far, u64 sampling threshold (ot=th; all ones: none),
        u32 record length, decision record
    u32 dropped count, then per dropped trace: u8 trace-ID length, trace ID
    u32 CRC32 of everything before it

Version 1, written before thresholds were remembered, has no threshold field; it is read
as having none.

Entries are oldest first, so loading restores the caches' eviction order. A file is
written beside its final name and renamed over it, so a crash leaves the old file or
the new one, never half of one.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable
from itertools import islice
from pathlib import Path
from struct import Struct
from typing import Any

# What one remembered trace costs: its ID, dict slot and linked-list node, the note of its
# decision (outcome.py: one int, ~52 B for up to 16 policies) and, for kept traces, the
# (record, bytes forwarded, threshold, note) tuple, records and thresholds being shared. Measured with tracemalloc
# (tests/unit/test_decision_memory.py) on caches whose dict table is at its fullest and its
# emptiest: 176-216 B and 280-320 B; rounded up.
SAMPLED_ENTRY_BYTES = 336
NOT_SAMPLED_ENTRY_BYTES = 224


class DecisionCache:
    """The most recent `capacity` trace IDs that got one decision, each with a small value
    (for kept traces: the decision record late spans carry, the bytes forwarded so far, the
    sampling threshold their tracestate gets (None if it stays as it is) and the note of the
    decision (outcome.py); for dropped traces: the note).
    Bounded by count; `entry_bytes` estimates what one entry holds in memory."""

    def __init__(self, capacity: int, entry_bytes: int = NOT_SAMPLED_ENTRY_BYTES) -> None:
        self.capacity = capacity
        self.entry_bytes = entry_bytes
        self._ids: OrderedDict[bytes, Any] = OrderedDict()
        # The dict's own methods, for the calls a late span makes (no Python frame in between).
        self.get: Callable[[bytes], Any] = self._ids.get
        # A new value for a trace ID the cache holds, keeping its place in the eviction order.
        self.update: Callable[[bytes, Any], None] = self._ids.__setitem__

    def add(self, trace_id: bytes, value: Any = b"") -> None:
        if not self.capacity:
            return
        self._ids[trace_id] = value
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def __contains__(self, trace_id: bytes) -> bool:
        return trace_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def items(self) -> list[tuple[bytes, Any]]:
        """Every (trace ID, value), oldest first."""
        return list(self._ids.items())

    def newest(self, count: int) -> list[tuple[bytes, Any]]:
        """The `count` most recently added (trace ID, value), newest first."""
        return list(islice(reversed(self._ids.items()), count))

    @property
    def memory_bytes(self) -> int:
        return len(self._ids) * self.entry_bytes


# --- the file ------------------------------------------------------------------

MAGIC = b"TSDC"
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_HEADER = Struct("<4sI")
_COUNT = Struct("<I")
_KEPT_VALUES = Struct("<QQI")  # bytes forwarded, threshold, record length
_KEPT_VALUES_V1 = Struct("<QI")  # bytes forwarded, record length
_NO_THRESHOLD = (1 << 64) - 1
_CRC = Struct("<I")

# Trace ID, decision record, bytes forwarded, sampling threshold (None: none).
KeptEntry = tuple[bytes, bytes, int, int | None]


class DecisionFileError(Exception):
    """A file that is not a decision cache this daemon can read."""


def encode(kept: Iterable[KeptEntry], dropped: Iterable[bytes]) -> bytes:
    kept = list(kept)
    dropped = list(dropped)
    parts = [_HEADER.pack(MAGIC, FORMAT_VERSION), _COUNT.pack(len(kept))]
    for trace_id, record, forwarded, threshold in kept:
        values = _KEPT_VALUES.pack(forwarded, _NO_THRESHOLD if threshold is None else threshold, len(record))
        parts += [bytes((len(trace_id),)), trace_id, values, record]
    parts.append(_COUNT.pack(len(dropped)))
    for trace_id in dropped:
        parts += [bytes((len(trace_id),)), trace_id]
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def decode(data: bytes) -> tuple[list[KeptEntry], list[bytes]]:
    if len(data) < _HEADER.size + _CRC.size:
        raise DecisionFileError("too short to be a decision cache file")
    magic, version = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecisionFileError("not a decision cache file")
    if version not in _READABLE_VERSIONS:
        raise DecisionFileError(
            f"format version {version}; this daemon reads versions {', '.join(map(str, _READABLE_VERSIONS))}"
        )
    body = memoryview(data)[: -_CRC.size]
    if zlib.crc32(body) != _CRC.unpack_from(data, len(data) - _CRC.size)[0]:
        raise DecisionFileError("checksum mismatch (the file is damaged)")
    try:
        return _decode_entries(body, _HEADER.size, version)
    except (IndexError, ValueError, struct.error) as exc:
        raise DecisionFileError(f"malformed entries: {exc}") from None


def _decode_entries(body: memoryview, position: int, version: int) -> tuple[list[KeptEntry], list[bytes]]:
    def trace_id() -> bytes:
        nonlocal position
        length = body[position]
        value = bytes(body[position + 1 : position + 1 + length])
        if len(value) != length:
            raise ValueError("a trace ID runs past the end")
        position += 1 + length
        return value

    (count,) = _COUNT.unpack_from(body, position)
    position += _COUNT.size
    kept: list[KeptEntry] = []
    records: dict[bytes, bytes] = {}  # few distinct records: share one copy of each
    for _ in range(count):
        identifier = trace_id()
        threshold: int | None = None
        if version == 1:
            forwarded, record_length = _KEPT_VALUES_V1.unpack_from(body, position)
            position += _KEPT_VALUES_V1.size
        else:
            forwarded, stored, record_length = _KEPT_VALUES.unpack_from(body, position)
            position += _KEPT_VALUES.size
            threshold = None if stored == _NO_THRESHOLD else stored
        record = bytes(body[position : position + record_length])
        if len(record) != record_length:
            raise ValueError("a decision record runs past the end")
        position += record_length
        kept.append((identifier, records.setdefault(record, record), forwarded, threshold))
    (count,) = _COUNT.unpack_from(body, position)
    position += _COUNT.size
    dropped = [trace_id() for _ in range(count)]
    if position != len(body):
        raise ValueError(f"{len(body) - position} unexpected byte(s) after the entries")
    return kept, dropped


def save(path: Path, kept: Iterable[KeptEntry], dropped: Iterable[bytes]) -> None:
    """Write the caches to `path` atomically (raises OSError)."""
    data = encode(kept, dropped)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    partial.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load(path: Path) -> tuple[list[KeptEntry], list[bytes]]:
    """The caches saved in `path`; raises OSError (FileNotFoundError if none) or DecisionFileError."""
    return decode(path.read_bytes())
