"""Offline replay of recorded traces through a config's policies: `tail-sampler simulate`.

The input is what the `file` exporter writes: OTLP/JSON, one ExportTraceServiceRequest
per line. Each line is decoded and split per trace as the receivers do, the fragments
of a trace are merged across lines, and every whole trace is then decided by the
daemon's own evaluation (`TailSampler.evaluate`), in order of first appearance. The
clock the policies see is the trace's own start time, so rate-based policies
(rate_limiting, bytes_limiting, composite) spend their budget as they would have live.
"""

from __future__ import annotations

import gc
import mmap
import multiprocessing
import os
import signal
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import IO, Any

from sampler.codecs import otlp_json
from sampler.config import TailSamplingConfig
from sampler.decide.engine import TailSampler
from sampler.policies import Decision
from sampler.receive.split import RequestSplitter
from sampler.spans.trace import TraceSpans
from sampler.telemetry.metrics import Metrics


class InputError(Exception):
    """The traces file cannot be read or holds a malformed line; the message names file and line."""


# --- input -------------------------------------------------------------------

# Lines are decoded in blocks of about this many bytes (a longer line is a block of its
# own). A file of more than POOL_BLOCKS blocks is decoded by a pool of worker processes,
# one per CPU, each reading its blocks from the file; the blocks merge in file order.
BLOCK_BYTES = 1 << 20
POOL_BLOCKS = 8


@dataclass
class TraceSet:
    """Every trace of an input file, whole, in order of first appearance."""

    path: str
    traces: dict[bytes, TraceSpans] = field(default_factory=dict, repr=False)
    lines: int = 0  # non-blank lines, each one export request
    spans: int = 0
    rejected_spans: int = 0  # spans with an invalid trace or span ID, skipped as the receivers skip them


def read_traces(path: str | Path, workers: int | None = None) -> TraceSet:
    """Decode every line of an OTLP/JSON file and merge the fragments of each trace.

    `workers`: processes decoding blocks of lines in parallel; None for one per CPU
    when the file is larger than POOL_BLOCKS blocks, 1 to decode in this process.
    """
    result = TraceSet(str(path))
    # Decoding makes millions of short-lived containers and no reference cycles; the
    # cyclic collector would rescan the growing set of traces again and again (it
    # doubles the decoding time), while reference counting frees everything anyway.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with open(path, "rb") as handle:
            status = os.fstat(handle.fileno())
            size = status.st_size if stat.S_ISREG(status.st_mode) else 0  # 0: a pipe, read as a stream
            if workers is None:
                workers = _cpus() if size > POOL_BLOCKS * BLOCK_BYTES else 1
            if workers > 1 and size:
                _decode_in_pool(result, handle, size, workers)
            else:
                line = 1
                for block in _blocks(handle):
                    line = _merge(result, _decode_block(block), line)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        if collecting:
            gc.enable()
    return result


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _blocks(handle: IO[bytes]) -> Iterator[bytes]:
    """Blocks of whole lines."""
    rest = b""
    while data := handle.read(BLOCK_BYTES):
        data = rest + data if rest else data
        end = data.rfind(b"\n") + 1
        if not end:  # a line longer than a block
            rest = data
            continue
        block, rest = data[:end], data[end:]
        yield block
    if rest:
        yield rest


@dataclass
class _Block:
    newlines: int = 0
    lines: int = 0
    spans: int = 0
    rejected_spans: int = 0
    traces: dict[bytes, TraceSpans] = field(default_factory=dict)
    error: tuple[int, str] | None = None  # the first malformed line: its index in the block, why


def _decode_block(block: bytes) -> _Block:
    decoded = _Block(newlines=block.count(b"\n"))
    traces = decoded.traces
    splitter = RequestSplitter()
    for index, line in enumerate(block.split(b"\n")):
        if not line.strip():
            continue
        try:
            request = otlp_json.request_from_json(line)
        except ValueError as exc:
            decoded.error = (index, str(exc))
            break
        batch = splitter.split(request)
        decoded.lines += 1
        decoded.spans += batch.span_count
        decoded.rejected_spans += batch.rejected_spans
        merge_fragments(traces, batch.traces)
    return decoded


