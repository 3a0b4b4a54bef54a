"""What persists of the window and the decisions, kept in step with the engine: the window's
log (tail_sampling.storage, window/log.py) and the decision journal (journal.py).

- Admission: a request's fragments are appended to the log before the request is
  acknowledged; when the log is full, `when_full` says what happens: refuse (the client
  retries after a hint) or decide the oldest traces early and wait, within the request's
  budget, for their segments to be freed.
- Recovery, on start: the journal fills the decision caches first; then every fragment the log
  kept goes through the engine's own ingest with its original arrival time, so a trace decided
  before the crash follows that decision (kept: forwarded again, dropped: not), and one not
  decided is rebuilt in the window and decided normally. A decision is never made twice for
  a trace the journal remembers.
- Release: a kept trace's positions come back from the exporters (forward/receipt.py) and are
  settled through the journal, after its decision is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from sampler.clock import Clock, monotonic
from sampler.config.tail_sampling import TailSamplingConfig
from sampler.decide.engine import TailSampler
from sampler.decide.journal import DecisionJournal, journal_paths
from sampler.spans.trace import DecodedBatch, LogPosition
from sampler.telemetry.metrics import Metrics
from sampler.window.log import StorageFull, WindowLog

log = logging.getLogger(__name__)


class DurableWindow:
    def __init__(
        self,
        config: TailSamplingConfig,
        sampler: TailSampler,
        metrics: Metrics,
        clock: Clock = monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._sampler = sampler
        storage = config.storage
        self._decide_early = storage is not None and storage.when_full == "decide_early"
        self.log = WindowLog(storage, metrics, clock, wall_clock) if storage is not None else None
        self.journal: DecisionJournal | None = None
        paths = journal_paths(config)
        if paths is not None:
            fsync_policy = storage.fsync if storage is not None else "interval"
            interval = storage.fsync_interval if storage is not None else 1.0
            self.journal = DecisionJournal(
                paths[0],
                paths[1],
                sampler.sampled_cache,
                sampler.not_sampled_cache,
                metrics,
                fsync_policy,
                interval,
                clock,
            )
            if self.log is not None:
                self.journal.on_written = self.log.settle
        sampler.journal = self.journal
        self._recovered = {state: metrics.window_storage_recovered_spans.labels(state) for state in _STATES}

    async def open(self) -> None:
        """Load the decisions and index the log (raises OSError if a directory is unusable)."""
        if self.journal is not None:
            await self.journal.open()
        if self.log is not None:
            await self.log.open()

    async def recover(self) -> None:
        """Feed what the log kept to the engine (once the exporters run, before the receivers do)."""
        if self.log is None:
            return
        sampler = self._sampler
        totals = dict.fromkeys(_STATES, 0)
        async for record in self.log.recover():
            for trace_id, fragment in record.batch.traces.items():
                if trace_id in sampler.sampled_cache:
                    totals["kept"] += fragment.span_count
                elif trace_id in sampler.not_sampled_cache:
                    totals["dropped"] += fragment.span_count
                else:
                    totals["undecided"] += fragment.span_count
            sampler.ingest(record.batch, record.arrived)
        for state, spans in totals.items():
            self._recovered[state].inc(spans)
        if any(totals.values()):
            log.warning(
                "window log: %d span(s) acknowledged by an earlier run were not handed on: %d rebuilt in the "
                "window, %d of kept traces forwarded again (the backend may see them twice), %d of dropped "
                "traces not forwarded",
                sum(totals.values()),
                totals["undecided"],
                totals["kept"],
                totals["dropped"],
            )

    async def admit(self, batch: DecodedBatch, budget: float) -> None:
        """Append the request to the log (no-op without storage); raises StorageFull if it cannot
        be, with when_full: decide_early only after deciding traces early did not free room
        within `budget` seconds."""
        window_log = self.log
        if window_log is None:
            return
        try:
            await window_log.append(batch)
            return
        except StorageFull as exc:
            if not self._decide_early or exc.reason != "storage_full":
                raise
        window_log.seal()
        oldest = window_log.oldest_segment
        if oldest is not None:
            self._sampler.decide_early_from(oldest)
        if not await window_log.wait_for_room(window_log.record_size(batch), budget):
            raise StorageFull(
                "the window's storage is full and deciding the oldest traces early freed no room in time "
                "(their kept spans wait for the exporters)"
            )
        await window_log.append(batch)

    def release(self, positions: Sequence[LogPosition]) -> None:
        """Kept spans taken by every exporter: settled once their decisions are written."""
        if self.journal is not None:
            self.journal.settle_after(positions)

    async def close(self) -> None:
        """After the last decisions: write the journal (compacted), then the log."""
        if self.journal is not None:
            self.journal.flush()
            await self.journal.close()
        if self.log is not None:
            await self.log.close()


_STATES = ("undecided", "kept", "dropped")
