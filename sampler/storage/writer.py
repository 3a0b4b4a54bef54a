"""A store's writer on the event loop: appends, marks, deletions and extra file work asked for
while a round runs go into the next round (a group commit), which runs in a worker thread, so
the event loop never waits for the disk; syncs follow the store's fsync policy."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from sampler.storage.segments import FsyncPolicy, Mark, RoundResult, SegmentFiles

log = logging.getLogger(__name__)

Token = TypeVar("Token")
# Extra work a round runs in its worker thread before its appends (compaction, say).
Task = Callable[[SegmentFiles], None]


class RoundWriter(Generic[Token]):
    """Writes one store's files (see the module docstring). After each round, `on_round` is told
    every append of the round, in order, with its token and where it was written (segment,
    offset) or the error, then the errors of tasks, marks, syncs and deletions; then the
    callbacks registered with after_round() before the round began run."""

    def __init__(
        self,
        files: SegmentFiles,
        fsync: FsyncPolicy,
        fsync_interval: float,
        on_round: Callable[[list[tuple[Token, tuple[int, int] | OSError]], list[tuple[str, OSError]]], None],
        clock: Callable[[], float],
        name: str,
    ) -> None:
        self.files = files
        self._fsync = fsync
        self._fsync_interval = fsync_interval
        self._on_round = on_round
        self._clock = clock
        self._name = name
        self._appends: list[tuple[bytes, int]] = []
        self._tokens: list[Token] = []
        self._marks: list[Mark] = []
        self._deletions: list[int] = []
        self._tasks: list[Task] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._callbacks: list[Callable[[], None]] = []
        self._work = asyncio.Event()
        self._unsynced = False
        self._last_sync = clock()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"writer-{self._name}")

    def append(self, data: bytes, count: int, token: Token) -> None:
        self._appends.append((data, count))
        self._tokens.append(token)
        self._work.set()

    def mark(self, seq: int, offset: int, value: int) -> None:
        self._marks.append((seq, offset, value))
        self._work.set()

    def marks(self, marks: list[Mark]) -> None:
        self._marks += marks
        self._work.set()

    def delete(self, seq: int) -> None:
        self._deletions.append(seq)
        self._work.set()

    def run(self, task: Task) -> None:
        self._tasks.append(task)
        self._work.set()

    def after_round(self, callback: Callable[[], None]) -> None:
        """Call `callback` on the event loop once everything asked for so far is written."""
        self._callbacks.append(callback)
        self._work.set()

    @property
    def busy(self) -> bool:
        """Whether anything asked for is not written yet."""
        return bool(self._appends or self._marks or self._deletions or self._tasks or self._waiters or self._callbacks)

    async def flush(self) -> None:
        """Wait until everything asked for so far is written (and synced, with fsync: always)."""
        if self._task is None or self._task.done():
            return
        done = asyncio.get_running_loop().create_future()
        self._waiters.append(done)
        self._work.set()
        await done

    async def close(self) -> None:
        """Write what is pending, sync (unless fsync: never) and close the files."""
        if self._task is not None and not self._task.done():
            self._closing = True
            self._work.set()
            await self._task
        try:
            await asyncio.to_thread(self.files.close)
        except OSError as exc:
            self._on_round([], [("sync", exc)])

    async def _loop(self) -> None:
        while True:
            now = self._clock()
            sync_due = self._fsync == "always" or (
                self._fsync == "interval" and now - self._last_sync >= self._fsync_interval
            )
            if self.busy or (sync_due and self._unsynced):
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
        appends, self._appends = self._appends, []
        tokens, self._tokens = self._tokens, []
        marks, self._marks = self._marks, []
        deletions, self._deletions = self._deletions, []
        tasks, self._tasks = self._tasks, []
        waiters, self._waiters = self._waiters, []
        callbacks, self._callbacks = self._callbacks, []
        try:
            try:
                result = await asyncio.to_thread(self._run_round, appends, marks, deletions, tasks, sync)
            except Exception as exc:  # a bug must not stop the store: what was in the round is accounted
                log.exception("%s: writer failed", self._name)
                failure = OSError(errno.EIO, str(exc))
                result = RoundResult([failure] * len(appends), [], self._unsynced)
            if sync:
                self._last_sync = self._clock()
            self._unsynced = result.unsynced
            self._on_round(list(zip(tokens, result.placed, strict=True)), result.errors)
            for callback in callbacks:
                try:
                    callback()
                except Exception:  # one failing callback must not stop the writer or the others
                    log.exception("%s: a callback after a round failed", self._name)
        finally:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _run_round(
        self, appends: list[tuple[bytes, int]], marks: list[Mark], deletions: list[int], tasks: list[Task], sync: bool
    ) -> RoundResult:
        files = self.files
        errors: list[tuple[str, OSError]] = []
        for task in tasks:
            try:
                task(files)
            except OSError as exc:
                errors.append(("task", exc))
        result = files.run_round(appends, marks, deletions, sync)
        result.errors[:0] = errors
        return result