def merge_fragments(traces: dict[bytes, TraceSpans], fragments: dict[bytes, TraceSpans]) -> None:
    """Add fragments to the traces they belong to, in order; a new trace ID starts a trace."""
    for trace_id, fragment in fragments.items():
        trace = traces.get(trace_id)
        if trace is None:
            traces[trace_id] = fragment
        else:
            trace.absorb(fragment)


def _merge(result: TraceSet, decoded: _Block, first_line: int) -> int:
    """Add a block decoded from `first_line` on; returns the number of the line after it."""
    if decoded.error is not None:
        index, reason = decoded.error
        raise InputError(f"{result.path}:{first_line + index}: malformed OTLP JSON request: {reason}")
    result.lines += decoded.lines
    result.spans += decoded.spans
    result.rejected_spans += decoded.rejected_spans
    merge_fragments(result.traces, decoded.traces)
    return first_line + decoded.newlines


def _block_ranges(data: mmap.mmap, size: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of about BLOCK_BYTES, each ending just after a newline (or at the end)."""
    start = 0
    while start < size:
        end = start + BLOCK_BYTES
        if end >= size:
            end = size
        else:
            cut = data.rfind(b"\n", start, end) + 1
            end = cut or (data.find(b"\n", end) + 1) or size  # no newline: a line longer than a block
        yield start, end
        start = end


def _decode_in_pool(result: TraceSet, handle: IO[bytes], size: int, workers: int) -> None:
    methods = multiprocessing.get_all_start_methods()
    # fork starts a worker in milliseconds; the others import the whole package again.
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with (
        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        context.Pool(workers, initializer=_init_worker, initargs=(result.path,)) as pool,
    ):
        pending: deque[AsyncResult[_Block]] = deque()
        line = 1
        for start, end in _block_ranges(data, size):
            pending.append(pool.apply_async(_decode_range, (start, end)))
            if len(pending) > 2 * workers:  # bounded read-ahead; blocks merge in file order
                line = _merge(result, pending.popleft().get(), line)
        while pending:
            line = _merge(result, pending.popleft().get(), line)


_worker_data: mmap.mmap | None = None


def _init_worker(path: str) -> None:
    global _worker_data
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    gc.disable()
    with open(path, "rb") as handle:
        _worker_data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def _decode_range(start: int, end: int) -> _Block:
    assert _worker_data is not None
    return _decode_block(_worker_data[start:end])


# --- decoding ----------------------------------------------------------------


# --- decisions ---------------------------------------------------------------


@dataclass
class PolicyCount:
    name: str
    type: str
    kept_traces: int = 0  # kept traces this policy was the first to sample
    kept_spans: int = 0
    matched_traces: int = 0  # traces it answered sampled (a drop policy: dropped) when evaluated
    evaluated_traces: int = 0  # fewer than all with sample_on_first_match, or after a drop
    errors: int = 0  # evaluations that raised (counted as not sampled, as in the daemon)


@dataclass
class SimulationResult:
    """What one config's policies decide on a set of traces."""

    config: str
    traces: int = 0
    spans: int = 0
    kept_traces: int = 0
    kept_spans: int = 0
    dropped_traces: int = 0  # vetoed by a drop policy
    policies: list[PolicyCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # where the daemon would decide differently
    kept_ids: set[bytes] = field(default_factory=set, repr=False)

    @property
    def keep_rate(self) -> float:
        return self.kept_traces / self.traces if self.traces else 0.0

    @property
    def span_keep_rate(self) -> float:
        return self.kept_spans / self.spans if self.spans else 0.0


@dataclass
class Overlap:
    only_first: int
    only_second: int
    both: int
    neither: int


def simulate(config: TailSamplingConfig, traces: Iterable[TraceSpans], name: str = "") -> SimulationResult:
    """Decide every trace, in the order given, with the daemon's evaluation of `config`'s policies.

    The policies' clock reads the start of the trace being decided (never running
    backwards, as the daemon's monotonic clock does not). Per policy: the kept traces it
    was the first to sample (tail_sampler_traces_kept_by_policy_total in the daemon),
    and its own answers (tail_sampler_policy_decisions_total), read back from the
    sampler's metrics.
    """
    now = 0.0

    def clock() -> float:
        return now

    metrics = Metrics()
    sampler = TailSampler(config, lambda trace: None, metrics, clock)
    counts = {policy.name: PolicyCount(policy.name, policy.type) for policy in config.policies}
    result = SimulationResult(name, policies=list(counts.values()))
    kept_ids = result.kept_ids
    size_cap = config.maximum_trace_size_bytes or float("inf")
    oversized = 0
    evaluate = sampler.evaluate
    sampled, dropped = Decision.SAMPLED, Decision.DROPPED
    # As when reading: evaluation parses spans into short-lived objects without cycles.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for trace in traces:
            start = trace.start_min / 1e9
            if start > now:
                now = start
            span_count = trace.span_count
            result.traces += 1
            result.spans += span_count
            decision, first = evaluate(trace)
            if decision is sampled:
                result.kept_traces += 1
                result.kept_spans += span_count
                kept_ids.add(trace.trace_id)
                if first is not None:
                    count = counts[first.name]
                    count.kept_traces += 1
                    count.kept_spans += span_count
            elif decision is dropped:
                result.dropped_traces += 1
            if trace.nbytes > size_cap:
                oversized += 1
    finally:
        if collecting:
            gc.enable()
    # What happens outside TailSampler.evaluate in the daemon, on the way in, is not simulated.
    if oversized:
        result.notes.append(
            f"{oversized} traces are larger than maximum_trace_size_bytes ({config.maximum_trace_size_bytes}): "
            "the daemon drops those before any policy runs; here they were evaluated"
        )
    if config.sampling_strategy == "span-ingest":
        result.notes.append(
            "sampling_strategy span-ingest decides traces as their spans arrive; here each trace was decided whole"
        )
    # evaluate() batches its counter increments; deciding the (empty) window flushes them.
    sampler.decide_due()
    registry = metrics.registry
    for count in result.policies:
        answers = {
            decision.value: registry.get_sample_value(
                "tail_sampler_policy_decisions_total", {"policy": count.name, "decision": decision.value}
            )
            or 0.0
            for decision in Decision
        }
        count.matched_traces = int(answers["dropped" if count.type == "drop" else "sampled"])
        count.evaluated_traces = int(sum(answers.values()))
        errors = registry.get_sample_value("tail_sampler_policy_evaluation_errors_total", {"policy": count.name})
        count.errors = int(errors or 0)
    return result


def overlap(first: SimulationResult, second: SimulationResult) -> Overlap:
    """How many traces each result keeps that the other does not, and both keep.
    Both results must come from the same traces."""
    both = len(first.kept_ids & second.kept_ids)
    only_first = len(first.kept_ids) - both
    only_second = len(second.kept_ids) - both
    return Overlap(only_first, only_second, both, first.traces - both - only_first - only_second)


# --- output ------------------------------------------------------------------


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"


def _table(rows: list[list[str]], text_columns: int) -> list[str]:
    """The first `text_columns` columns left-aligned, the numbers right-aligned."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if column < text_columns else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _input_line(traces: TraceSet) -> str:
    line = f"input: {traces.path}: {traces.lines} requests, {len(traces.traces)} traces, {traces.spans} spans"
    if traces.rejected_spans:
        line += f"; {traces.rejected_spans} spans with an invalid trace or span ID skipped"
    return line


_LEGEND = [
    "kept: traces the policy was the first to sample (how the daemon attributes kept traces);",
    "matched: traces it sampled (a drop policy: dropped) where it was evaluated. Rates are of all traces.",
]


def _notes(results: list[SimulationResult]) -> list[str]:
    notes = []
    for label, result in zip("AB" if len(results) == 2 else [""] * len(results), results, strict=True):
        prefix = f"{label}: " if label else ""
        notes += [f"{prefix}note: {note}" for note in result.notes]
        skipped = [c.name for c in result.policies if c.evaluated_traces < result.traces]
        if skipped:
            notes.append(
                f"{prefix}not evaluated on every trace (sample_on_first_match, or a drop came first): "
                + ", ".join(skipped)
            )
        for count in result.policies:
            if count.errors:
                notes.append(f"{prefix}policy {count.name!r} raised on {count.errors} traces (counted as not sampled)")
    return notes


def format_report(traces: TraceSet, results: list[SimulationResult]) -> str:
    """A table of the one config's policies, or, for two configs, both side by side and their overlap."""
    if len(results) == 2:
        return _format_comparison(traces, *results)
    lines = [_input_line(traces)]
    for result in results:
        total = result.traces
        rows = [["policy", "type", "kept", "kept spans", "kept rate", "matched", "matched rate"]]
        for count in result.policies:
            rows.append(
                [
                    count.name,
                    count.type,
                    str(count.kept_traces),
                    str(count.kept_spans),
                    _rate(count.kept_traces, total),
                    str(count.matched_traces),
                    _rate(count.matched_traces, total),
                ]
            )
        rows.append(
            ["total", "", str(result.kept_traces), str(result.kept_spans), _rate(result.kept_traces, total), "", ""]
        )
        summary = (
            f"kept {result.kept_traces} of {total} traces ({_rate(result.kept_traces, total)}), "
            f"{result.kept_spans} of {result.spans} spans ({_rate(result.kept_spans, result.spans)})"
        )
        if result.dropped_traces:
            summary += f"; {result.dropped_traces} traces dropped by drop policies"
        lines += [f"config: {result.config}", "", *_table(rows, 2), "", summary]
    return "\n".join([*lines, *_notes(results), "", *_LEGEND])


def _format_comparison(traces: TraceSet, first: SimulationResult, second: SimulationResult) -> str:
    total = first.traces
    names = [count.name for count in first.policies]
    names += [count.name for count in second.policies if count.name not in names]
    by_name = [{count.name: count for count in result.policies} for result in (first, second)]
    rows = [["policy", "A kept", "A rate", "A matched", "B kept", "B rate", "B matched"]]
    for name in names:
        row = [name]
        for counts in by_name:
            count = counts.get(name)
            if count is None:
                row += ["-", "", "-"]
            else:
                row += [str(count.kept_traces), _rate(count.kept_traces, total), str(count.matched_traces)]
        rows.append(row)
    traces_row, spans_row = ["total"], ["spans"]
    for result in (first, second):
        traces_row += [str(result.kept_traces), _rate(result.kept_traces, total), ""]
        spans_row += [str(result.kept_spans), _rate(result.kept_spans, result.spans), ""]
    rows += [traces_row, spans_row]
    both = overlap(first, second)
    lines = [
        _input_line(traces),
        f"A: {first.config}",
        f"B: {second.config}",
        "",
        *_table(rows, 1),
        "",
        f"traces kept by A only: {both.only_first}, by B only: {both.only_second}, "
        f"by both: {both.both}, by neither: {both.neither}",
        *_notes([first, second]),
        "",
        *_LEGEND,
    ]
    return "\n".join(lines)


def report_dict(traces: TraceSet, results: list[SimulationResult]) -> dict[str, Any]:
    """The machine-readable form of `format_report` (for --json)."""
    document: dict[str, Any] = {
        "input": {
            "path": traces.path,
            "requests": traces.lines,
            "traces": len(traces.traces),
            "spans": traces.spans,
            "rejected_spans": traces.rejected_spans,
        },
        "results": [
            {
                "config": result.config,
                "traces": result.traces,
                "spans": result.spans,
                "kept_traces": result.kept_traces,
                "kept_spans": result.kept_spans,
                "keep_rate": result.keep_rate,
                "span_keep_rate": result.span_keep_rate,
                "dropped_traces": result.dropped_traces,
                "policies": [asdict(count) for count in result.policies],
                "notes": result.notes,
            }
            for result in results
        ],
    }
    if len(results) == 2:
        document["comparison"] = asdict(overlap(*results))
    return document
