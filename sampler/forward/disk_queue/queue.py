"""A persistent exporter queue: batches are appended to segment files and read back from
them, so kept traces outlive a backend outage longer than memory holds, and a crash.
The files and their format: see format.py.

A segment and its ack file are deleted once every record in it is acknowledged. On start,
the records earlier runs left unacknowledged are sent first; those that had been sending
may have reached the backend already and are counted as redelivered (delivery is at least
once).

All file I/O runs in worker threads, so the event loop never waits for the disk: one
writer task appends records, writes ack entries, syncs and deletes in rounds (a group
commit, segments.py), and each consumer reads its record in a thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sampler.clock import Clock, monotonic
from sampler.config.exporters import QueueStorageConfig
from sampler.forward.batcher import Payload, Signal
from sampler.forward.disk_queue.format import (
    ACKED,
    LOCK_NAME,
    SEGMENT_MAGIC,
    SENDING,
    Recovered,
    pack_count,
    queue_directory,
    recover,
    spans_in,
    unpack_count,
)
from sampler.storage.book import SegmentBook, segment_bytes_for
from sampler.storage.format import RECORD_HEADER, read_record, segment_name
from sampler.storage.segments import Append, FsyncPolicy, RoundResult, SegmentFiles, lock_directory, perform
from sampler.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

_MIB = 1024 * 1024
_MIN_SEGMENT_BYTES = 1 * _MIB  # a batch is up to a few MiB (batch.send_batch_max_bytes)
_ERROR_LOG_INTERVAL = 10.0
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(eq=False)
class _Segment:
    seq: int
    size: int
    offsets: array[int] = field(default_factory=lambda: array("Q"))
    span_counts: array[int] = field(default_factory=lambda: array("I"))
    dispatched: int = 0  # records handed to consumers, in order
    outstanding: int = 0  # handed to consumers and not yet acknowledged
    sealed: bool = False  # no more records will be appended
    sending_before: set[int] = field(default_factory=set)  # offsets an earlier run had started sending

    def settled(self) -> bool:
        return not self.outstanding and self.dispatched == len(self.offsets)


@dataclass(frozen=True, eq=False)
class DiskRecord:
    """A batch read back from disk; acknowledge it with DiskQueue.ack once settled."""

    payload: Payload
    redelivery: bool
    segment: _Segment
    offset: int


class DiskQueue:
    """A persistent FIFO of payloads for one exporter (see the module docstring)."""

    def __init__(
        self,
        name: str,
        config: QueueStorageConfig,
        metrics: Metrics,
        drop: Callable[[int, str, str, Signal], None],
        segment_bytes: int | None = None,
        clock: Clock = monotonic,
    ) -> None:
        self.name = name
        self._clock = clock
        self.directory = queue_directory(config.directory, name)
        self.max_bytes = int(config.max_size_mib * _MIB)
        self.segment_bytes = segment_bytes or segment_bytes_for(self.max_bytes, _MIN_SEGMENT_BYTES)
        self._fsync: FsyncPolicy = config.fsync
        self._fsync_interval = config.fsync_interval
        self._drop = drop
        self._book = SegmentBook(_Segment, self._free)
        self._reserved = 0  # bytes of accepted records not yet written
        self.records = 0  # accepted, not yet acknowledged
        self.spans = 0  # of those records (log records are not spans: not counted)
        self._appends: list[Payload] = []
        self._marks: list[tuple[int, int, int]] = []
        self._deletions: list[int] = []
        self._round_waiters: list[asyncio.Future[None]] = []
        self._work = asyncio.Event()
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._cap_reached = False
        self._files: SegmentFiles | None = None
        self._lock_fd = -1
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._closed = False
        self._unsynced = False
        self._last_sync = clock()
        self._last_error_log: dict[str, float] = {}
        metrics.exporter_disk_queue_bytes.labels(name).set_function(lambda: self._book.bytes)
        metrics.exporter_disk_queue_capacity.labels(name).set(self.max_bytes)
        metrics.exporter_disk_queue_records.labels(name).set_function(lambda: self.records)
        metrics.exporter_disk_queue_spans.labels(name).set_function(lambda: self.spans)
        self._recovered_spans = metrics.exporter_disk_recovered_spans.labels(name)
        self._redelivered_spans = metrics.exporter_disk_redelivered_spans.labels(name)
        self._corrupt = metrics.exporter_disk_corrupt_records.labels(name)
        self._io_errors = metrics.exporter_disk_io_errors

    def full(self) -> bool:
        """True once a batch was refused for the size cap, until a segment is freed."""
        return self._cap_reached

    # --- lifecycle ---------------------------------------------------------

    async def open(self) -> None:
        """Lock the directory and index what earlier runs left; raises OSError if unusable."""
        recovered = await asyncio.to_thread(self._recover)
        for file_name, why in recovered.unreadable:
            self._corrupt.inc()
            log.error(
                "exporter %s: %s in %s is unreadable (%s); moved aside as %s.unreadable",
                self.name,
                file_name,
                self.directory,
                why,
                file_name,
            )
        left_records = left_spans = corrupt = 0
        for seq, scan, acked, sending in recovered.segments:
            segment = _Segment(seq, scan.size)
            for offset, count in zip(scan.offsets, scan.counts, strict=True):
                if offset not in acked:
                    segment.offsets.append(offset)
                    segment.span_counts.append(count)
            segment.sending_before = sending
            self._book.add_left(segment)
            left_records += len(segment.offsets)
            left_spans += sum(spans_in(count) for count in segment.span_counts)
            corrupt += scan.corrupt
            self._book.release(segment)
        self.records += left_records
        self.spans += left_spans
        self._recovered_spans.inc(left_spans)
        if corrupt:
            self._corrupt.inc(corrupt)
            log.warning("exporter %s: skipped %d corrupt or torn record(s) in %s", self.name, corrupt, self.directory)
        if left_records:
            self._drained.clear()
            self._readable.set()
            log.info(
                "exporter %s: %d batch(es) with %d span(s) left on disk by an earlier run; sending them first",
                self.name,
                left_records,
                left_spans,
            )
        self._files = SegmentFiles(self.directory, SEGMENT_MAGIC, recovered.next_seq, self.segment_bytes, self._fsync)
        self._writer = asyncio.create_task(self._write_loop(), name=f"disk-queue-{self.name}")

    def _recover(self) -> Recovered:
        try:
            self._lock_fd = lock_directory(self.directory, LOCK_NAME)
        except BlockingIOError:
            raise OSError(
                f"exporter {self.name}: queue directory {self.directory} is in use by another process"
            ) from None
        except OSError as exc:
            raise OSError(
                f"exporter {self.name}: cannot use queue directory {self.directory}: {exc.strerror}"
            ) from None
        try:
            return recover(self.directory)
        except OSError as exc:
            self._release_lock()
            raise OSError(f"exporter {self.name}: cannot read queue directory {self.directory}: {exc}") from None

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = -1

    async def flush(self) -> None:
        """Wait until every payload put so far is written (and acknowledgements recorded)."""
        if self._writer is None or self._writer.done():
            return
        done = asyncio.get_running_loop().create_future()
        self._round_waiters.append(done)
        self._work.set()
        await done

    async def join(self) -> None:
        """Wait until every record is acknowledged."""
        await self._drained.wait()

    async def close(self) -> None:
        """Write what is pending, free what is fully acknowledged, sync and unlock. Records not
        acknowledged stay on disk for the next start."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None and self._files is not None:
            await self.flush()
            self._book.seal()
            self._closing = True
            self._work.set()
            await self._writer
            for operation, error in await asyncio.to_thread(perform, self._files.close()):
                self._io_error(operation, error)
        self._release_lock()

    # --- producing ---------------------------------------------------------

    def put(self, payload: Payload) -> None:
        """Accept a payload for writing, or drop it (counted) if the size cap is reached."""
        if self._closed:
            self._drop(payload.span_count, "shutdown", "the exporter's queue was already closed", payload.signal)
            return
        size = RECORD_HEADER.size + len(payload.data)
        if self._book.bytes + self._reserved + size > self.max_bytes:
            self._cap_reached = True
            self._drop(
                payload.span_count,
                "disk_queue_full",
                f"the queue in {self.directory} holds {self._book.bytes + self._reserved} of {self.max_bytes} bytes",
                payload.signal,
            )
            payload.settle()
            return
        self._reserved += size
        self.records += 1
        self.spans += spans_in(pack_count(payload))
        self._drained.clear()
        self._appends.append(payload)
        self._work.set()

    # --- consuming ---------------------------------------------------------

    async def get(self) -> DiskRecord:
        """The oldest record no consumer has taken yet, read back from disk."""
        while True:
            segment = next((s for s in self._book.segments.values() if s.dispatched < len(s.offsets)), None)
            if segment is None:
                self._readable.clear()
                await self._readable.wait()
                continue
            index = segment.dispatched
            segment.dispatched += 1
            segment.outstanding += 1
            offset = segment.offsets[index]
            stored = segment.span_counts[index]
            count, signal = unpack_count(stored)
            try:
                data = await asyncio.to_thread(read_record, self.directory / segment_name(segment.seq), offset)
            except OSError as exc:
                self._io_error("read", exc)
                self._settle(segment, offset, stored)
                self._drop(count, "disk_error", f"cannot read {segment_name(segment.seq)}: {exc}", signal)
                continue
            if data is None:
                self._corrupt.inc()
                self._log_error(
                    "corrupt",
                    "exporter %s: record at offset %d of %s fails its checksum; skipped",
                    offset,
                    segment_name(segment.seq),
                )
                self._settle(segment, offset, stored)
                continue
            return DiskRecord(Payload(data, count, signal), offset in segment.sending_before, segment, offset)

    async def mark_sending(self, record: DiskRecord) -> None:
        """Record that sending starts, so a crash from here on counts it as redelivered next time."""
        if record.redelivery:
            self._redelivered_spans.inc(spans_in(pack_count(record.payload)))
        self._marks.append((record.segment.seq, record.offset, SENDING))
        await self.flush()

    def ack(self, record: DiskRecord) -> None:
        """The record is settled (delivered or finally dropped): it is not sent again."""
        self._settle(record.segment, record.offset, pack_count(record.payload))

    def _settle(self, segment: _Segment, offset: int, stored: int) -> None:
        segment.outstanding -= 1
        self.records -= 1
        self.spans -= spans_in(stored)
        self._marks.append((segment.seq, offset, ACKED))
        self._work.set()
        self._book.release(segment)
        if not self.records:
            self._drained.set()

    def _free(self, segment: _Segment) -> None:
        self._deletions.append(segment.seq)
        self._cap_reached = False
        self._work.set()

    # --- the writer --------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            now = self._clock()
            sync_due = self._fsync == "always" or (
                self._fsync == "interval" and now - self._last_sync >= self._fsync_interval
            )
            if self._appends or self._marks or self._deletions or self._round_waiters or (sync_due and self._unsynced):
                await self._round(sync_due)
                continue
            if self._closing:
                return
            timeout = None
            if self._fsync == "interval" and self._unsynced:
                timeout = self._last_sync + self._fsync_interval - now
            self._work.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work.wait(), timeout)

    async def _round(self, sync: bool) -> None:
        assert self._files is not None
        appends, self._appends = self._appends, []
        marks, self._marks = self._marks, []
        deletions, self._deletions = self._deletions, []
        waiters, self._round_waiters = self._round_waiters, []
        try:
            try:
                records: list[Append] = [([payload.data], pack_count(payload)) for payload in appends]
                result = await asyncio.to_thread(self._files.run_round, records, marks, deletions, sync)
            except Exception as exc:  # a bug must not stop the queue: what was in the round is accounted
                log.exception("exporter %s: queue writer failed", self.name)
                failure = OSError(errno.EIO, str(exc))
                result = RoundResult([failure] * len(appends), [], self._unsynced)
            if sync:
                self._last_sync = self._clock()
            self._unsynced = result.unsynced
            self._publish(appends, result.placed)
            for operation, error in result.errors:
                self._io_error(operation, error)
        finally:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _publish(self, appends: Iterable[Payload], placed: list[tuple[int, int] | OSError]) -> None:
        written = False
        for payload, where in zip(appends, placed, strict=True):
            size = RECORD_HEADER.size + len(payload.data)
            self._reserved -= size
            if isinstance(where, OSError):
                self.records -= 1
                self.spans -= spans_in(pack_count(payload))
                self._io_error("write", where)
                reason = "disk_queue_full" if where.errno in _NO_ROOM else "disk_error"
                why = f"cannot write to {self.directory}: {where.strerror or where}"
                self._drop(payload.span_count, reason, why, payload.signal)
                payload.settle()
                continue
            seq, offset = where
            segment = self._book.place(seq, offset, size)
            segment.offsets.append(offset)
            segment.span_counts.append(pack_count(payload))
            payload.settle()  # on disk: the window's log need not keep these spans any longer
            written = True
        if written:
            self._readable.set()
        if not self.records:
            self._drained.set()

    # --- accounting --------------------------------------------------------

    def _io_error(self, operation: str, exc: OSError) -> None:
        self._io_errors.labels(self.name, operation).inc()
        self._log_error(operation, "exporter %s: queue file %s failed in %s: %s", operation, self.directory, exc)

    def _log_error(self, kind: str, message: str, *args: object) -> None:
        now = self._clock()
        if now - self._last_error_log.get(kind, -_ERROR_LOG_INTERVAL) >= _ERROR_LOG_INTERVAL:
            self._last_error_log[kind] = now
            log.error(message, self.name, *args)
