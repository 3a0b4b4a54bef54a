"""The writing side of the persistent queue's files: appending records, acknowledgement marks,
syncs and deletions, one round at a time in a worker thread (a group commit)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sampler.forward.batcher import Payload
from sampler.forward.disk_queue.format import (
    FORMAT_VERSION,
    RECORD_HEADER,
    RECORD_MAGIC,
    SEGMENT_HEADER,
    SEGMENT_MAGIC,
    ack_entry,
    ack_name,
    pack_count,
    record_crc,
    segment_name,
)

FsyncPolicy = Literal["always", "interval", "never"]


def _write_all(fd: int, parts: list[bytes]) -> None:
    """Write every byte of `parts`; a regular file may take fewer bytes per call than given."""
    remaining = sum(len(part) for part in parts)
    written = os.writev(fd, parts)
    if written == remaining:
        return
    rest = memoryview(b"".join(parts))[written:]
    while rest:
        rest = rest[os.write(fd, rest) :]


@dataclass
class RoundResult:
    # Per append, in order: (segment, offset) where it was written, or the error.
    placed: list[tuple[int, int] | OSError]
    errors: list[tuple[str, OSError]]
    unsynced: bool


class SegmentFiles:
    """The files one queue writes. Used by one writer round at a time, in a worker thread."""

    def __init__(self, directory: Path, next_seq: int, segment_bytes: int, fsync: FsyncPolicy) -> None:
        self.directory = directory
        self.next_seq = next_seq
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.active_seq: int | None = None
        self._active_fd = -1
        self._active_size = 0
        self._ack_fds: dict[int, int] = {}
        self._unsynced: set[int] = set()
        self._deleted: set[int] = set()

    def run_round(
        self, appends: list[Payload], marks: list[tuple[int, int, int]], deletions: list[int], sync: bool
    ) -> RoundResult:
        placed: list[tuple[int, int] | OSError] = []
        errors: list[tuple[str, OSError]] = []
        for payload in appends:
            try:
                placed.append(self._append(payload))
            except OSError as exc:
                placed.append(exc)
        self._deleted.update(deletions)
        entries: dict[int, list[bytes]] = {}
        for seq, offset, kind in marks:
            if seq not in self._deleted:
                entries.setdefault(seq, []).append(ack_entry(offset, kind))
        for seq, parts in entries.items():
            try:
                self._write_marks(seq, parts)
            except OSError as exc:
                errors.append(("mark", exc))
        for seq in deletions:
            try:
                self._delete(seq)
            except OSError as exc:
                errors.append(("delete", exc))
        if sync:
            try:
                self.sync()
            except OSError as exc:
                errors.append(("sync", exc))
        return RoundResult(placed, errors, bool(self._unsynced))

    def _append(self, payload: Payload) -> tuple[int, int]:
        data = payload.data
        size = RECORD_HEADER.size + len(data)
        if self._active_fd < 0 or (
            self._active_size + size > self.segment_bytes and self._active_size > SEGMENT_HEADER.size
        ):
            self._open_segment()
        assert self.active_seq is not None
        offset = self._active_size
        count = pack_count(payload)
        header = RECORD_HEADER.pack(RECORD_MAGIC, len(data), count, record_crc(len(data), count, data))
        try:
            _write_all(self._active_fd, [header, data])
        except OSError:
            try:
                os.ftruncate(self._active_fd, offset)
            except OSError:
                self._seal()  # the tail is torn: later records go to a new segment
            raise
        self._active_size = offset + size
        self._unsynced.add(self._active_fd)
        return self.active_seq, offset

    def _open_segment(self) -> None:
        self._seal()
        seq = self.next_seq
        path = self.directory / segment_name(seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        try:
            os.write(fd, SEGMENT_HEADER.pack(SEGMENT_MAGIC, FORMAT_VERSION))
            if self.fsync != "never":
                self._sync_directory()
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self.next_seq = seq + 1
        self.active_seq = seq
        self._active_fd = fd
        self._active_size = SEGMENT_HEADER.size
        self._unsynced.add(fd)

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _seal(self) -> None:
        fd, self._active_fd = self._active_fd, -1
        if fd < 0:
            return
        try:
            if self.fsync != "never" and fd in self._unsynced:
                os.fsync(fd)
        finally:
            self._unsynced.discard(fd)
            os.close(fd)

    def _write_marks(self, seq: int, parts: list[bytes]) -> None:
        fd = self._ack_fds.get(seq)
        if fd is None:
            fd = os.open(self.directory / ack_name(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._ack_fds[seq] = fd
        _write_all(fd, parts)
        self._unsynced.add(fd)

    def _delete(self, seq: int) -> None:
        if seq == self.active_seq:
            self._seal()
            self.active_seq = None
        fd = self._ack_fds.pop(seq, None)
        if fd is not None:
            self._unsynced.discard(fd)
            os.close(fd)
        for name in (segment_name(seq), ack_name(seq)):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()

    def sync(self) -> None:
        for fd in list(self._unsynced):
            os.fsync(fd)
            self._unsynced.discard(fd)

    def close(self) -> None:
        try:
            if self.fsync != "never":
                self.sync()
        finally:
            self._seal()
            for fd in self._ack_fds.values():
                os.close(fd)
            self._ack_fds.clear()
            self._unsynced.clear()
