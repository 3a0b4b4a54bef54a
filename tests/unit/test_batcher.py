"""Batcher: kept traces become export requests bounded in spans and bytes, traces kept whole."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span

from sampler.config.exporters import BatchConfig
from sampler.forward.batcher import Batcher, Payload
from sampler.spans.trace import TraceSpans
from sampler.telemetry.metrics import Metrics
from tests.support import make_span
from tests.unit.helpers import FakeClock, trace_of


class Sink:
    """Collects delivered payloads, with a Batcher bound to it."""

    def __init__(self, clock: FakeClock | None = None, **batch: Any) -> None:
        self.payloads: list[Payload] = []
        self.metrics = Metrics()
        self.config = BatchConfig.model_validate(batch)
        self.clock = clock or FakeClock()
        self.batcher = Batcher(self.config, self.payloads.append, self.metrics, self.clock)

    def requests(self) -> list[ExportTraceServiceRequest]:
        return [ExportTraceServiceRequest.FromString(payload.data) for payload in self.payloads]

    def flushes(self, trigger: str) -> float:
        value = self.metrics.registry.get_sample_value("tail_sampler_forward_batches_total", {"trigger": trigger})
        return 0.0 if value is None else value


def _spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def _trace(spans: int, attribute_size: int = 0, service: str = "svc") -> TraceSpans:
    trace_id = os.urandom(16)
    attributes = {"blob": "x" * attribute_size} if attribute_size else None
    return trace_of([make_span(trace_id, name=f"s{i}", attributes=attributes) for i in range(spans)], service=service)


def _check_payloads(sink: Sink) -> list[ExportTraceServiceRequest]:
    """Every payload parses and holds the span count it claims."""
    requests = sink.requests()
    for payload, request in zip(sink.payloads, requests, strict=True):
        assert payload.span_count == len(_spans_of(request))
        assert payload.span_count > 0
    return requests


def _payloads_per_trace(requests: list[ExportTraceServiceRequest]) -> dict[bytes, set[int]]:
    where: dict[bytes, set[int]] = {}
    for index, request in enumerate(requests):
        for span in _spans_of(request):
            where.setdefault(span.trace_id, set()).add(index)
    return where


async def test_flush_by_span_count() -> None:
    sink = Sink(send_batch_size=10)
    traces = [_trace(3), _trace(3), _trace(3)]
    for trace in traces:
        sink.batcher.add(trace)
    assert sink.payloads == []
    sink.batcher.add(_trace(2))  # 9 + 2 > 10: the pending 9 leave first
    assert [p.span_count for p in sink.payloads] == [9]
    sink.batcher.add(_trace(8))  # 2 + 8 reaches 10: sent at once
    assert [p.span_count for p in sink.payloads] == [9, 10]
    requests = _check_payloads(sink)
    assert {span.trace_id for span in _spans_of(requests[0])} == {t.trace_id for t in traces}
    assert sink.flushes("size") == 2
    sink.batcher.flush()
    assert len(sink.payloads) == 2  # nothing pending


async def test_a_trace_larger_than_send_batch_size_stays_whole() -> None:
    sink = Sink(send_batch_size=5)
    sink.batcher.add(_trace(2))
    sink.batcher.add(_trace(12))
    assert [p.span_count for p in sink.payloads] == [2, 12]
    _check_payloads(sink)


async def test_traces_are_merged_per_resource_and_scope() -> None:
    sink = Sink()
    sink.batcher.add(_trace(2, service="a"))
    sink.batcher.add(_trace(3, service="a"))
    sink.batcher.add(_trace(1, service="b"))
    sink.batcher.flush()
    (request,) = _check_payloads(sink)
    assert len(request.resource_spans) == 2
    by_service = {rs.resource.attributes[0].value.string_value: rs for rs in request.resource_spans}
    assert [len(ss.spans) for ss in by_service["a"].scope_spans] == [5]
    assert [len(ss.spans) for ss in by_service["b"].scope_spans] == [1]
    assert sink.flushes("flush") == 1


async def test_flush_by_bytes_keeps_traces_whole() -> None:
    limit = 4096
    sink = Sink(send_batch_max_bytes=limit)
    traces = [_trace(spans, attribute_size=size) for spans, size in [(2, 300), (5, 100), (1, 1500), (3, 700)] * 4]
    for trace in traces:
        sink.batcher.add(trace)
    sink.batcher.flush()
    requests = _check_payloads(sink)
    assert len(requests) > 3
    assert all(len(payload.data) <= limit for payload in sink.payloads)
    assert all(len(indexes) == 1 for indexes in _payloads_per_trace(requests).values()), "a trace was cut"
    assert sum(p.span_count for p in sink.payloads) == sum(t.span_count for t in traces)
    assert sink.flushes("bytes") == len(requests) - 1


async def test_an_oversized_trace_is_split_at_span_boundaries() -> None:
    limit = 2048
    sink = Sink(send_batch_max_bytes=limit)
    small = _trace(2)
    sink.batcher.add(small)
    big = _trace(40, attribute_size=250)
    assert big.nbytes > 4 * limit
    sink.batcher.add(big)
    requests = _check_payloads(sink)
    assert [span.trace_id for span in _spans_of(requests[0])] == [small.trace_id] * 2  # flushed first
    assert all(len(payload.data) <= limit for payload in sink.payloads)
    big_spans = [span for request in requests[1:] for span in _spans_of(request)]
    assert [span.name for span in big_spans] == [f"s{i}" for i in range(40)]  # none lost, none repeated, in order
    assert len(requests) > 5
    sink.batcher.flush()
    assert len(sink.payloads) == len(requests)  # the oversized trace left nothing pending


async def test_a_span_larger_than_the_limit_travels_alone() -> None:
    limit = 2048
    sink = Sink(send_batch_max_bytes=limit)
    trace_id = os.urandom(16)
    spans = [
        make_span(trace_id, name="a", attributes={"x": "a" * 600}),
        make_span(trace_id, name="huge", attributes={"x": "h" * 5000}),
        make_span(trace_id, name="b", attributes={"x": "b" * 600}),
    ]
    sink.batcher.add(trace_of(spans))
    requests = _check_payloads(sink)
    assert [[span.name for span in _spans_of(request)] for request in requests] == [["a"], ["huge"], ["b"]]
    assert len(sink.payloads[1].data) > limit


async def test_flush_if_stale() -> None:
    sink = Sink(timeout="200ms")
    clock = sink.clock
    sink.batcher.flush_if_stale(clock() + 10)
    assert sink.payloads == []  # nothing pending, nothing to send
    before = clock()
    sink.batcher.add(_trace(2))
    sink.batcher.add(_trace(1))
    sink.batcher.flush_if_stale(before + 0.1)
    assert sink.payloads == []
    sink.batcher.flush_if_stale(clock() + 0.2)
    assert [p.span_count for p in sink.payloads] == [3]
    assert sink.flushes("timeout") == 1
    sink.batcher.flush_if_stale(clock() + 10)
    assert len(sink.payloads) == 1


async def test_the_timeout_counts_from_the_first_trace_of_a_batch() -> None:
    sink = Sink(timeout="1s", send_batch_size=2)
    clock = sink.clock
    sink.batcher.add(_trace(2))  # sent at once by size
    clock.advance(0.3)
    start = clock()
    sink.batcher.add(_trace(1))
    sink.batcher.flush_if_stale(start + 0.5)
    assert len(sink.payloads) == 1
    sink.batcher.flush_if_stale(clock() + 1.0)
    assert [p.span_count for p in sink.payloads] == [2, 1]


async def test_the_timer_flushes_by_the_injected_clock() -> None:
    sink = Sink(timeout="1h")
    sink.batcher.add(_trace(2))
    timer = asyncio.create_task(sink.batcher.run())
    try:
        sink.clock.advance(3600)  # an hour passes on the batcher's clock, none on the event loop's
        await asyncio.wait_for(_until(lambda: bool(sink.payloads)), timeout=10)
    finally:
        timer.cancel()
    assert [p.span_count for p in sink.payloads] == [2]
    assert sink.flushes("timeout") == 1


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


async def test_flush_with_nothing_pending_sends_nothing() -> None:
    sink = Sink()
    sink.batcher.flush()
    assert sink.payloads == []
    assert sink.flushes("flush") == 0


@settings(max_examples=60, deadline=None)
@given(
    shapes=st.lists(
        st.tuples(st.integers(1, 12), st.integers(0, 900), st.sampled_from(["a", "b"])), min_size=1, max_size=15
    ),
    max_spans=st.integers(1, 30),
    max_bytes=st.integers(1100, 6000),
)
def test_batching_invariants(shapes: list[tuple[int, int, str]], max_spans: int, max_bytes: int) -> None:
    traces = [_trace(spans, size, service) for spans, size, service in shapes]

    async def run() -> Sink:
        sink = Sink(send_batch_size=max_spans, send_batch_max_bytes=max_bytes)
        for trace in traces:
            sink.batcher.add(trace)
        sink.batcher.flush()
        return sink

    sink = asyncio.run(run())
    requests = _check_payloads(sink)
    sent = Counter(span.SerializeToString() for request in requests for span in _spans_of(request))
    expected = Counter(
        span.SerializeToString()
        for trace in traces
        for (_, scope), framed in trace.groups.items()
        for span in _parse_spans(scope, framed)
    )
    assert sent == expected  # every span exactly once
    where = _payloads_per_trace(requests)
    for trace, request_indexes in ((t, where[t.trace_id]) for t in traces):
        fits = sum(len(framed) for framed in trace.groups.values()) + 64 * len(trace.groups) + 200 <= max_bytes
        if fits:
            assert len(request_indexes) == 1, "a trace that fits was cut"
    for payload, request in zip(sink.payloads, requests, strict=True):
        spans = _spans_of(request)
        assert len(payload.data) <= max_bytes or len(spans) == 1, "only a lone oversized span may exceed the limit"
        single_trace = len({span.trace_id for span in spans}) == 1
        assert payload.span_count <= max_spans or single_trace, "only a single larger trace may exceed send_batch_size"


def _parse_spans(scope: bytes, framed: bytearray) -> list[Span]:
    return list(ScopeSpans.FromString(scope + bytes(framed)).spans)
