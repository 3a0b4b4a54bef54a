"""What kept batches owe the durable window: their traces' log positions go with them from the
batcher through the fanout, and are released once every exporter has taken the batch for good
(delivered, persisted or finally dropped), never when shutdown cut it off."""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from sampler.config.exporters import BatchConfig, QueueConfig, QueueStorageConfig
from sampler.forward.batcher import Batcher, Payload
from sampler.forward.exporter import Exporter, RetryableError
from sampler.forward.fanout import Fanout
from sampler.receive.split_logs import LogSplitter
from sampler.telemetry.metrics import Metrics
from tests.support import make_span, make_trace
from tests.unit.helpers import FakeClock, trace_of


class Recording(Exporter):
    kind = "recording"

    def __init__(self, name: str, metrics: Metrics, fail: bool = False, **queue: Any) -> None:
        super().__init__(name, metrics, QueueConfig(**queue), None)
        self.sent: list[Payload] = []
        self.fail = fail

    async def send(self, payload: Payload) -> int:
        if self.fail:
            raise RetryableError("unavailable", "the backend is down")
        self.sent.append(payload)
        return 0


class Released:
    def __init__(self) -> None:
        self.positions: list[Any] = []

    def __call__(self, positions: list[Any]) -> None:
        self.positions += positions


def kept_trace(position: int, spans: int = 2) -> Any:
    trace = trace_of(make_trace(spans=spans)[1])
    trace.log_positions = (position,)
    return trace


async def test_positions_are_released_once_every_exporter_delivered_the_batch():
    metrics = Metrics()
    released = Released()
    fast, slow = Recording("fast", metrics), Recording("slow", metrics)
    fanout = Fanout([fast, slow], hold_when_full=False)
    batcher = Batcher(BatchConfig(), fanout.deliver, metrics, FakeClock(), release=released)
    await fast.start()
    batcher.add(kept_trace(8))
    batcher.add(kept_trace(90))
    batcher.flush()
    await asyncio.wait_for(fast._queue.join(), 5)
    assert released.positions == []  # the slow one has not started
    await slow.start()
    await asyncio.wait_for(slow._queue.join(), 5)
    assert released.positions == [8, 90]
    await fast.shutdown(0)
    await slow.shutdown(0)


async def test_a_batch_dropped_for_a_full_queue_is_released_but_not_one_cut_off_by_shutdown():
    metrics = Metrics()
    released = Released()
    exporter = Recording("down", metrics, fail=True, queue_size=1)
    fanout = Fanout([exporter], hold_when_full=False)
    batcher = Batcher(BatchConfig(), fanout.deliver, metrics, FakeClock(), release=released)
    exporter._retry = None  # not started: the first batch waits in the queue
    batcher.add(kept_trace(8))
    batcher.flush()
    batcher.add(kept_trace(90))
    batcher.flush()  # queue full: dropped and counted, so settled
    assert released.positions == [90]
    await exporter.shutdown(0)  # the queued one is cut off: it stays in the log for the next start
    assert released.positions == [90]


async def test_a_persistent_queue_releases_a_batch_once_it_is_on_disk(tmp_path):
    metrics = Metrics()
    released = Released()
    storage = QueueStorageConfig(directory=str(tmp_path))
    exporter = Recording("down", metrics, fail=True, storage=storage)
    fanout = Fanout([exporter], hold_when_full=False)
    batcher = Batcher(BatchConfig(), fanout.deliver, metrics, FakeClock(), release=released)
    assert exporter._disk is not None
    await exporter._disk.open()  # the queue only: no consumer, the backend being down anyway
    batcher.add(kept_trace(8))
    batcher.flush()
    await exporter._disk.flush()
    assert released.positions == [8]
    await exporter._disk.close()


async def test_a_trace_with_spans_and_log_records_is_released_once_both_requests_are_taken():
    released = Released()
    delivered: list[Payload] = []

    def deliver(payload: Payload) -> None:
        assert payload.receipt is not None
        payload.receipt.expect()
        delivered.append(payload)

    batcher = Batcher(BatchConfig(), deliver, Metrics(), FakeClock(), release=released)
    trace_id, spans = make_trace(spans=2)
    trace = trace_of(spans)
    request = ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.add(trace_id=trace_id).body.string_value = "hello"
    trace.absorb(LogSplitter().split(request).traces[trace_id])
    trace.log_positions = 77
    batcher.add(trace)
    batcher.flush()
    assert sorted(payload.signal for payload in delivered) == ["logs", "traces"]
    delivered[0].settle()
    assert released.positions == []
    delivered[1].settle()
    assert released.positions == [77]


async def test_the_pieces_of_an_oversized_trace_release_its_positions_after_the_last_one():
    metrics = Metrics()
    released = Released()
    delivered: list[Payload] = []

    def deliver(payload: Payload) -> None:  # as the fanout does, for one exporter
        assert payload.receipt is not None
        payload.receipt.expect()
        delivered.append(payload)

    batcher = Batcher(BatchConfig(send_batch_max_bytes=2000), deliver, metrics, FakeClock(), release=released)
    trace_id, spans = make_trace(spans=2)
    trace = trace_of(spans + [make_span(trace_id, attributes={"blob": "x" * 600}) for _ in range(8)])
    trace.log_positions = (40,)
    batcher.add(trace)
    assert len(delivered) > 2
    assert all(payload.receipt is not None for payload in delivered)
    for payload in delivered[:-1]:
        payload.settle()
        assert released.positions == []
    delivered[-1].settle()
    assert released.positions == [40]
