"""The decision journal: every decision appended as it is made, so that after a crash, not only
after a clean stop, a late span follows its trace's decision.

Decisions are buffered while a tick (or a request) is processed and appended as one record at
its end (`flush`): one write from the event loop, the syncs in the store's thread
(sampler/storage/writer.py). When
the journal has grown past twice the size of the caches' snapshot, it is compacted: the caches
are saved to the snapshot file (the format of cache.py, written atomically) and the journal's
segments before that moment are deleted. A clean stop compacts once more, leaving the snapshot
alone. On start the snapshot is loaded, then the journal's records in order.

Positions of the window's log (window/log.py) are released through the journal
(`settle_after`): a fragment is settled only once the decision about its trace is written (with
fsync: always, synced), so a crash never finds a fragment settled whose trace's decision is lost.

Where (every path from the config): the snapshot is `decision_cache.persist_path`, or
`<storage.directory>/decisions.bin`; the journal is `<storage.directory>/decisions/`, or
`<persist_path>.journal/` without storage. Records (magic `TSDJ`), little-endian:

    u32 decision-record count, per record: u32 length, the encoded decision record
    per decision: u8 kind (1 kept, 0 dropped), u8 trace-ID length, trace ID,
        for kept ones: u32 index of its decision record, u64 bytes forwarded so far,
        u64 sampling threshold (ot=th; all ones: none)
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from struct import Struct

from sampler.clock import Clock, monotonic
from sampler.config.tail_sampling import TailSamplingConfig
from sampler.decide.cache import DecisionCache, DecisionFileError, KeptEntry, load, save
from sampler.decide.outcome import restored
from sampler.spans.trace import LogPosition, LogPositions
from sampler.storage.format import index_directory, read_record, segment_name
from sampler.storage.segments import FsyncPolicy, SegmentFiles, lock_directory, sync_directory
from sampler.storage.writer import StoreWriter
from sampler.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

MAGIC = b"TSDJ"
LOCK_NAME = "journal.lock"
STORE = "decisions"
_SEGMENT_BYTES = 16 * 1024 * 1024
# Compaction happens once the journal holds this much, or twice the snapshot if that is more.
_MIN_COMPACT_BYTES = 4 * 1024 * 1024
_LENGTH = Struct("<I")
_KEPT_VALUES = Struct("<IQQ")  # decision-record index, bytes forwarded, threshold
_NO_THRESHOLD = (1 << 64) - 1
_KEPT, _DROPPED = b"\x01", b"\x00"
_ID_LENGTHS = [bytes((length,)) for length in range(256)]
_ERROR_LOG_INTERVAL = 10.0
# (kept: trace ID, decision record, bytes forwarded; dropped: trace IDs), as one record or the snapshot holds them.
Decisions = tuple[list[KeptEntry], list[bytes]]


def encode(records: list[bytes], entries: list[bytes]) -> bytes:
    head = [_LENGTH.pack(len(records))]
    for record in records:
        head += (_LENGTH.pack(len(record)), record)
    return b"".join(head + entries)


def decode(payload: bytes) -> Decisions:
    """The kept (trace ID, record, forwarded) and dropped trace IDs of one record, in order."""
    view = memoryview(payload)
    (count,) = _LENGTH.unpack_from(view, 0)
    position = _LENGTH.size
    records = []
    for _ in range(count):
        (length,) = _LENGTH.unpack_from(view, position)
        position += _LENGTH.size
        records.append(bytes(view[position : position + length]))
        position += length
    kept: list[KeptEntry] = []
    dropped: list[bytes] = []
    end = len(view)
    while position < end:
        kind = view[position]
        id_length = view[position + 1]
        trace_id = bytes(view[position + 2 : position + 2 + id_length])
        if len(trace_id) != id_length:
            raise ValueError("a trace ID runs past the end")
        position += 2 + id_length
        if kind == 1:
            index, forwarded, threshold = _KEPT_VALUES.unpack_from(view, position)
            position += _KEPT_VALUES.size
            kept.append((trace_id, records[index], forwarded, None if threshold == _NO_THRESHOLD else threshold))
        else:
            dropped.append(trace_id)
    return kept, dropped


def journal_paths(config: TailSamplingConfig) -> tuple[Path, Path] | None:
    """(snapshot file, journal directory) for the config, None when decisions are not persisted."""
    persist = config.decision_cache.persist_path
    storage = config.storage
    if storage is not None:
        directory = Path(storage.directory)
        return (Path(persist) if persist else directory / "decisions.bin"), directory / "decisions"
    if persist:
        return Path(persist), Path(persist + ".journal")
    return None


class DecisionJournal:
    """The journal of one daemon's decisions (see the module docstring)."""

    def __init__(
        self,
        snapshot: Path,
        directory: Path,
        kept: DecisionCache,
        dropped: DecisionCache,
        metrics: Metrics,
        fsync: FsyncPolicy = "interval",
        fsync_interval: float = 1.0,
        clock: Clock = monotonic,
    ) -> None:
        self.snapshot = snapshot
        self.directory = directory
        self._kept = kept
        self._dropped = dropped
        self._fsync = fsync
        self._fsync_interval = fsync_interval
        self._clock = clock
        self._writer: StoreWriter | None = None
        self._lock_fd = -1
        self._records: dict[bytes, int] = {}
        self._entries: list[bytes] = []
        self._count = 0
        self._settle: list[LogPosition] = []
        self.on_written: Callable[[list[LogPosition]], None] | None = None
        self._bytes = 0  # journal segment bytes since the last compaction
        self._snapshot_bytes = 0
        self._closed = False
        self._last_error_log = -_ERROR_LOG_INTERVAL
        self._metrics = metrics
        metrics.decision_journal_bytes.set_function(lambda: self._bytes)
        self._compactions = metrics.decision_journal_compactions
        self._written = metrics.decision_journal_written
        self._io_errors = metrics.storage_io_errors
        self._corrupt = metrics.storage_corrupt_records.labels(STORE)

    # --- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        """Lock the journal, load the snapshot and the journal into the caches, start writing.
        An unreadable snapshot or record is logged and skipped; an unusable directory raises OSError."""
        snapshot, segments, next_seq, corrupt = await asyncio.to_thread(self._read)
        kept_count = dropped_count = 0
        dropped_note = restored()
        for kept, dropped in ([snapshot] if snapshot else []) + segments:
            for trace_id, record, forwarded, threshold in kept:
                self._kept.add(trace_id, (record, forwarded, threshold, restored(forwarded)))
            for trace_id in dropped:
                self._dropped.add(trace_id, dropped_note)
            kept_count += len(kept)
            dropped_count += len(dropped)
        if corrupt:
            self._corrupt.inc(corrupt)
            log.warning("decision journal: skipped %d torn or damaged record(s) in %s", corrupt, self.directory)
        self._metrics.decision_journal_recovered.labels("kept").inc(kept_count)
        self._metrics.decision_journal_recovered.labels("dropped").inc(dropped_count)
        if kept_count or dropped_count:
            log.info(
                "loaded %d kept and %d dropped trace decisions from %s and its journal",
                kept_count,
                dropped_count,
                self.snapshot,
            )
        files = SegmentFiles(self.directory, MAGIC, next_seq, _SEGMENT_BYTES, self._fsync)
        self._writer = StoreWriter(files, self._fsync_interval, self._disk_errors, self._clock, "journal")
        self._writer.start()

    def _read(self) -> tuple[Decisions | None, list[Decisions], int, int]:
        """The snapshot, the journal's records, the next segment number, and how many records were unreadable."""
        try:
            self._lock_fd = lock_directory(self.directory, LOCK_NAME)
        except BlockingIOError:
            raise OSError(f"decision journal {self.directory} is in use by another process") from None
        except OSError as exc:
            raise OSError(f"cannot use decision journal directory {self.directory}: {exc.strerror or exc}") from None
        snapshot = None
        try:
            snapshot = load(self.snapshot)
            self._snapshot_bytes = self.snapshot.stat().st_size
        except FileNotFoundError:
            log.info("no saved trace decisions in %s yet", self.snapshot)
        except (OSError, DecisionFileError) as exc:
            log.error("ignoring saved trace decisions in %s: %s", self.snapshot, exc)
        indexed = index_directory(self.directory, MAGIC)
        corrupt = len(indexed.unreadable)
        segments = []
        for seq, scan in indexed.segments:
            corrupt += scan.corrupt
            self._bytes += scan.size
            path = self.directory / segment_name(seq)
            for offset in scan.offsets:
                payload = read_record(path, offset)
                if payload is None:
                    corrupt += 1
                    continue
                try:
                    segments.append(decode(payload))
                except (ValueError, IndexError, struct.error):
                    corrupt += 1
        return snapshot, segments, indexed.next_seq, corrupt

    async def close(self) -> None:
        """Write what is pending, compact into the snapshot, close and unlock."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self.flush()
            self._compact()
            await self._writer.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # --- recording ---------------------------------------------------------

    def kept(self, trace_id: bytes, record: bytes, forwarded: int, threshold: int | None = None) -> None:
        index = self._records.get(record)
        if index is None:
            index = self._records[record] = len(self._records)
        stored = _NO_THRESHOLD if threshold is None else threshold
        self._entries += (_KEPT, _ID_LENGTHS[len(trace_id)], trace_id, _KEPT_VALUES.pack(index, forwarded, stored))
        self._count += 1

    def dropped(self, trace_id: bytes) -> None:
        self._entries += (_DROPPED, _ID_LENGTHS[len(trace_id)], trace_id)
        self._count += 1

    def settle_after(self, positions: LogPositions | Sequence[LogPosition]) -> None:
        """Settle these positions of the window's log once what is recorded so far is written."""
        if isinstance(positions, int):
            self._settle.append(positions)
        else:
            self._settle += positions

    def flush(self) -> None:
        """Append the decisions recorded since the last flush as one record (called once per tick)."""
        writer = self._writer
        if writer is None:
            return
        written = True
        if self._count:
            data = encode(list(self._records), self._entries)
            count = self._count
            self._records = {}
            self._entries = []
            self._count = 0
            try:
                writer.append([data], count)
            except OSError as exc:
                written = False
                self._io_error("write", exc)
            else:
                self._bytes += len(data)
                self._written.inc(count)
                if self._bytes > max(_MIN_COMPACT_BYTES, 2 * self._snapshot_bytes) and not self._closed:
                    self._compact()
        if self._settle and self.on_written is not None:
            positions, self._settle = self._settle, []
            if not written:
                # The decisions may be lost: their fragments stay in the window's log, to be
                # decided again after a restart (at least once), rather than be settled.
                return
            if self._fsync == "always":
                release = self.on_written
                writer.after_synced(lambda: release(positions))
            else:
                self.on_written(positions)

    def _compact(self) -> None:
        """Snapshot the caches as they are now and delete the journal written before."""
        writer = self._writer
        assert writer is not None
        kept = [
            (trace_id, record, forwarded, threshold)
            for trace_id, (record, forwarded, threshold, _) in self._kept.items()
        ]
        dropped = [trace_id for trace_id, _ in self._dropped.items()]
        first_kept = writer.files.rotate()  # what is appended from now on goes to a new segment
        self._bytes = 0
        self._compactions.inc()
        directory = self.directory

        def save_snapshot() -> None:
            # In the store's thread: the snapshot first, then the segments it covers (a failed
            # save raises, and they stay, to be loaded again at start).
            save(self.snapshot, kept, dropped)
            self._snapshot_bytes = self.snapshot.stat().st_size
            for path in directory.glob("*.seg"):
                stem = path.name.split(".", 1)[0]
                if stem.isdigit() and int(stem) < first_kept:
                    path.unlink(missing_ok=True)
            sync_directory(directory)

        writer.run(save_snapshot)

    def _disk_errors(self, errors: list[tuple[str, OSError]]) -> None:
        for operation, error in errors:
            self._io_error(operation, error)

    def _io_error(self, operation: str, error: OSError) -> None:
        self._io_errors.labels(STORE, operation).inc()
        now = self._clock()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            self._last_error_log = now
            log.error("decision journal: %s failed in %s: %s", operation, self.directory, error)
