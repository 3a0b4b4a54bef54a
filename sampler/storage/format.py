"""The files every store of segments shares: their names, the record and mark formats, and
reading them back (in worker threads).

A store is a directory of:

- `<seq>.seg`: a segment. A header (the store's magic, format version), then records
  appended one after the other: magic, payload length, count (spans, entries: what the
  store counts), CRC32 of (length, count, payload), then the payload.
- `<seq>.ack`: marks appended about records of the segment: (record offset, a value the
  store gives a meaning, CRC32 of both). The exporter queue marks a record sending or
  acknowledged; the durable window marks the trace fragments of a record it is done with.

A record failing its checksum, or a tail torn by a crash mid-write, is counted and
skipped: reading resumes at the next record whose checksum holds.
"""

from __future__ import annotations

import mmap
import os
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from struct import Struct

FORMAT_VERSION = 1
SEGMENT_HEADER = Struct("<4sI")  # magic, format version
RECORD_HEADER = Struct("<4sIII")  # magic, payload length, count, CRC32
RECORD_MAGIC = b"TSQR"
_COUNTS = Struct("<II")
MARK_ENTRY = Struct("<QII")  # record offset, value, CRC32 of the offset and value
_MARK_BODY = Struct("<QI")


def segment_name(seq: int) -> str:
    return f"{seq:020d}.seg"


def marks_name(seq: int) -> str:
    return f"{seq:020d}.ack"


def record_crc(length: int, count: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(_COUNTS.pack(length, count)))


def record_header(parts: list[bytes | bytearray | memoryview], count: int) -> tuple[bytes, int]:
    """The header of a record whose payload is `parts` one after the other, and the payload's length."""
    length = sum(len(part) for part in parts)
    crc = zlib.crc32(_COUNTS.pack(length, count))
    for part in parts:
        crc = zlib.crc32(part, crc)
    return RECORD_HEADER.pack(RECORD_MAGIC, length, count, crc), length


def mark_entry(offset: int, value: int) -> bytes:
    body = _MARK_BODY.pack(offset, value)
    return body + zlib.crc32(body).to_bytes(4, "little")


# --- reading, in worker threads ------------------------------------------------


class UnreadableSegmentError(Exception):
    """A file that is not a segment of this store and format version."""


@dataclass
class SegmentScan:
    """What a segment file holds: the offsets and counts of its records, in order."""

    size: int
    offsets: array[int] = field(default_factory=lambda: array("Q"))
    counts: array[int] = field(default_factory=lambda: array("I"))
    corrupt: int = 0


def _record_at(view: mmap.mmap, position: int, size: int, verify: bool) -> tuple[int, int] | None:
    """(payload length, count) of a well-formed record at `position`, else None."""
    if size - position < RECORD_HEADER.size:
        return None
    magic, length, count, crc = RECORD_HEADER.unpack_from(view, position)
    start = position + RECORD_HEADER.size
    if magic != RECORD_MAGIC or start + length > size:
        return None
    if verify and record_crc(length, count, view[start : start + length]) != crc:
        return None
    return length, count


def _next_valid_record(view: mmap.mmap, position: int, size: int) -> int | None:
    while True:
        position = view.find(RECORD_MAGIC, position, size)
        if position < 0:
            return None
        if _record_at(view, position, size, verify=True) is not None:
            return position
        position += 1


def scan_segment(path: Path, magic: bytes) -> SegmentScan:
    """Index the records of a segment left by an earlier run.

    Headers are checked here, payload checksums when a record is read. A stretch that
    does not parse (a tail torn mid-write, garbage) counts as one corrupt record, and
    scanning resumes at the next record whose checksum holds."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:  # created, then the daemon died before writing the header
            return SegmentScan(size)
        if size < SEGMENT_HEADER.size:
            raise UnreadableSegmentError("shorter than a segment header")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            found_magic, version = SEGMENT_HEADER.unpack_from(view, 0)
            if found_magic != magic:
                raise UnreadableSegmentError(f"not a segment of this store (magic {found_magic!r}, expected {magic!r})")
            if version != FORMAT_VERSION:
                raise UnreadableSegmentError(f"format version {version}; this daemon reads version {FORMAT_VERSION}")
            scan = SegmentScan(size)
            position: int | None = SEGMENT_HEADER.size
            while position is not None and position < size:
                found = _record_at(view, position, size, verify=False)
                if found is None:
                    scan.corrupt += 1
                    position = _next_valid_record(view, position + 1, size)
                    continue
                length, count = found
                scan.offsets.append(position)
                scan.counts.append(count)
                position += RECORD_HEADER.size + length
    return scan


def read_marks(path: Path) -> list[tuple[int, int]]:
    """The (record offset, value) marks of a marks file, in the order written.

    Entries failing their checksum are ignored; a torn last entry is cut off, so that
    entries appended later stay aligned."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    whole = len(data) - len(data) % MARK_ENTRY.size
    if whole != len(data):
        os.truncate(path, whole)
    marks = []
    for position in range(0, whole, MARK_ENTRY.size):
        offset, value, crc = MARK_ENTRY.unpack_from(data, position)
        if zlib.crc32(data[position : position + _MARK_BODY.size]) == crc:
            marks.append((offset, value))
    return marks


def read_record(path: Path, offset: int) -> bytes | None:
    """The payload of the record at `offset`, or None if it fails its checksum."""
    with path.open("rb", buffering=0) as handle:
        fd = handle.fileno()
        header = os.pread(fd, RECORD_HEADER.size, offset)
        if len(header) < RECORD_HEADER.size:
            return None
        magic, length, count, crc = RECORD_HEADER.unpack(header)
        if magic != RECORD_MAGIC:
            return None
        payload = os.pread(fd, length, offset + RECORD_HEADER.size)
    if len(payload) != length or record_crc(length, count, payload) != crc:
        return None
    return payload


@dataclass
class Indexed:
    segments: list[tuple[int, SegmentScan]]  # seq, scan; oldest first
    unreadable: list[tuple[str, str]]  # file name, why
    next_seq: int


def index_directory(directory: Path, magic: bytes) -> Indexed:
    """What earlier runs left in a store's directory: every readable segment, the unreadable
    ones (renamed aside as `*.unreadable`), and the next sequence number. Marks files whose
    segment is gone (deleted just before a crash) are removed."""
    seqs: list[int] = []
    highest = 0
    for path in directory.iterdir():
        stem = path.name.split(".", 1)[0]
        if not stem.isdigit():
            continue
        highest = max(highest, int(stem))
        if path.name.endswith(".seg"):
            seqs.append(int(stem))
    segments = []
    unreadable = []
    for seq in sorted(seqs):
        path = directory / segment_name(seq)
        try:
            scan = scan_segment(path, magic)
        except UnreadableSegmentError as exc:
            unreadable.append((path.name, str(exc)))
            path.rename(path.with_name(path.name + ".unreadable"))
            continue
        segments.append((seq, scan))
    for path in directory.glob("*.ack"):
        if not path.with_suffix(".seg").exists():
            path.unlink()
    return Indexed(segments, unreadable, highest + 1)
