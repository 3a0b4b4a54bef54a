"""Gathers kept traces into export requests sized in spans and in bytes, and their log records
into log export requests (OTLP frames both alike: see spans/framing.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sampler.clock import Clock, monotonic
from sampler.config.exporters import BatchConfig
from sampler.forward.receipt import Receipt
from sampler.spans.framing import count_fields, encode_request, split_framed
from sampler.spans.trace import LogPositions, ScopeKey, TraceSpans, add_positions
from sampler.telemetry.metrics import Metrics

# Framing around the spans (request, resource and scope fields) is small but not free.
_FRAMING_ALLOWANCE = 64


Signal = Literal["traces", "logs"]


@dataclass(frozen=True)
class Payload:
    """One serialized export request: an ExportTraceServiceRequest and the number of spans in it,
    or (signal "logs") an ExportLogsServiceRequest and the number of log records in it; with
    tail_sampling.storage, the receipt its exporters settle (receipt.py)."""

    data: bytes
    span_count: int
    signal: Signal = "traces"
    receipt: Receipt | None = field(default=None, compare=False, repr=False)

    def settle(self) -> None:
        """This exporter has taken the request for good (persisted, delivered or finally dropped)."""
        if self.receipt is not None:
            self.receipt.settle()


class _Pending:
    """The kept spans (or log records) gathered for the next request, per resource and scope."""

    __slots__ = ("signal", "resources", "count", "nbytes", "opened_at", "positions", "owed", "release")

    def __init__(self, signal: Signal, release: Callable[[list[Any]], None] | None) -> None:
        self.signal: Signal = signal
        self.resources: dict[bytes, dict[bytes, bytearray]] = {}
        self.count = 0
        self.nbytes = 0
        self.opened_at: float | None = None
        # tail_sampling.storage: the log positions of what is gathered, and the receipts of
        # traces whose other parts leave in other requests (receipt.py).
        self.positions: list[Any] = []
        self.owed: list[Receipt] = []
        self.release = release

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
        receipt = None
        if (self.positions or self.owed) and self.release is not None:
            receipt = Receipt(self.positions, self.release, self.owed)
            self.positions = []
            self.owed = []
        payload = Payload(data, self.count, self.signal, receipt)
        self.resources = {}
        self.count = 0
        self.nbytes = 0
        self.opened_at = None
        return payload


def _listed(held: LogPositions) -> list[Any]:
    positions: list[Any] = []
    add_positions(positions, held)
    return positions


class Batcher:
    """Merges kept traces per resource and scope; hands each finished request to `deliver`.
    Their log records go into log requests of their own, bounded the same way.

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
        # tail_sampling.storage: where the log positions of handed-on traces are released.
        self._release = release
        self._spans = _Pending("traces", release)
        self._logs = _Pending("logs", release)
        self._flushes = {
            trigger: metrics.batches_built.labels(trigger) for trigger in ("size", "bytes", "timeout", "flush")
        }

    def add(self, trace: TraceSpans) -> None:
        release = self._release
        held = trace.log_positions if release is not None else None
        if held is not None and release is not None and trace.span_count and trace.logs:
            # Its spans and its log records leave in different requests: released once both are taken.
            both = Receipt(_listed(held), release)
            both.expect(2)
            self._add(self._spans, trace.groups, trace.span_count, owed=both)
            self._add(self._logs, trace.logs, trace.log_count, owed=both)
            return
        if trace.span_count:
            self._add(self._spans, trace.groups, trace.span_count, held)
            held = None  # the positions went with the spans (no log records, or no storage)
        if trace.logs:
            self._add(self._logs, trace.logs, trace.log_count, held)
            held = None
        if held is not None and release is not None:
            release(_listed(held))  # nothing to forward: done with at once

    def add_logs(self, groups: dict[ScopeKey, bytearray], count: int) -> None:
        """Log records that name no trace, forwarded as they come."""
        self._add(self._logs, groups, count)

    def _add(
        self,
        pending: _Pending,
        groups: dict[ScopeKey, bytearray],
        count: int,
        held: LogPositions | None = None,
        owed: Receipt | None = None,
    ) -> None:
        size = self._size_of(groups)
        if pending.count and (pending.nbytes + size > self._max_bytes or pending.count + count > self._max_spans):
            self._flush(pending, "bytes" if pending.nbytes + size > self._max_bytes else "size")
        if size > self._max_bytes:
            self._add_oversized(pending, groups, held, owed)
            return
        pending.merge(groups.items(), count, size, self._clock())
        if held is not None:
            add_positions(pending.positions, held)
        if owed is not None:
            pending.owed.append(owed)
        if pending.count >= self._max_spans:
            self._flush(pending, "size")

    @staticmethod
    def _size_of(groups: dict[ScopeKey, bytearray]) -> int:
        return sum(len(framed) + len(key[0]) + len(key[1]) + _FRAMING_ALLOWANCE for key, framed in groups.items())

    def _add_oversized(
        self,
        pending: _Pending,
        groups: dict[ScopeKey, bytearray],
        held: LogPositions | None = None,
        owed: Receipt | None = None,
    ) -> None:
        budget = self._max_bytes - _FRAMING_ALLOWANCE
        pieces = None
        if (held is not None or owed is not None) and self._release is not None:
            # One receipt for all the pieces, held open until the last piece is handed over.
            pieces = Receipt(_listed(held) if held is not None else [], self._release, [owed] if owed else [])
            pieces.expect()
        for key, framed in groups.items():
            budget_for_items = max(1, budget - len(key[0]) - len(key[1]))
            for chunk in split_framed(framed, budget_for_items):
                size = len(chunk) + len(key[0]) + len(key[1]) + _FRAMING_ALLOWANCE
                pending.merge([(key, chunk)], count_fields(chunk), size, self._clock())
                if pieces is not None:
                    pieces.expect()
                    pending.owed.append(pieces)
                self._flush(pending, "bytes")
        if pieces is not None:
            pieces.settle()

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
