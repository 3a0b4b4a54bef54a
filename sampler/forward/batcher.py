"""Gathers kept traces into export requests sized in spans and in bytes, and their log records
into log export requests (OTLP frames both alike: see spans/framing.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from sampler.clock import Clock, monotonic
from sampler.config.exporters import BatchConfig
from sampler.spans.framing import count_fields, encode_request, split_framed
from sampler.spans.trace import ScopeKey, TraceSpans
from sampler.telemetry.metrics import Metrics

# Framing around the spans (request, resource and scope fields) is small but not free.
_FRAMING_ALLOWANCE = 64


Signal = Literal["traces", "logs"]


@dataclass(frozen=True)
class Payload:
    """One serialized export request: an ExportTraceServiceRequest and the number of spans in it,
    or (signal "logs") an ExportLogsServiceRequest and the number of log records in it."""

    data: bytes
    span_count: int
    signal: Signal = "traces"


class _Pending:
    """The kept spans (or log records) gathered for the next request, per resource and scope."""

    __slots__ = ("signal", "resources", "count", "nbytes", "opened_at")

    def __init__(self, signal: Signal) -> None:
        self.signal: Signal = signal
        self.resources: dict[bytes, dict[bytes, bytearray]] = {}
        self.count = 0
        self.nbytes = 0
        self.opened_at: float | None = None

    def merge(self, groups: Iterable[tuple[ScopeKey, bytes | bytearray]], count: int, size: int, now: float) -> None:
        if self.opened_at is None:
            self.opened_at = now
        resources = self.resources
        for (resource, scope), framed in groups:
            scopes = resources.get(resource)
            if scopes is None:
                resources[resource] = scopes = {}
            merged = scopes.get(scope)
            if merged is None:
                scopes[scope] = bytearray(framed)
            else:
                merged += framed
        self.count += count
        self.nbytes += size

    def take(self) -> Payload:
        data = encode_request((resource, scopes.items()) for resource, scopes in self.resources.items())
        payload = Payload(data, self.count, self.signal)
        self.resources = {}
        self.count = 0
        self.nbytes = 0
        self.opened_at = None
        return payload


class Batcher:
    """Merges kept traces per resource and scope; hands each finished request to `deliver`.
    Their log records go into log requests of their own, bounded the same way.

    Traces stay whole within one request unless a single trace is larger than
    `send_batch_max_bytes`, which is then cut at span boundaries.
    """

    def __init__(
        self, config: BatchConfig, deliver: Callable[[Payload], None], metrics: Metrics, clock: Clock = monotonic
    ) -> None:
        self._max_spans = config.send_batch_size
        self._max_bytes = config.send_batch_max_bytes
        self._timeout = config.timeout
        self._deliver = deliver
        self._clock = clock
        self._spans = _Pending("traces")
        self._logs = _Pending("logs")
        self._flushes = {
            trigger: metrics.batches_built.labels(trigger) for trigger in ("size", "bytes", "timeout", "flush")
        }

    def add(self, trace: TraceSpans) -> None:
        if trace.span_count:
            self._add(self._spans, trace.groups, trace.span_count)
        if trace.logs:
            self._add(self._logs, trace.logs, trace.log_count)

    def add_logs(self, groups: dict[ScopeKey, bytearray], count: int) -> None:
        """Log records that name no trace, forwarded as they come."""
        self._add(self._logs, groups, count)

    def _add(self, pending: _Pending, groups: dict[ScopeKey, bytearray], count: int) -> None:
        size = self._size_of(groups)
        if pending.count and (pending.nbytes + size > self._max_bytes or pending.count + count > self._max_spans):
            self._flush(pending, "bytes" if pending.nbytes + size > self._max_bytes else "size")
        if size > self._max_bytes:
            self._add_oversized(pending, groups)
            return
        pending.merge(groups.items(), count, size, self._clock())
        if pending.count >= self._max_spans:
            self._flush(pending, "size")

    @staticmethod
    def _size_of(groups: dict[ScopeKey, bytearray]) -> int:
        return sum(len(framed) + len(key[0]) + len(key[1]) + _FRAMING_ALLOWANCE for key, framed in groups.items())

    def _add_oversized(self, pending: _Pending, groups: dict[ScopeKey, bytearray]) -> None:
        budget = self._max_bytes - _FRAMING_ALLOWANCE
        for key, framed in groups.items():
            budget_for_items = max(1, budget - len(key[0]) - len(key[1]))
            for chunk in split_framed(framed, budget_for_items):
                size = len(chunk) + len(key[0]) + len(key[1]) + _FRAMING_ALLOWANCE
                pending.merge([(key, chunk)], count_fields(chunk), size, self._clock())
                self._flush(pending, "bytes")

    def _flush(self, pending: _Pending, trigger: str) -> None:
        if not pending.count:
            return
        self._flushes[trigger].inc()
        self._deliver(pending.take())

    def flush(self, trigger: str = "flush") -> None:
        self._flush(self._spans, trigger)
        self._flush(self._logs, trigger)

    def flush_if_stale(self, now: float) -> None:
        for pending in (self._spans, self._logs):
            if pending.opened_at is not None and now - pending.opened_at >= self._timeout:
                self._flush(pending, "timeout")

    async def run(self) -> None:
        """Flush batches that waited `timeout`; runs until cancelled."""
        interval = min(self._timeout, 0.05)
        while True:
            await asyncio.sleep(interval)
            self.flush_if_stale(self._clock())
