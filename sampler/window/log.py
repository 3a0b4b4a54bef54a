"""The durable window (tail_sampling.storage): a write-ahead log of every accepted request's
trace fragments, so what was acknowledged survives a crash of the daemon until it is
decided and handed on.

A request is appended as one record (fragments.py) before it is acknowledged: written at once
from the event loop, and with fsync: always synced by a round of the store's thread that
serves every request written meanwhile (a group commit: sampler/storage/writer.py).

Each fragment's position (segment, record offset, index; packed in one int by `position`) rides
with its trace (`TraceSpans.log_positions`) through the decision and the batcher. Once the trace is dropped,
or its spans are taken by every exporter, the position is settled: a mark in the segment's
marks file says so, and a segment is deleted once all its fragments are settled. On start,
every fragment left unsettled is read back (`recover`) with its original arrival time, for the
engine to rebuild or forward according to the decisions the journal remembers.

Files, under `<directory>/window/`: `window.lock` (flock: one daemon per directory), segments
`<seq>.seg` (magic `TSWL`) and their marks `<seq>.ack` (value: the fragment's index in its record).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sampler.clock import Clock, monotonic
from sampler.config.tail_sampling import WindowStorageConfig
from sampler.spans.fragments import FragmentDecoder
from sampler.spans.trace import DecodedBatch, LogPosition, TraceSpans
from sampler.storage.book import SegmentBook, segment_bytes_for
from sampler.storage.format import (
    RECORD_HEADER,
    Indexed,
    SegmentScan,
    index_directory,
    marks_name,
    read_marks,
    read_record,
    segment_name,
)
from sampler.storage.segments import SegmentFiles, lock_directory
from sampler.storage.writer import StoreWriter
from sampler.telemetry.metrics import Metrics
from sampler.window import fragments

log = logging.getLogger(__name__)

MAGIC = b"TSWL"
LOCK_NAME = "window.lock"
_MIB = 1024 * 1024
_MIN_SEGMENT_BYTES = 64 * 1024  # window logs may be capped small (they hold seconds of traffic)
_ERROR_LOG_INTERVAL = 10.0
STORE = "window"
_OFFSET_BITS, _INDEX_BITS = 32, 24


def position(seq: int, offset: int, index: int) -> LogPosition:
    """A fragment's position: its segment, its record's offset and its index in the record."""
    return (seq << (_OFFSET_BITS + _INDEX_BITS)) | (offset << _INDEX_BITS) | index


def unpack(where: LogPosition) -> tuple[int, int, int]:
    """(segment, record offset, index) of a position."""
    return (
        where >> (_OFFSET_BITS + _INDEX_BITS),
        (where >> _INDEX_BITS) & ((1 << _OFFSET_BITS) - 1),
        where & ((1 << _INDEX_BITS) - 1),
    )


def segment_of(where: LogPosition) -> int:
    return where >> (_OFFSET_BITS + _INDEX_BITS)


class StorageFull(Exception):
    """The log has no room for a request (max_size_mib) or cannot be written: the client should retry."""

    def __init__(self, message: str, reason: str = "storage_full") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(eq=False)
class _Segment:
    seq: int
    size: int
    pending: int = 0  # fragments placed here and not yet settled
    sealed: bool = False  # no more records will be appended
    # False for a segment an earlier run left until recover() has read it back: until then its
    # unsettled fragments are not counted in `pending`, and it must not be freed (a start that
    # fails before the replay keeps it for the next one).
    replayed: bool = True

    def settled(self) -> bool:
        return self.replayed and self.pending <= 0


@dataclass
class Recovered:
    """One record's unsettled fragments, read back at start."""

    arrived: float  # on the daemon's clock
    batch: DecodedBatch


