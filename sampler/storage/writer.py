"""A store written from the event loop, for the durable window and the decision journal:
records and marks are appended at once (to the operating system's page cache: quick, and
enough to survive a crash of the daemon), and the work that may wait for the device (syncs,
closing files, deleting segments, extra tasks such as a compaction) goes to a thread of the
store's own, in rounds: everything asked for while a round runs, or in the same turn of the
event loop, goes into the next one.

With fsync: always, a caller waits for the round that syncs what it wrote (`synced`): one
sync serves every request of the round (a group commit). With interval, a round syncs when
fsync_interval has passed since the last sync; with never, rounds only close and delete.

Appending on the loop rather than in a worker thread is what keeps the window's log cheap: a
request's record costs one write call, not a hand-over to a thread and back, which under load
costs more than the write (the GIL changing hands twice per request).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sampler.storage.segments import Buffer, DiskWork, FsyncPolicy, Mark, SegmentFiles, perform

log = logging.getLogger(__name__)

# Extra work a round runs in the store's thread before its syncs and deletions (a compaction).
Task = Callable[[], None]
# Told the errors of a round's disk work, by operation (sync, delete, task).
OnErrors = Callable[[list[tuple[str, OSError]]], None]


@dataclass
class _Round:
    work: DiskWork
    tasks: list[Task] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    synced: bool = False


class StoreWriter:
    """Writes one store (see the module docstring)."""

    def __init__(
        self,
        files: SegmentFiles,
        fsync_interval: float,
        on_errors: OnErrors,
        clock: Callable[[], float],
        name: str,
    ) -> None:
        self.files = files
        self._fsync: FsyncPolicy = files.fsync
        self._fsync_interval = fsync_interval
        self._on_errors = on_errors
        self._clock = clock
        self._name = name
        self._tasks: list[Task] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._callbacks: list[Callable[[], None]] = []
        self._writing = False  # a round is with the thread
        self._scheduled = False  # a round is to start at the next turn of the event loop
        self._closing = False
        self._sync_wanted = False
        self._last_sync = clock()
        self._sync_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rounds: queue.SimpleQueue[_Round | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._serve, name=f"store-{self._name}", daemon=True)
        self._thread.start()

    # --- on the event loop -------------------------------------------------

    def append(self, parts: list[Buffer], count: int) -> tuple[int, int]:
        """Write a record now; (segment, offset). Raises OSError, leaving the file whole."""
        placed = self.files.append(parts, count)
        self._written()
        return placed

    def marks(self, marks: list[Mark]) -> None:
        """Write marks now (raises OSError)."""
        self.files.write_marks(marks)
        self._written()

    def delete(self, seq: int) -> None:
        """Delete a segment, once what was written before is synced (in the next round)."""
        self.files.delete(seq)
        self._wake()

    def run(self, task: Task) -> None:
        """Run `task` in the store's thread, in the next round (before its syncs and deletions)."""
        self._tasks.append(task)
        self._wake()

    def after_synced(self, callback: Callable[[], None]) -> None:
        """Call `callback` on the event loop once what is written so far is synced (as the fsync
        policy has it: with interval and never, once the next round is done)."""
        self._callbacks.append(callback)
        self._wake()

    async def synced(self) -> None:
        """Wait until what is written so far is synced (see after_synced)."""
        if self._loop is None or self._closing:
            return
        done = self._loop.create_future()
        self._waiters.append(done)
        self._wake()
        await done

    async def close(self) -> None:
        """Close every file (synced unless fsync: never), after the pending disk work; end the thread."""
        if self._loop is None or self._closing:
            return
        self._closing = True
        if self._sync_timer is not None:
            self._sync_timer.cancel()
        while self._writing or self._scheduled:
            await self.synced_round()
        done = self._loop.create_future()
        self._writing = True
        self._rounds.put(_Round(self.files.close(), self._tasks, [done, *self._waiters], self._callbacks, True))
        self._tasks, self._waiters, self._callbacks = [], [], []
        await done
        self._rounds.put(None)

    async def synced_round(self) -> None:
        assert self._loop is not None
        done = self._loop.create_future()
        self._waiters.append(done)
        self._wake(force=True)
        await done

    def _written(self) -> None:
        if self._fsync == "always":
            return  # synced when someone waits for it (synced, after_synced): one sync for many writes
        if self._fsync == "interval" and self._sync_timer is None and self._loop is not None and not self._closing:
            delay = max(0.0, self._last_sync + self._fsync_interval - self._clock())
            self._sync_timer = self._loop.call_later(delay, self._sync_due)

    def _sync_due(self) -> None:
        self._sync_timer = None
        self._sync_wanted = True
        self._wake(force=True)

    def _wake(self, force: bool = False) -> None:
        if self._loop is None or self._scheduled or (self._closing and not force):
            return
        if not self._writing:
            self._scheduled = True
            # At the next turn: what the rest of this one asks for joins the same round.
            self._loop.call_soon(self._start_round)

    def _start_round(self) -> None:
        self._scheduled = False
        if self._writing:
            return
        sync = (
            self._fsync == "always"
            or self._sync_wanted
            or (self._fsync == "interval" and self._clock() - self._last_sync >= self._fsync_interval)
        )
        self._sync_wanted = False
        round_ = _Round(self.files.take_io(sync), self._tasks, self._waiters, self._callbacks, sync)
        if not (round_.work or round_.tasks or round_.waiters or round_.callbacks):
            return
        self._tasks, self._waiters, self._callbacks = [], [], []
        self._writing = True
        self._rounds.put(round_)

    def _finish(self, round_: _Round, errors: list[tuple[str, OSError]]) -> None:
        self._writing = False
        if round_.synced:
            self._last_sync = self._clock()
        try:
            if errors:
                self._on_errors(errors)
            for callback in round_.callbacks:
                try:
                    callback()
                except Exception:  # one failing callback must not stop the store or the others
                    log.exception("%s: a callback after a round failed", self._name)
        finally:
            for waiter in round_.waiters:
                if not waiter.done():
                    waiter.set_result(None)
        if self._tasks or self._waiters or self._callbacks:
            self._wake(force=True)
        elif self._fsync == "interval" and self.files.unsynced:
            self._written()

    # --- in the store's thread ---------------------------------------------

    def _serve(self) -> None:
        while (round_ := self._rounds.get()) is not None:
            errors: list[tuple[str, OSError]] = []
            try:
                for task in round_.tasks:
                    try:
                        task()
                    except OSError as exc:
                        errors.append(("task", exc))
                errors += perform(round_.work)
            except Exception as exc:  # a bug must not stop the store
                log.exception("%s: disk work failed", self._name)
                errors.append(("task", OSError(errno.EIO, str(exc))))
            assert self._loop is not None
            try:
                self._loop.call_soon_threadsafe(self._finish, round_, errors)
            except RuntimeError:  # the event loop is closed: nobody waits any more
                return
