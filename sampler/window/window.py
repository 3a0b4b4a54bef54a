"""The trace window: spans grouped per trace ID until the trace is due.

Each shard keeps its traces in arrival order. Since every trace waits the same
`decision_wait`, arrival order is also due order, so finding the due traces
looks only at the front: expiry costs O(expired traces), never a scan. Traces
made due sooner by their root span sit in a second FIFO (the root delay is
constant too) and are skipped there if they were decided meanwhile.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator

from sampler.clock import Clock
from sampler.spans.trace import TraceSpans

# What a buffered trace costs beyond its spans' bytes: its objects, dict slots, span
# framing and bytearray slack. Measured with tracemalloc on traces of 1 to 100 spans
# spread over 1 to 5 services and rounded up, so the estimate errs on the high side.
TRACE_OVERHEAD_BYTES = 768
SPAN_OVERHEAD_BYTES = 32


def memory_of(trace: TraceSpans) -> int:
    """The estimated memory a buffered trace holds (what memory_limit_mib bounds); a log record
    is held as a span is, framed bytes in a bytearray, and costs the same beyond its bytes."""
    return trace.held_bytes + TRACE_OVERHEAD_BYTES + SPAN_OVERHEAD_BYTES * (trace.span_count + trace.log_count)


class _Shard:
    __slots__ = ("traces", "root_due", "span_count", "nbytes", "log_count", "log_nbytes", "limit")

    def __init__(self, limit: int) -> None:
        self.traces: OrderedDict[bytes, TraceSpans] = OrderedDict()
        self.root_due: deque[tuple[float, TraceSpans]] = deque()
        self.span_count = 0
        self.nbytes = 0
        self.log_count = 0
        self.log_nbytes = 0
        self.limit = limit

    def count_in(self, trace: TraceSpans) -> None:
        self.span_count += trace.span_count
        self.nbytes += trace.nbytes
        self.log_count += trace.log_count
        self.log_nbytes += trace.log_nbytes

    def count_out(self, trace: TraceSpans) -> None:
        self.span_count -= trace.span_count
        self.nbytes -= trace.nbytes
        self.log_count -= trace.log_count
        self.log_nbytes -= trace.log_nbytes


class TraceWindow:
    """Buffered traces awaiting a decision, bounded to `num_traces`."""

    def __init__(
        self,
        num_traces: int,
        num_shards: int,
        decision_wait: float,
        root_wait: float,
        clock: Clock,
    ) -> None:
        num_shards = max(1, min(num_shards, num_traces))
        # Shard limits add up to exactly num_traces.
        base, extra = divmod(num_traces, num_shards)
        self._shards = tuple(_Shard(base + (index < extra)) for index in range(num_shards))
        self._wait = decision_wait
        # A root delay no shorter than the wait would never make a trace due sooner.
        self._root_wait = root_wait if 0 < root_wait < decision_wait else 0.0
        self._clock = clock
        self.capacity = num_traces

    def _shard(self, trace_id: bytes) -> _Shard:
        return self._shards[hash(trace_id) % len(self._shards)]

    def get(self, trace_id: bytes) -> TraceSpans | None:
        return self._shard(trace_id).traces.get(trace_id)

    def add(self, trace: TraceSpans, arrived: float | None = None) -> TraceSpans | None:
        """Adopt a trace not yet in the window, arrived now or at `arrived` (on the clock: a
        trace rebuilt from the window's log keeps its arrival). Returns the oldest trace of the
        shard if it had to make room; the caller must decide that one now."""
        shard = self._shard(trace.trace_id)
        evicted = None
        if len(shard.traces) >= shard.limit:
            _, evicted = shard.traces.popitem(last=False)
            shard.count_out(evicted)
        now = self._clock() if arrived is None else arrived
        trace.first_seen = now
        trace.due = now + self._wait
        shard.traces[trace.trace_id] = trace
        shard.count_in(trace)
        if trace.root_seen:
            self._root_arrived(shard, trace, now)
        return evicted

    def extend(self, trace: TraceSpans, fragment: TraceSpans) -> None:
        """Append a later fragment to a trace already in the window."""
        shard = self._shard(trace.trace_id)
        had_root = trace.root_seen
        trace.absorb(fragment)
        shard.count_in(fragment)
        if trace.root_seen and not had_root:
            self._root_arrived(shard, trace, self._clock())

    def _root_arrived(self, shard: _Shard, trace: TraceSpans, now: float) -> None:
        if self._root_wait:
            due = now + self._root_wait
            if due < trace.due:
                trace.due = due
                shard.root_due.append((due, trace))

    def has_room_for(self, trace_ids: list[bytes]) -> bool:
        """Whether new traces with these IDs fit without evicting any (False also when
        they could never fit: more than a shard holds)."""
        needed: dict[int, int] = {}
        for trace_id in trace_ids:
            index = hash(trace_id) % len(self._shards)
            needed[index] = needed.get(index, 0) + 1
        return all(len(self._shards[i].traces) + n <= self._shards[i].limit for i, n in needed.items())

    def could_ever_fit(self, trace_ids: list[bytes]) -> bool:
        needed: dict[int, int] = {}
        for trace_id in trace_ids:
            index = hash(trace_id) % len(self._shards)
            needed[index] = needed.get(index, 0) + 1
        return all(n <= self._shards[i].limit for i, n in needed.items())

    def discard(self, trace: TraceSpans) -> None:
        """Remove a buffered trace before it is due (its root-queue entry is skipped later)."""
        shard = self._shard(trace.trace_id)
        if shard.traces.get(trace.trace_id) is trace:
            self._remove(shard, trace)

    def pop_due(self, now: float) -> Iterator[tuple[TraceSpans, str]]:
        """Remove and yield (trace, trigger) for every trace due at `now`."""
        for shard in self._shards:
            root_due = shard.root_due
            while root_due and root_due[0][0] <= now:
                _, trace = root_due.popleft()
                if shard.traces.get(trace.trace_id) is trace:
                    self._remove(shard, trace)
                    yield trace, "root"
            traces = shard.traces
            while traces:
                trace = next(iter(traces.values()))
                if trace.first_seen + self._wait > now:
                    break
                self._remove(shard, trace)
                yield trace, "wait"

    def oldest(self) -> TraceSpans | None:
        """The trace first seen longest ago, left in place; None if the window is empty."""
        heads = [next(iter(shard.traces.values())) for shard in self._shards if shard.traces]
        return min(heads, key=lambda trace: trace.first_seen, default=None)

    def pop_oldest(self) -> TraceSpans | None:
        """Remove and return the trace first seen longest ago, None if the window is empty.
        Looks at the head of every shard: O(num_shards), used only when a bound is hit."""
        oldest_shard = None
        oldest = None
        for shard in self._shards:
            if shard.traces:
                head = next(iter(shard.traces.values()))
                if oldest is None or head.first_seen < oldest.first_seen:
                    oldest_shard, oldest = shard, head
        if oldest_shard is not None and oldest is not None:
            self._remove(oldest_shard, oldest)
        return oldest

    def pop_all(self) -> Iterator[TraceSpans]:
        """Remove and yield every buffered trace, oldest first per shard."""
        for shard in self._shards:
            while shard.traces:
                _, trace = shard.traces.popitem(last=False)
                shard.count_out(trace)
                yield trace
            shard.root_due.clear()

    @staticmethod
    def _remove(shard: _Shard, trace: TraceSpans) -> None:
        del shard.traces[trace.trace_id]
        shard.count_out(trace)

    @property
    def trace_count(self) -> int:
        return sum(len(shard.traces) for shard in self._shards)

    @property
    def span_count(self) -> int:
        return sum(shard.span_count for shard in self._shards)

    @property
    def nbytes(self) -> int:
        return sum(shard.nbytes for shard in self._shards)

    @property
    def log_count(self) -> int:
        return sum(shard.log_count for shard in self._shards)

    @property
    def log_nbytes(self) -> int:
        return sum(shard.log_nbytes for shard in self._shards)

    @property
    def memory_bytes(self) -> int:
        """The estimated memory of every buffered trace (see memory_of)."""
        held = sum(shard.nbytes + shard.log_nbytes for shard in self._shards)
        records = sum(shard.span_count + shard.log_count for shard in self._shards)
        return held + TRACE_OVERHEAD_BYTES * self.trace_count + SPAN_OVERHEAD_BYTES * records