class WindowLog:
    """The window's write-ahead log (see the module docstring)."""

    def __init__(
        self,
        config: WindowStorageConfig,
        metrics: Metrics,
        clock: Clock = monotonic,
        wall_clock: Callable[[], float] = time.time,
        segment_bytes: int | None = None,
    ) -> None:
        self.directory = Path(config.directory) / "window"
        self.max_bytes = int(config.max_size_mib * _MIB)
        self.segment_bytes = segment_bytes or segment_bytes_for(self.max_bytes, _MIN_SEGMENT_BYTES)
        self._config = config
        self._clock = clock
        self._wall_clock = wall_clock
        self._book = SegmentBook(_Segment, self._free)
        self._writer: StoreWriter | None = None
        self._lock_fd = -1
        self._scans: list[tuple[int, SegmentScan]] = []
        self._freed = asyncio.Event()
        self._closed = False
        self._last_error_log = -_ERROR_LOG_INTERVAL
        metrics.window_storage_bytes.set_function(lambda: self._book.bytes)
        metrics.window_storage_capacity.set(self.max_bytes)
        self._corrupt = metrics.storage_corrupt_records.labels(STORE)
        self._io_errors = metrics.storage_io_errors

    # --- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        """Lock the directory and index what earlier runs left; raises OSError if unusable."""
        indexed = await asyncio.to_thread(self._index)
        for file_name, why in indexed.unreadable:
            self._corrupt.inc()
            log.error("window log: %s in %s is unreadable (%s); moved aside", file_name, self.directory, why)
        for seq, scan in indexed.segments:
            self._book.add_left(_Segment(seq, scan.size, replayed=False))
            if scan.corrupt:
                self._corrupt.inc(scan.corrupt)
                log.warning("window log: skipped %d torn or damaged record(s) in %s", scan.corrupt, segment_name(seq))
        self._scans = indexed.segments
        files = SegmentFiles(self.directory, MAGIC, indexed.next_seq, self.segment_bytes, self._config.fsync)
        self._writer = StoreWriter(files, self._config.fsync_interval, self._disk_errors, self._clock, "window-log")
        self._writer.start()

    def _index(self) -> Indexed:
        try:
            self._lock_fd = lock_directory(self.directory, LOCK_NAME)
        except BlockingIOError:
            raise OSError(f"window log directory {self.directory} is in use by another process") from None
        except OSError as exc:
            raise OSError(f"cannot use window log directory {self.directory}: {exc.strerror or exc}") from None
        try:
            return index_directory(self.directory, MAGIC)
        except OSError as exc:
            self._unlock()
            raise OSError(f"cannot read window log directory {self.directory}: {exc}") from None

    async def recover(self) -> AsyncIterator[Recovered]:
        """Every record earlier runs left, oldest first, with the fragments not yet settled; each
        fragment carries its position, to be settled like any other. Read one segment at a time
        in a worker thread."""
        scans, self._scans = self._scans, []
        wall_now = self._wall_clock()
        now = self._clock()
        for seq, scan in scans:
            records = await asyncio.to_thread(self._read_segment, seq, scan)
            segment = self._book.segments[seq]
            for offset, arrival_ns, fragments_left in records:
                if not fragments_left:
                    continue
                batch = DecodedBatch()
                for index, fragment in fragments_left:
                    fragment.log_positions = position(seq, offset, index)
                    batch.traces[fragment.trace_id] = fragment
                    batch.span_count += fragment.span_count
                    batch.log_records += fragment.log_count
                segment.pending += len(fragments_left)
                age = max(0.0, wall_now - arrival_ns / 1e9)
                yield Recovered(now - age, batch)
            segment.replayed = True
            self._book.release(segment)

    def _read_segment(self, seq: int, scan: SegmentScan) -> list[tuple[int, int, list[tuple[int, TraceSpans]]]]:
        """(offset, arrival, [(index, fragment)]) of every record, without its settled fragments."""
        settled: dict[int, set[int]] = {}
        for offset, index in read_marks(self.directory / marks_name(seq)):
            settled.setdefault(offset, set()).add(index)
        path = self.directory / segment_name(seq)
        records = []
        decoder = FragmentDecoder()
        for offset in scan.offsets:
            payload = read_record(path, offset)
            if payload is None:
                self._corrupt.inc()
                continue
            try:
                arrival, decoded = fragments.decode(payload, decoder)
            except fragments.DamagedRecordError as exc:
                self._corrupt.inc()
                log.error("window log: record at %d of %s skipped: %s", offset, path.name, exc)
                continue
            done = settled.get(offset, set())
            records.append((offset, arrival, [(i, f) for i, f in enumerate(decoded) if i not in done]))
        return records

    async def close(self) -> None:
        """Write what is pending and free every segment whose fragments are all settled; the
        rest stays for the next start."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._book.seal()
            await self._writer.close()
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    # --- appending ---------------------------------------------------------

    async def append(self, batch: DecodedBatch) -> None:
        """Write the request's fragments; returns once they are in the log (and on the device,
        with fsync: always). Each fragment then knows its position. Raises StorageFull."""
        writer = self._writer
        if writer is None or self._closed:
            raise StorageFull("the window's log is closed (shutting down)", "storage_error")
        pieces = list(batch.traces.values())
        if not pieces:
            return
        if len(pieces) >= 1 << _INDEX_BITS:
            raise StorageFull(f"a request of {len(pieces)} traces is more than the window's log takes in one record")
        data = fragments.encode(pieces, int(self._wall_clock() * 1e9))
        size = RECORD_HEADER.size + len(data)
        if not self.has_room(size):
            raise StorageFull(
                f"the window's storage is full ({self._book.bytes} of {self.max_bytes} bytes in {self.directory})"
            )
        try:
            seq, offset = writer.append([data], batch.span_count + batch.log_records)
        except OSError as exc:
            self._io_error("write", exc)
            raise StorageFull(f"cannot write the window's log in {self.directory}: {exc}", "storage_error") from None
        segment = self._book.place(seq, offset, size)
        base = position(seq, offset, 0)
        positions = range(base, base + len(pieces))
        for where, fragment in zip(positions, pieces):  # noqa: B905 - the same length by construction
            fragment.log_positions = where
        segment.pending += len(pieces)
        if self._config.fsync == "always":
            try:
                await writer.synced()
            except asyncio.CancelledError:
                self.settle(list(positions))  # not acknowledged: the client sends it again
                raise

    def has_room(self, size: int) -> bool:
        return self._book.bytes + size <= self.max_bytes

    def record_size(self, batch: DecodedBatch) -> int:
        """About what appending the batch takes in the log (for waiting on room)."""
        return RECORD_HEADER.size + sum(fragment.held_bytes + 64 for fragment in batch.traces.values())

    async def wait_for_room(self, size: int, timeout: float) -> bool:
        """Wait until `size` bytes fit, at most `timeout` seconds; whether they do."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.has_room(size):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._freed.clear()
            waiter = asyncio.ensure_future(self._freed.wait())
            done, _ = await asyncio.wait((waiter,), timeout=remaining)
            if not done:
                waiter.cancel()
                return False
        return True

    @property
    def oldest_segment(self) -> int | None:
        oldest = self._book.oldest
        return None if oldest is None else oldest.seq

    def seal(self) -> None:
        """If the oldest segment is the one being written, start a new one with the next append,
        so that the oldest can be freed."""
        writer = self._writer
        oldest = self._book.oldest
        if writer is None or oldest is None or oldest.sealed:
            return
        writer.files.rotate()
        self._book.seal()

    # --- settling ----------------------------------------------------------

    def settle(self, positions: Sequence[LogPosition]) -> None:
        """These fragments are decided and handed on (or dropped): they are not replayed after a
        restart, and their segments are freed once nothing else in them is pending."""
        writer = self._writer
        if writer is None:
            return
        marks = [unpack(where) for where in positions]
        try:
            writer.marks(marks)
        except OSError as exc:  # replayed after a restart, then: at least once
            self._io_error("mark", exc)
        segments = self._book.segments
        touched = set()
        for seq, _, _ in marks:
            segment = segments.get(seq)
            if segment is not None:
                segment.pending -= 1
                touched.add(segment)
        for segment in touched:
            self._book.release(segment)

    def _free(self, segment: _Segment) -> None:
        assert self._writer is not None
        self._writer.delete(segment.seq)
        self._freed.set()

    # --- accounting --------------------------------------------------------

    def _disk_errors(self, errors: list[tuple[str, OSError]]) -> None:
        for operation, error in errors:
            self._io_error(operation, error)

    def _io_error(self, operation: str, exc: OSError) -> None:
        self._io_errors.labels(STORE, operation).inc()
        now = self._clock()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            self._last_error_log = now
            log.error("window log: %s failed in %s: %s", operation, self.directory, exc)
