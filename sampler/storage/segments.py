"""The writing side of a store (see format.py): appending records and marks, and the disk work
that may wait (syncs, closing files, deleting segments), and the lock that keeps a second
process out of a store's directory.

Appends and marks only reach the operating system's page cache: they are quick, and survive a
crash of the daemon. What may wait for the device is gathered (`take_io`) and done elsewhere
(`perform`): the persistent exporter queue does all of it in rounds in a worker thread
(`run_round`); the durable window appends on the event loop and leaves only the disk work to a
thread of its own (writer.py). Files are closed only by `perform`, so a file being synced is
never closed under it."""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass, field
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
# A buffer the loop hands over and does not change until its round is written.
Buffer = bytes | bytearray | memoryview
# A record to append: its payload in parts written one after the other (sparing a copy of what
# the caller holds in pieces), and its count (spans, entries).
Append = tuple[list[Buffer], int]
# A mark to append: (segment, record offset, value).
Mark = tuple[int, int, int]


# Buffers per writev call: the system's limit (IOV_MAX) is 1024 on Linux.
_MAX_IOVECS = 1024


def write_all(fd: int, parts: list[Buffer]) -> None:
    """Write every byte of `parts`; a regular file may take fewer bytes per call than given."""
    for start in range(0, len(parts), _MAX_IOVECS):
        chunk = parts[start : start + _MAX_IOVECS]
        remaining = sum(len(part) for part in chunk)
        written = os.writev(fd, chunk)
        if written == remaining:
            continue
        rest = memoryview(b"".join(chunk))[written:]
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


@dataclass
class DiskWork:
    """What `perform` does, gathered by `take_io`."""

    sync: list[int] = field(default_factory=list)  # files to sync
    close: list[tuple[int, bool]] = field(default_factory=list)  # files to close, synced first if True
    unlink: list[Path] = field(default_factory=list)
    sync_directory: Path | None = None  # a segment was created or deleted there

    def __bool__(self) -> bool:
        return bool(self.sync or self.close or self.unlink or self.sync_directory)


def perform(work: DiskWork) -> list[tuple[str, OSError]]:
    """Do the disk work (blocking: call it off the event loop); the errors, by operation."""
    errors: list[tuple[str, OSError]] = []
    for fd in work.sync:
        try:
            os.fsync(fd)
        except OSError as exc:
            errors.append(("sync", exc))
    if work.sync_directory is not None:
        try:
            sync_directory(work.sync_directory)
        except OSError as exc:
            errors.append(("sync", exc))
    for fd, sync_first in work.close:
        try:
            if sync_first:
                os.fsync(fd)
        except OSError as exc:
            errors.append(("sync", exc))
        with contextlib.suppress(OSError):
            os.close(fd)
    for path in work.unlink:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            errors.append(("delete", exc))
    return errors


class SegmentFiles:
    """The files one store writes: used from one thread at a time (the owner's), the disk work
    it gathers done by `perform` (see the module docstring)."""

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
        self._work = DiskWork()

    @property
    def unsynced(self) -> bool:
        return bool(self._unsynced or self._work)

    def run_round(self, appends: list[Append], marks: list[Mark], deletions: list[int], sync: bool) -> RoundResult:
        """Everything at once, in the calling (worker) thread: append the records, then the
        marks, sync if asked, then delete the segments: a deletion never reaches the disk
        before what was written in the same round."""
        placed: list[tuple[int, int] | OSError] = []
        for data, count in appends:
            try:
                placed.append(self.append(data, count))
            except OSError as exc:
                placed.append(exc)
        errors: list[tuple[str, OSError]] = []
        try:
            self.write_marks(marks)
        except OSError as exc:
            errors.append(("mark", exc))
        for seq in deletions:
            self.delete(seq)
        errors += perform(self.take_io(sync))
        return RoundResult(placed, errors, bool(self._unsynced))

    def append(self, parts: list[Buffer], count: int) -> tuple[int, int]:
        """Write a record; (segment, offset) where it is. Raises OSError (the file is left whole)."""
        header, length = record_header(parts, count)
        size = RECORD_HEADER.size + length
        if self._active_fd < 0 or (
            self._active_size + size > self.segment_bytes and self._active_size > SEGMENT_HEADER.size
        ):
            self._open_segment()
        assert self.active_seq is not None
        offset = self._active_size
        try:
            write_all(self._active_fd, [header, *parts])
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
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        if self.fsync != "never":
            self._work.sync_directory = self.directory
        self.next_seq = seq + 1
        self.active_seq = seq
        self._active_fd = fd
        self._active_size = SEGMENT_HEADER.size
        self._unsynced.add(fd)

    def _seal(self) -> None:
        fd, self._active_fd = self._active_fd, -1
        if fd >= 0:
            self._close(fd)

    def _close(self, fd: int) -> None:
        unsynced = fd in self._unsynced
        self._unsynced.discard(fd)
        self._work.close.append((fd, unsynced and self.fsync != "never"))

    def write_marks(self, marks: list[Mark]) -> None:
        """Append marks to the marks files of their segments (none for a deleted segment)."""
        entries: dict[int, list[Buffer]] = {}
        deleted = self._deleted
        for seq, offset, value in marks:
            if seq not in deleted:
                entries.setdefault(seq, []).append(mark_entry(offset, value))
        for seq, parts in entries.items():
            fd = self._marks_fds.get(seq)
            if fd is None:
                fd = os.open(self.directory / marks_name(seq), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                self._marks_fds[seq] = fd
            write_all(fd, parts)
            self._unsynced.add(fd)

    def delete(self, seq: int) -> None:
        """Delete a segment and its marks (at the next `perform`, after its syncs)."""
        self._deleted.add(seq)
        if seq == self.active_seq:
            self._seal()
            self.active_seq = None
        fd = self._marks_fds.pop(seq, None)
        if fd is not None:
            self._close(fd)
        self._work.unlink += (self.directory / segment_name(seq), self.directory / marks_name(seq))
        if self.fsync != "never":
            self._work.sync_directory = self.directory

    def rotate(self) -> int:
        """Seal the segment being written; the next append opens a new one. Returns the
        sequence number that one will have."""
        self._seal()
        self.active_seq = None
        return self.next_seq

    def take_io(self, sync: bool) -> DiskWork:
        """The disk work due: closes and deletions, and with `sync` the syncs of every file
        written since the last one."""
        work, self._work = self._work, DiskWork()
        if sync:
            work.sync = list(self._unsynced)
            self._unsynced.clear()
        return work

    def close(self) -> DiskWork:
        """Seal every file; the work that closes them (synced unless fsync: never)."""
        self._seal()
        self.active_seq = None
        for fd in self._marks_fds.values():
            self._close(fd)
        self._marks_fds.clear()
        return self.take_io(self.fsync != "never")
