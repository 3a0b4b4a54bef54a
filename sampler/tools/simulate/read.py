"""Reading recorded traces for `tail-sampler simulate`: what the `file` exporter writes,
OTLP/JSON, one ExportTraceServiceRequest per line. Each line is decoded and split per
trace as the receivers do, and the fragments of a trace are merged across lines."""

from __future__ import annotations

import gc
import mmap
import multiprocessing
import os
import signal
import stat
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import IO

from sampler.codecs import otlp_json
from sampler.receive.split import RequestSplitter
from sampler.spans.trace import TraceSpans


class InputError(Exception):
    """The traces file cannot be read or holds a malformed line; the message names file and line."""


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


def read_traces(
    path: str | Path, workers: int | None = None, progress: Callable[[int], object] | None = None
) -> TraceSet:
    """Decode every line of an OTLP/JSON file and merge the fragments of each trace.

    `workers`: processes decoding blocks of lines in parallel; None for one per CPU
    when the file is larger than POOL_BLOCKS blocks, 1 to decode in this process.
    `progress`: called with the bytes of each block once it is merged.
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
                _decode_in_pool(result, handle, size, workers, progress)
            else:
                line = 1
                for block in _blocks(handle):
                    line = _merge(result, _decode_block(block), line)
                    if progress is not None:
                        progress(len(block))
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


def _decode_in_pool(
    result: TraceSet, handle: IO[bytes], size: int, workers: int, progress: Callable[[int], object] | None
) -> None:
    methods = multiprocessing.get_all_start_methods()
    # fork starts a worker in milliseconds; the others import the whole package again.
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with (
        mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        context.Pool(workers, initializer=_init_worker, initargs=(result.path,)) as pool,
    ):
        pending: deque[tuple[AsyncResult[_Block], int]] = deque()
        line = 1

        def merge_next() -> int:
            decoded, length = pending.popleft()
            merged = _merge(result, decoded.get(), line)
            if progress is not None:
                progress(length)
            return merged

        for start, end in _block_ranges(data, size):
            pending.append((pool.apply_async(_decode_range, (start, end)), end - start))
            if len(pending) > 2 * workers:  # bounded read-ahead; blocks merge in file order
                line = merge_next()
        while pending:
            line = merge_next()


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
