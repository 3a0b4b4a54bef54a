"""The writing side of a store (see format.py): appending records, marks, syncs and
deletions, one round at a time in a worker thread (a group commit), and the lock that
keeps a second process out of a store's directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sampler.storage.format import (
    FORMAT_VERSION,
    RECORD_HEADER,
    SEGMENT_HEADER,
    mark_entry,
    marks_name,
    record_header,
    segment_name,
)

FsyncPolicy = Literal["always", "interval", "never"]
# A record to append: its payload and its count (spans, entries).
Append = tuple[bytes, int]
# A mark to append: (segment, record offset, value).
Mark = tuple[int, int, int]


def write_all(fd: int, parts: list[bytes]) -> None:
    """Write every byte of `parts`; a regular file may take fewer bytes per call than given."""
    remaining = sum(len(part) for part in parts)
    written = os.writev(fd, parts)
    if written == remaining:
        return
    rest = memoryview(b"".join(parts))[written:]
    while rest:
        rest = rest[os.write(fd, rest) :]


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_directory(directory: Path, lock_name: str) -> int:
    """Create `directory` if needed and lock it (flock on `lock_name` inside) for this process.
    Returns the lock's file descriptor (closing it unlocks); raises OSError, BlockingIOError
    when another process holds the lock."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / lock_name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise BlockingIOError(f"{directory} is in use by another process") from None
    return fd


@dataclass
class RoundResult:
    # Per append, in order: (segment, offset) where it was written, or the error.
    placed: list[tuple[int, int] | OSError]
    errors: list[tuple[str, OSError]]
    unsynced: bool


class SegmentFiles:
    """The files one store writes. Used by one writer round at a time, in a worker thread."""

    def __init__(self, directory: Path, magic: bytes, next_seq: int, segment_bytes: int, fsync: FsyncPolicy) -> None:
        self.directory = directory
        self.magic = magic
        self.next_seq = next_seq
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.active_seq: int | None = None
        self._active_fd = -1
        self._active_size = 0
        self._marks_fds: dict[int, int] = {}
        self._unsynced: set[int] = set()
        self._deleted: set[int] = set()

    def run_round(self, appends: list[Append], marks: list[Mark], deletions: list[int], sync: bool) -> RoundResult:
        """Append the records, then the marks, sync if asked, then delete the segments: a
        deletion never reaches the disk before what was written in the same round."""
        placed: list[tuple[int, int] | OSError] = []
        errors: list[tuple[str, OSError]] = []
        for data, count in appends:
            try:
                placed.append(self._append(data, count))
            except OSError as exc:
                placed.append(exc)
        self._deleted.update(deletions)
        entries: dict[int, list[bytes]] = {}
        for seq, offset, value in marks:
            if seq not in self._deleted:
                entries.setdefault(seq, []).append(mark_entry(offset, value))
        for seq, parts in entries.items():
            try:
                self._write_marks(seq, parts)
            except OSError as exc:
                errors.append(("mark", exc))
        if sync:
            try:
                self.sync()
            except OSError as exc:
                errors.append(("sync", exc))
        for seq in deletions:
            try:
                self.delete(seq)
            except OSError as exc:
                errors.append(("delete", exc))
        return RoundResult(placed, errors, bool(self._unsynced))

    def _append(self, data: bytes, count: int) -> tuple[int, int]:
        size = RECORD_HEADER.size + len(data)
        if self._active_fd < 0 or (
            self._active_size + size > self.segment_bytes and self._active_size > SEGMENT_HEADER.size
        ):
            self._open_segment()
        assert self.active_seq is not None
        offset = self._active_size
        try:
            write_all(self._active_fd, [record_header(data, count), data])
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
            os.write(fd, SEGMENT_HEADER.pack(self.magic, FORMAT_VERSION))
            if self.fsync != "never":
                sync_directory(self.directory)
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
        fd = self._marks_fds.get(seq)
        if fd is None:
            fd = os.open(self.directory / marks_name(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._marks_fds[seq] = fd
        write_all(fd, parts)
        self._unsynced.add(fd)

    def delete(self, seq: int) -> None:
        if seq == self.active_seq:
            self._seal()
            self.active_seq = None
        fd = self._marks_fds.pop(seq, None)
        if fd is not None:
            self._unsynced.discard(fd)
            os.close(fd)
        for name in (segment_name(seq), marks_name(seq)):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()

    def rotate(self) -> int:
        """Seal the segment being written; the next append opens a new one. Returns the
        sequence number that one will have."""
        self._seal()
        self.active_seq = None
        return self.next_seq

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
            for fd in self._marks_fds.values():
                os.close(fd)
            self._marks_fds.clear()
            self._unsynced.clear()
