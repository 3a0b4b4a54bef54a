"""The persistent queue's files: their names, record and acknowledgement formats, and reading
them back (in worker threads).

Files, under `<directory>/<exporter name, %-quoted>/`:

- `queue.lock`: locked (flock) while a daemon uses the queue; a second daemon is refused.
- `<seq>.seg`: a segment. A header (magic, format version), then records appended one
  after the other: magic, payload length, span count, CRC32 of (length, span count,
  payload), then the payload (the serialized export request, as the batcher built it).
  A logs export request stores its number of log records with the count's top bit set
  (LOGS_FLAG): no trace request holds 2^31 spans, so files written before logs read
  the same.
  A daemon appends to one segment at a time; it starts a new one on every start and
  whenever the current one reaches its size.
- `<seq>.ack`: entries (record offset, kind, CRC32) appended when a record is handed to
  a consumer (`sending`) and when it is acknowledged (`acked`: delivered or finally dropped).

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
from urllib.parse import quote

from sampler.forward.batcher import Payload, Signal

FORMAT_VERSION = 1
SEGMENT_HEADER = Struct("<4sI")  # magic, format version
SEGMENT_MAGIC = b"TSQS"
RECORD_HEADER = Struct("<4sIII")  # magic, payload length, span count, CRC32
RECORD_MAGIC = b"TSQR"
_COUNTS = Struct("<II")
ACK_ENTRY = Struct("<QII")  # record offset, kind, CRC32 of the offset and kind
_ACK_BODY = Struct("<QI")
SENDING, ACKED = 1, 2
LOCK_NAME = "queue.lock"


def queue_directory(directory: str, exporter: str) -> Path:
    """Where the queue of `exporter` keeps its files, under the configured `directory`."""
    return Path(directory) / quote(exporter, safe="")


def holds_batches(directory: Path) -> bool:
    """Whether a queue directory has files besides its lock (batches an earlier run left, maybe)."""
    try:
        return any(entry.name != LOCK_NAME for entry in directory.iterdir())
    except OSError:
        return False


LOGS_FLAG = 1 << 31


def pack_count(payload: Payload) -> int:
    """The count field of a payload's record: its spans, or its log records flagged."""
    return payload.span_count | LOGS_FLAG if payload.signal == "logs" else payload.span_count


def unpack_count(stored: int) -> tuple[int, Signal]:
    """(spans or log records, signal) of a record's count field."""
    if stored & LOGS_FLAG:
        return stored & ~LOGS_FLAG, "logs"
    return stored, "traces"


def spans_in(stored: int) -> int:
    """The spans a record holds: its count, or 0 for a logs record."""
    return 0 if stored & LOGS_FLAG else stored


def segment_name(seq: int) -> str:
    return f"{seq:020d}.seg"


def ack_name(seq: int) -> str:
    return f"{seq:020d}.ack"


def record_crc(length: int, span_count: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(_COUNTS.pack(length, span_count)))


def ack_entry(offset: int, kind: int) -> bytes:
    body = _ACK_BODY.pack(offset, kind)
    return body + zlib.crc32(body).to_bytes(4, "little")


# --- reading, in worker threads ------------------------------------------------


class UnreadableSegmentError(Exception):
    """A file that is not a segment of this format version."""


@dataclass
class SegmentScan:
    """What a segment file holds: the offsets and span counts of its records, in order."""

    size: int
    offsets: array[int] = field(default_factory=lambda: array("Q"))
    span_counts: array[int] = field(default_factory=lambda: array("I"))
    corrupt: int = 0


def _record_at(view: mmap.mmap, position: int, size: int, verify: bool) -> tuple[int, int] | None:
    """(payload length, span count) of a well-formed record at `position`, else None."""
    if size - position < RECORD_HEADER.size:
        return None
    magic, length, span_count, crc = RECORD_HEADER.unpack_from(view, position)
    start = position + RECORD_HEADER.size
    if magic != RECORD_MAGIC or start + length > size:
        return None
    if verify and record_crc(length, span_count, view[start : start + length]) != crc:
        return None
    return length, span_count


def _next_valid_record(view: mmap.mmap, position: int, size: int) -> int | None:
    while True:
        position = view.find(RECORD_MAGIC, position, size)
        if position < 0:
            return None
        if _record_at(view, position, size, verify=True) is not None:
            return position
        position += 1


def scan_segment(path: Path) -> SegmentScan:
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
            magic, version = SEGMENT_HEADER.unpack_from(view, 0)
            if magic != SEGMENT_MAGIC:
                raise UnreadableSegmentError("not a queue segment")
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
                length, span_count = found
                scan.offsets.append(position)
                scan.span_counts.append(span_count)
                position += RECORD_HEADER.size + length
    return scan


def read_marks(path: Path) -> tuple[set[int], set[int]]:
    """The offsets an ack file marks as acknowledged, and those marked sending (only).

    Entries failing their checksum are ignored; a torn last entry is cut off, so that
    entries appended later stay aligned."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set(), set()
    whole = len(data) - len(data) % ACK_ENTRY.size
    if whole != len(data):
        os.truncate(path, whole)
    acked: set[int] = set()
    sending: set[int] = set()
    for position in range(0, whole, ACK_ENTRY.size):
        offset, kind, crc = ACK_ENTRY.unpack_from(data, position)
        if zlib.crc32(data[position : position + _ACK_BODY.size]) != crc:
            continue
        if kind == ACKED:
            acked.add(offset)
        elif kind == SENDING:
            sending.add(offset)
    return acked, sending - acked


def read_record(path: Path, offset: int) -> bytes | None:
    """The payload of the record at `offset`, or None if it fails its checksum."""
    with path.open("rb", buffering=0) as handle:
        fd = handle.fileno()
        header = os.pread(fd, RECORD_HEADER.size, offset)
        if len(header) < RECORD_HEADER.size:
            return None
        magic, length, span_count, crc = RECORD_HEADER.unpack(header)
        if magic != RECORD_MAGIC:
            return None
        payload = os.pread(fd, length, offset + RECORD_HEADER.size)
    if len(payload) != length or record_crc(length, span_count, payload) != crc:
        return None
    return payload


@dataclass
class Recovered:
    segments: list[tuple[int, SegmentScan, set[int], set[int]]]  # seq, scan, acked, sending
    unreadable: list[tuple[str, str]]  # file name, why
    next_seq: int


def index_directory(directory: Path) -> Recovered:
    """What earlier runs left in a locked queue directory: every readable segment with its
    acknowledgement marks, the unreadable ones (renamed aside), and the next sequence number."""
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
            scan = scan_segment(path)
        except UnreadableSegmentError as exc:
            unreadable.append((path.name, str(exc)))
            path.rename(path.with_name(path.name + ".unreadable"))
            continue
        acked, sending = read_marks(directory / ack_name(seq))
        segments.append((seq, scan, acked, sending))
    for path in directory.glob("*.ack"):
        if not path.with_suffix(".seg").exists():
            path.unlink()  # its segment was deleted just before a crash
    return Recovered(segments, unreadable, highest + 1)
