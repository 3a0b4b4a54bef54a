"""Decisions: takes each request's traces into the window, runs the policies on due traces,
combines their results, hands kept traces on, and remembers every decision in the decision
caches (cache.py) so late spans follow the decision already made."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter as TallyCounter
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from sampler.clock import Clock, monotonic
from sampler.config.tail_sampling import TailSamplingConfig
from sampler.decide.cache import SAMPLED_ENTRY_BYTES, DecisionCache
from sampler.decide.journal import DecisionJournal
from sampler.decide.outcome import NoteMaker, PolicySet, answer_bits, answered, with_late_spans
from sampler.decide.records import EARLY_DECISION_REASONS, DecisionRecorder
from sampler.policies.base import Decision, Policy, PolicyConfig, TraceView, Weight
from sampler.spans.trace import DecodedBatch, TraceSpans
from sampler.telemetry.metrics import Metrics
from sampler.window.log import segment_of
from sampler.window.window import TraceWindow, memory_of

log = logging.getLogger(__name__)

# Policy sets kept for naming the policies of remembered decisions (see outcome.PolicySet).
_POLICY_SETS_KEPT = 64
# What becomes of log records (tail_sampler_log_records_total): the engine counts those naming a
# trace, the receivers those naming none.
LOG_OUTCOMES = ("kept", "dropped", "late_kept", "late_dropped", "passed_through", "untraced_dropped")


class ForwardRoom(Protocol):
    """What block_on_overflow asks of the forwarding side (see sampler/forward/fanout.py)."""

    def has_room(self) -> bool:
        """Whether another decision may hand kept traces on without overfilling an exporter queue."""

    def backed_up(self) -> bool:
        """Whether kept batches are already waiting for room outside a full exporter queue."""


class Evaluation(NamedTuple):
    """The combined decision on a trace, the first policy that sampled it, and what it stands for
    if it was kept with a known probability (None: kept for what it is, or not kept)."""

    decision: Decision
    first: Policy | None
    weight: Weight | None


def combine_weights(weights: Sequence[Weight | None]) -> Weight | None:
    """What a trace kept by all these sampled answers stands for. One sampled answer without a
    probability keeps the trace for certain, so it counts once. Otherwise the trace was kept for
    the most likely of them: consistent probability decisions share the trace's randomness, so
    it passes the lowest threshold exactly when it passes any (the lowest adjusted count)."""
    if not weights or None in weights:
        return None
    return min((w for w in weights if w is not None), key=lambda w: w.rate)


_DROPPED = Evaluation(Decision.DROPPED, None, None)
_NOT_SAMPLED = Evaluation(Decision.NOT_SAMPLED, None, None)


def combine(decisions: Sequence[Decision]) -> Decision:
    """The Collector's rule: a drop vetoes everything; otherwise any sampled keeps the trace.
    TailSampler.evaluate applies it inline (tests/unit/test_engine.py holds the two together)."""
    if Decision.DROPPED in decisions:
        return Decision.DROPPED
    if Decision.SAMPLED in decisions:
        return Decision.SAMPLED
    return Decision.NOT_SAMPLED


class TailSampler:
    """Buffers incoming traces, decides them when due, and hands kept ones to `keep`."""

    def __init__(
        self,
        config: TailSamplingConfig,
        keep: Callable[[TraceSpans], None],
        metrics: Metrics,
        clock: Clock = monotonic,
        forward: ForwardRoom | None = None,
    ) -> None:
        self._keep = keep
        # With block_on_overflow, decisions pause while an exporter queue is full, so kept
        # traces wait in the window (which then pushes back on clients) instead of being dropped.
        self._forward = forward if config.block_on_overflow else None
        self._metrics = metrics
        self._clock = clock
        self._sample_on_first_match = config.sample_on_first_match
        self._drop_pending_on_shutdown = config.drop_pending_traces_on_shutdown
        self._recorder = DecisionRecorder(config.record_policy)
        self._max_trace_bytes = config.maximum_trace_size_bytes
        self._block_on_overflow = config.block_on_overflow
        self._span_ingest = config.sampling_strategy == "span-ingest"
        self._block_timeout = config.block_on_overflow_timeout
        self._memory_limit = int(config.memory_limit_mib * 1024 * 1024)
        self._max_spans = config.max_spans_per_trace
        self._room_freed = asyncio.Event()
        self.window = TraceWindow(
            config.num_traces,
            config.num_shards,
            config.decision_wait,
            config.decision_wait_after_root_received,
            clock,
        )
        self.sampled_cache = DecisionCache(config.decision_cache.sampled_cache_size, SAMPLED_ENTRY_BYTES)
        self.not_sampled_cache = DecisionCache(config.decision_cache.non_sampled_cache_size)
        self.policies: list[Policy] = []
        self._tally: TallyCounter[Any] = TallyCounter()
        # Histogram observations, handed over with the tally (BatchedHistogram.observe_many).
        self._lags: list[float] = []
        self._ages: list[float] = []
        # Decisions are journaled as they are made when set (decision_cache.persist_path, storage).
        self.journal: DecisionJournal | None = None
        # What the decision caches remember of each decision (outcome.py) refers to these.
        self.started = clock()
        self.policy_sets: OrderedDict[int, PolicySet] = OrderedDict()
        self.policy_set = PolicySet.of(0, [])
        self._last_answers = 0  # answer_bits of the last evaluation
        self._last_credited: int | None = None
        self.set_policies(config.policies)
        self._bind_metrics()

    def apply(self, config: TailSamplingConfig) -> None:
        """Take new policies and evaluation options; buffered traces and the decision caches stay."""
        self._sample_on_first_match = config.sample_on_first_match
        self._drop_pending_on_shutdown = config.drop_pending_traces_on_shutdown
        self._recorder = DecisionRecorder(config.record_policy)
        self.set_policies(config.policies)

    def set_policies(self, configs: Sequence[PolicyConfig]) -> None:
        # Types that run first (drop: its veto makes everything else moot) go ahead, each group in config order.
        ordered = [c for c in configs if c.policy_type.runs_first] + [
            c for c in configs if not c.policy_type.runs_first
        ]
        self.policies = [config.build(self._clock) for config in ordered]
        m = self._metrics
        # Per policy and answer: its counter, and its bits in a decision's note (outcome.py).
        self._policy_answers = [
            {
                decision: (m.policy_decisions.labels(policy.name, decision.value), answer_bits([decision], index))
                for decision in Decision
            }
            for index, policy in enumerate(self.policies)
        ]
        self._kept_by = [m.traces_kept_by_policy.labels(policy.name) for policy in self.policies]
        self._policy_errors = [m.policy_evaluation_errors.labels(policy.name) for policy in self.policies]
        policy_set = PolicySet.of(self.policy_set.generation + 1 if self.policy_sets else 0, self.policies)
        self.policy_set = self.policy_sets[policy_set.generation] = policy_set
        self._notes = NoteMaker(policy_set.generation)
        while len(self.policy_sets) > _POLICY_SETS_KEPT:
            self.policy_sets.popitem(last=False)
        self._none_sampled = answer_bits([Decision.NOT_SAMPLED] * len(self.policies))
        # Policies that can name a sub-policy (composite), by position.
        self._naming_sub_policies = [
            index
            for index, policy in enumerate(self.policies)
            if type(policy).matched_sub_policy is not Policy.matched_sub_policy
            or type(policy).credited_sub_policy is not Policy.credited_sub_policy
        ]

    def _bind_metrics(self) -> None:
        m = self._metrics
        window = self.window
        m.window_traces.set_function(lambda: window.trace_count)
        m.window_spans.set_function(lambda: window.span_count)
        m.window_bytes.set_function(lambda: window.nbytes)
        m.window_log_records.set_function(lambda: window.log_count)
        m.window_capacity.set(window.capacity)
        m.window_memory_bytes.set_function(lambda: window.memory_bytes)
        m.window_memory_limit.set(self._memory_limit)
        m.decision_cache_size.labels("sampled").set_function(lambda: len(self.sampled_cache))
        m.decision_cache_size.labels("not_sampled").set_function(lambda: len(self.not_sampled_cache))
        m.decision_cache_memory.labels("sampled").set_function(lambda: self.sampled_cache.memory_bytes)
        m.decision_cache_memory.labels("not_sampled").set_function(lambda: self.not_sampled_cache.memory_bytes)
        self._late_kept = m.late_spans.labels("kept")
        self._late_dropped = m.late_spans.labels("dropped")
        self._late_too_large = m.late_spans.labels("too_large")
        self._too_large = m.traces_dropped_too_large
        self._early = {reason: m.early_decisions.labels(reason) for reason in EARLY_DECISION_REASONS}
        self._spans_kept = m.spans_decided.labels("kept")
        self._spans_dropped = m.spans_decided.labels("dropped")
        self._logs = {outcome: m.log_records.labels(outcome) for outcome in LOG_OUTCOMES}
        self._decided = {
            (kept, trigger): m.traces_decided.labels("kept" if kept else "dropped", trigger)
            for kept in (True, False)
            for trigger in ("wait", "root", "shutdown", "too_large", "ingest", *EARLY_DECISION_REASONS)
        }

    def _new_trace_ids(self, batch: DecodedBatch) -> list[bytes]:
        window = self.window
        return [
            trace_id
            for trace_id in batch.traces
            if window.get(trace_id) is None
            and trace_id not in self.sampled_cache
            and trace_id not in self.not_sampled_cache
        ]

    @property
    def memory_limit(self) -> int:
        """memory_limit_mib in bytes; 0 when off."""
        return self._memory_limit

    @property
    def blocking(self) -> bool:
        return self._block_on_overflow

    def wait_budget(self, timeout: float | None) -> float:
        """How long a request may wait for room: its own `timeout` (None: none), but never past
        block_on_overflow_timeout, because OTLP SDK exporters retry within one overall timeout
        and a refusal must leave them time to retry."""
        return self._block_timeout if timeout is None else min(timeout, self._block_timeout)

    async def wait_for_room(self, batch: DecodedBatch | None, timeout: float | None = None) -> bool:
        """With block_on_overflow: wait until the batch fits (see _has_room; None: until there is
        any room at all). False if it still does not within wait_budget(timeout). Without
        block_on_overflow, always True (the oldest traces are decided early instead)."""
        if not self._block_on_overflow:
            return True
        timeout = self.wait_budget(timeout)
        deadline = asyncio.get_running_loop().time() + timeout
        while not self._has_room(batch):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            self._room_freed.clear()
            # asyncio.wait, unlike wait_for, times out without raising: a timeout exception's
            # traceback would keep this frame, and the refused batch in it, alive until a GC pass.
            waiter = asyncio.ensure_future(self._room_freed.wait())
            done, _ = await asyncio.wait((waiter,), timeout=remaining)
            if not done:
                waiter.cancel()
                return False
        return True

    def _has_room(self, batch: DecodedBatch | None) -> bool:
        """Whether the batch can be taken without deciding traces early or backing up the exporters.
        A batch that could never fit (more new traces than a shard holds, more memory than the
        limit) is let in rather than made to wait for nothing. For None: whether there is any
        room, which a receiver asks before it spends time decoding a request."""
        if self._forward is not None and self._forward.backed_up():
            return False
        if batch is None:
            window = self.window
            if window.trace_count >= window.capacity:
                return False
            return not self._memory_limit or window.memory_bytes < self._memory_limit
        new = self._new_trace_ids(batch)
        if new and self.window.could_ever_fit(new) and not self.window.has_room_for(new):
            return False
        limit = self._memory_limit
        if limit:
            needed = sum(memory_of(fragment) for fragment in batch.traces.values())
            if needed <= limit and self.window.memory_bytes + needed > limit:
                return False
        return True

    def _flush_tally(self) -> None:
        # Counter increments are summed per call of ingest/decide_due, and histogram observations
        # gathered, not made per trace: a prometheus-client call costs as much as evaluating a
        # simple policy.
        tally = self._tally
        if tally:
            for counter, amount in tally.items():
                counter.inc(amount)
            tally.clear()
        if self._lags:
            self._metrics.decision_lag.observe_many(self._lags)
            self._lags.clear()
        if self._ages:
            self._metrics.trace_age_at_decision.observe_many(self._ages)
            self._ages.clear()
        if self.journal is not None:
            self.journal.flush()

    def ingest(self, batch: DecodedBatch, arrived: float | None = None) -> int:
        """Take the spans of one request, arrived now or at `arrived` (on the clock: a request
        read back from the window's log). Returns how many traces were new."""
        window = self.window
        tally = self._tally
        max_size = self._max_trace_bytes
        max_spans = self._max_spans
        span_ingest = self._span_ingest
        new_traces = 0
        for trace_id, fragment in batch.traces.items():
            trace = window.get(trace_id)
            if trace is not None:
                window.extend(trace, fragment)
                if max_size and trace.nbytes > max_size:
                    window.discard(trace)
                    self._record(trace, False, "too_large")
                elif max_spans and trace.span_count >= max_spans:
                    window.discard(trace)
                    tally[self._early["span_limit"]] += 1
                    self._decide(trace, "span_limit")
                elif span_ingest:
                    self._decide_on_ingest(trace)
            elif (kept := self.sampled_cache.get(trace_id)) is not None:
                record, forwarded, threshold, note = kept
                note = with_late_spans(note, fragment.span_count)
                if max_size and forwarded + fragment.nbytes > max_size:
                    # The size cap holds for a kept trace's late spans too.
                    self.sampled_cache.update(trace_id, (record, forwarded, threshold, note))
                    tally[self._late_too_large] += fragment.span_count
                    if fragment.log_count:
                        tally[self._logs["late_dropped"]] += fragment.log_count
                    self._settle(fragment)
                    continue
                self.sampled_cache.update(trace_id, (record, forwarded + fragment.nbytes, threshold, note))
                tally[self._late_kept] += fragment.span_count
                if fragment.log_count:
                    tally[self._logs["late_kept"]] += fragment.log_count
                self._recorder.apply_late(fragment, record, threshold)
                self._keep(fragment)
            elif (note := self.not_sampled_cache.get(trace_id)) is not None:
                self.not_sampled_cache.update(trace_id, with_late_spans(note, fragment.span_count))
                tally[self._late_dropped] += fragment.span_count
                if fragment.log_count:
                    tally[self._logs["late_dropped"]] += fragment.log_count
                self._settle(fragment)
            else:
                new_traces += 1
                if max_size and fragment.nbytes > max_size:
                    fragment.first_seen = self._clock() if arrived is None else arrived
                    self._record(fragment, False, "too_large")
                    continue
                if max_spans and fragment.span_count >= max_spans:
                    fragment.first_seen = self._clock() if arrived is None else arrived
                    tally[self._early["span_limit"]] += 1
                    self._decide(fragment, "span_limit")
                    continue
                evicted = window.add(fragment, arrived)
                if evicted is not None:
                    tally[self._early["overflow"]] += 1
                    self._decide(evicted, "overflow")
                if span_ingest:
                    self._decide_on_ingest(fragment)
        if self._memory_limit and window.memory_bytes > self._memory_limit:
            self._shed_memory()
        self._flush_tally()
        return new_traces

    def _shed_memory(self) -> None:
        """Decide the oldest traces early until the window is back within memory_limit_mib."""
        window = self.window
        excess = window.memory_bytes - self._memory_limit
        counter = self._early["memory"]
        while excess > 0:
            trace = window.pop_oldest()
            if trace is None:
                break
            excess -= memory_of(trace)  # before deciding: a decision record may rewrite the trace
            self._tally[counter] += 1
            self._decide(trace, "memory")

    def decide_early_from(self, segment: int) -> int:
        """tail_sampling.storage full, with when_full: decide_early: decide, oldest first, every
        trace with fragments in the window's log up to `segment`, so its segments can be freed."""
        window = self.window
        count = 0
        counter = self._early["storage"]
        while (
            (trace := window.oldest()) is not None
            and (held := trace.log_positions) is not None
            and segment_of(held if isinstance(held, int) else held[0]) <= segment
        ):
            window.discard(trace)
            self._tally[counter] += 1
            self._decide(trace, "storage")
            count += 1
        self._flush_tally()
        return count

    def _settle(self, fragment: TraceSpans) -> None:
        """A fragment not forwarded (its trace dropped) is done with, once its decision is journaled."""
        if fragment.log_positions is not None and self.journal is not None:
            self.journal.settle_after(fragment.log_positions)

    def _decide_on_ingest(self, trace: TraceSpans) -> None:
        """span-ingest: a trace is kept as soon as a policy samples what has arrived of it
        (and dropped as soon as a drop policy matches); otherwise it waits in the window."""
        final, first, weight = self.evaluate(trace)
        if final is Decision.NOT_SAMPLED:
            return
        self.window.discard(trace)
        kept = final is Decision.SAMPLED
        note = self.note(trace, "ingest", evaluated=True)  # before a decision record rewrites spans
        record = self._recorder.mark(trace, first, "ingest", weight) if kept else b""
        self._record(trace, kept, "ingest", record, weight, note)

    def decide_due(self) -> int:
        """Decide every trace that is due now; returns how many."""
        now = self._clock()
        count = 0
        lags = self._lags
        forward = self._forward
        if forward is None or forward.has_room():
            for trace, trigger in self.window.pop_due(now):
                lags.append(max(0.0, now - trace.due))
                if self._span_ingest:
                    # Every arrival was evaluated already: what no policy sampled by now is not kept.
                    self._last_answers, self._last_credited = self._none_sampled, None
                    self._record(trace, False, trigger, note=self.note(trace, trigger, evaluated=True))
                else:
                    self._decide(trace, trigger)
                count += 1
                if forward is not None and not forward.has_room():
                    break  # the rest wait in the window until the exporters catch up
        self._flush_tally()
        if count or forward is not None:
            # Waiting receivers look again: a backed-up exporter may have caught up meanwhile.
            self._room_freed.set()
        return count

    def decide_all(self) -> int:
        """Decide every buffered trace at once (shutdown); with drop_pending_traces_on_shutdown,
        drop them without running the policies."""
        count = 0
        for trace in self.window.pop_all():
            if self._drop_pending_on_shutdown:
                self._record(trace, False, "shutdown")
            else:
                self._decide(trace, "shutdown")
            count += 1
        self._flush_tally()
        return count

    def evaluate(self, trace: TraceSpans) -> Evaluation:
        """The combined decision for a trace (as `combine` puts the policies' answers together),
        the first policy that sampled it, and its weight. What each policy answered, and which
        one is credited, stay in _last_answers and _last_credited for the decision's note."""
        view = TraceView(trace)
        tally = self._tally
        policy_answers = self._policy_answers
        answers = 0  # the policies not asked answered nothing
        first_sampler = -1
        weights: list[Weight | None] = []
        for index, policy in enumerate(self.policies):
            try:
                decision = policy.evaluate(view)
            except Exception:  # a policy bug must not take the daemon down
                log.exception("policy %r failed on a trace; counting it as not sampled", policy.name)
                self._policy_errors[index].inc()
                decision = Decision.NOT_SAMPLED
            counter, bits = policy_answers[index][decision]
            tally[counter] += 1
            answers |= bits
            if decision is Decision.DROPPED:
                self._last_answers, self._last_credited = answers, None
                return _DROPPED  # a drop vetoes everything
            if decision is Decision.SAMPLED:
                weights.append(policy.weight())
                if first_sampler < 0:
                    first_sampler = index
                    if self._sample_on_first_match:
                        break
        self._last_answers = answers
        if first_sampler >= 0:
            self._last_credited = first_sampler
            tally[self._kept_by[first_sampler]] += 1
            return Evaluation(Decision.SAMPLED, self.policies[first_sampler], combine_weights(weights))
        self._last_credited = None
        return _NOT_SAMPLED

    def _decide(self, trace: TraceSpans, trigger: str) -> None:
        final, first, weight = self.evaluate(trace)
        kept = final is Decision.SAMPLED
        note = self.note(trace, trigger, evaluated=True)  # before a decision record rewrites spans
        record = self._recorder.mark(trace, first, trigger, weight) if kept else b""
        self._record(trace, kept, trigger, record, weight, note)

    def note(self, trace: TraceSpans, trigger: str, evaluated: bool) -> int:
        """What the decision caches remember of deciding this trace now (see outcome.py): with
        `evaluated`, the answers of the last evaluation, which was of this trace; otherwise none
        (no policy ran). The spans and bytes are the trace's as it arrived."""
        credited = sub_policy = None
        answers = 0
        if evaluated:
            answers = self._last_answers
            credited = self._last_credited
            if self._naming_sub_policies:
                credited, sub_policy = self._sub_policy(credited, answers)
        decided_ms = int((self._clock() - self.started) * 1000)
        return self._notes.make(trigger, credited, sub_policy, answers, decided_ms, trace.span_count, trace.nbytes)

    def _sub_policy(self, credited: int | None, answers: int) -> tuple[int | None, int | None]:
        """(policy, sub-policy) positions: for a kept trace, the credited policy and the sub-policy
        it credits; for a trace no policy kept, the first policy whose sub-policy matched it
        without sampling it (composite: over its share), or (None, None)."""
        positions = [credited] if credited is not None else self._naming_sub_policies
        for position in positions:
            if not answered(answers, position):
                break
            policy = self.policies[position]
            name = policy.credited_sub_policy() if credited is not None else policy.matched_sub_policy()
            found = self.policy_set.sub_policy_position(position, name)
            if found is not None:
                return position, found
        return credited, None

    def _record(
        self,
        trace: TraceSpans,
        kept: bool,
        trigger: str,
        record: bytes = b"",
        weight: Weight | None = None,
        note: int | None = None,
    ) -> None:
        self._ages.append(max(0.0, self._clock() - trace.first_seen))
        tally = self._tally
        tally[self._decided[(kept, trigger)]] += 1
        if note is None:
            note = self.note(trace, trigger, evaluated=False)
        journal = self.journal
        if kept:
            threshold = weight.threshold if weight is not None else None
            self.sampled_cache.add(trace.trace_id, (record, trace.nbytes, threshold, note))
            if journal is not None:
                journal.kept(trace.trace_id, record, trace.nbytes, threshold)
            tally[self._spans_kept] += trace.span_count
            if trace.log_count:
                tally[self._logs["kept"]] += trace.log_count
            self._keep(trace)
        else:
            self.not_sampled_cache.add(trace.trace_id, note)
            if journal is not None:
                journal.dropped(trace.trace_id)
                self._settle(trace)
            tally[self._spans_dropped] += trace.span_count
            if trace.log_count:
                tally[self._logs["dropped"]] += trace.log_count
            if trigger == "too_large":
                tally[self._too_large] += 1
