"""Gathers kept traces into export requests sized in spans and in bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sampler.clock import Clock, monotonic
from sampler.config.exporters import BatchConfig
from sampler.forward.receipt import Receipt
from sampler.spans.framing import count_fields, encode_request, split_framed
from sampler.spans.trace import ScopeKey, TraceSpans, add_positions
from sampler.telemetry.metrics import Metrics

# Framing around the spans (request, resource and scope fields) is small but not free.
_FRAMING_ALLOWANCE = 64


@dataclass(frozen=True)
class Payload:
    """One serialized ExportTraceServiceRequest and the number of spans in it; with
    tail_sampling.storage, the receipt its exporters settle (receipt.py)."""

    data: bytes
    span_count: int
    receipt: Receipt | None = field(default=None, compare=False, repr=False)

    def settle(self) -> None:
        """This exporter has taken the batch for good (persisted, delivered or finally dropped)."""
        if self.receipt is not None:
            self.receipt.settle()


class Batcher:
    """Merges kept traces per resource and scope; hands each finished request to `deliver`.

    Traces stay whole within one request unless a single trace is larger than
    `send_batch_max_bytes`, which is then cut at span boundaries.
    """

    def __init__(
        self,
        config: BatchConfig,
        deliver: Callable[[Payload], None],
        metrics: Metrics,
        clock: Clock = monotonic,
        release: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self._max_spans = config.send_batch_size
        self._max_bytes = config.send_batch_max_bytes
        self._timeout = config.timeout
        self._deliver = deliver
        self._clock = clock
        self._resources: dict[bytes, dict[bytes, bytearray]] = {}
        self._span_count = 0
        self._nbytes = 0
        self._opened_at: float | None = None
        # tail_sampling.storage: the log positions of the traces in the batch, and where to release them.
        self._release = release
        self._positions: list[Any] = []
        self._receipt: Receipt | None = None  # shared by the pieces of an oversized trace
        self._flushes = {
            trigger: metrics.batches_built.labels(trigger) for trigger in ("size", "bytes", "timeout", "flush")
        }

    def add(self, trace: TraceSpans) -> None:
        size = self._size_of(trace)
        if self._span_count and (
            self._nbytes + size > self._max_bytes or self._span_count + trace.span_count > self._max_spans
        ):
            self.flush("bytes" if self._nbytes + size > self._max_bytes else "size")
        if size > self._max_bytes:
            self._add_oversized(trace)
            return
        if trace.log_positions is not None and self._release is not None:
            add_positions(self._positions, trace.log_positions)
        self._merge(trace.groups.items(), trace.span_count, size)
        if self._span_count >= self._max_spans:
            self.flush("size")

    @staticmethod
    def _size_of(trace: TraceSpans) -> int:
        return sum(len(spans) + len(key[0]) + len(key[1]) + _FRAMING_ALLOWANCE for key, spans in trace.groups.items())

    def _merge(self, groups: Iterable[tuple[ScopeKey, bytes | bytearray]], span_count: int, size: int) -> None:
        if self._opened_at is None:
            self._opened_at = self._clock()
        resources = self._resources
        for (resource, scope), spans in groups:
            scopes = resources.get(resource)
            if scopes is None:
                resources[resource] = scopes = {}
            merged = scopes.get(scope)
            if merged is None:
                scopes[scope] = bytearray(spans)
            else:
                merged += spans
        self._span_count += span_count
        self._nbytes += size

    def _add_oversized(self, trace: TraceSpans) -> None:
        budget = self._max_bytes - _FRAMING_ALLOWANCE
        receipt = None
        if trace.log_positions is not None and self._release is not None:
            # Every piece carries one receipt, held open until the last piece is handed over.
            positions: list[int] = []
            add_positions(positions, trace.log_positions)
            receipt = self._receipt = Receipt(positions, self._release)
            receipt.expect()
        try:
            for key, spans in trace.groups.items():
                budget_for_spans = max(1, budget - len(key[0]) - len(key[1]))
                for chunk in split_framed(spans, budget_for_spans):
                    count = count_fields(chunk)
                    self._merge([(key, chunk)], count, len(chunk) + len(key[0]) + len(key[1]) + _FRAMING_ALLOWANCE)
                    self.flush("bytes")
        finally:
            self._receipt = None
            if receipt is not None:
                receipt.settle()

    def flush(self, trigger: str = "flush") -> None:
        if not self._span_count:
            return
        data = encode_request((resource, scopes.items()) for resource, scopes in self._resources.items())
        receipt = self._receipt
        if self._positions:
            assert self._release is not None
            receipt = Receipt(self._positions, self._release)
            self._positions = []
        payload = Payload(data, self._span_count, receipt)
        self._resources = {}
        self._span_count = 0
        self._nbytes = 0
        self._opened_at = None
        self._flushes[trigger].inc()
        self._deliver(payload)

    def flush_if_stale(self, now: float) -> None:
        if self._opened_at is not None and now - self._opened_at >= self._timeout:
            self.flush("timeout")

    async def run(self) -> None:
        """Flush batches that waited `timeout`; runs until cancelled."""
        interval = min(self._timeout, 0.05)
        while True:
            await asyncio.sleep(interval)
            self.flush_if_stale(self._clock())
