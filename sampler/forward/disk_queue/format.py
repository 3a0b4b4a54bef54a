"""The persistent queue's files: the store format of sampler/storage/format.py with the queue's
own magic, and what its marks mean.

Files, under `<directory>/<exporter name, %-quoted>/`:

- `queue.lock`: locked (flock) while a daemon uses the queue; a second daemon is refused.
- `<seq>.seg`: a segment (magic `TSQS`); each record's payload is a serialized export
  request, as the batcher built it, and its count the request's spans. A logs export
  request stores its number of log records with the count's top bit set (LOGS_FLAG): no
  trace request holds 2^31 spans, so files written before logs read the same. A daemon
  appends to one segment at a time; it starts a new one on every start and whenever the
  current one reaches its size.
- `<seq>.ack`: marks (record offset, kind) appended when a record is handed to a consumer
  (`sending`) and when it is acknowledged (`acked`: delivered or finally dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sampler.forward.batcher import Payload, Signal
from sampler.storage.format import SegmentScan, index_directory, marks_name, read_marks

SEGMENT_MAGIC = b"TSQS"
LOCK_NAME = "queue.lock"
SENDING, ACKED = 1, 2


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


@dataclass
class Recovered:
    segments: list[tuple[int, SegmentScan, set[int], set[int]]]  # seq, scan, acked, sending
    unreadable: list[tuple[str, str]]  # file name, why
    next_seq: int


def acknowledgements(path: Path) -> tuple[set[int], set[int]]:
    """The offsets a marks file marks as acknowledged, and those marked sending (only)."""
    acked: set[int] = set()
    sending: set[int] = set()
    for offset, kind in read_marks(path):
        if kind == ACKED:
            acked.add(offset)
        elif kind == SENDING:
            sending.add(offset)
    return acked, sending - acked


def recover(directory: Path) -> Recovered:
    """What earlier runs left in a locked queue directory: every readable segment with its
    acknowledgement marks, the unreadable ones (renamed aside), and the next sequence number."""
    indexed = index_directory(directory, SEGMENT_MAGIC)
    segments = [(seq, scan, *acknowledgements(directory / marks_name(seq))) for seq, scan in indexed.segments]
    return Recovered(segments, indexed.unreadable, indexed.next_seq)
