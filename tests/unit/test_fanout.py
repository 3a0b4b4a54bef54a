"""Fanout: batches go to every exporter; with block_on_overflow a full queue holds them instead of dropping."""

from __future__ import annotations

import time

from sampler.config.exporters import QueueConfig
from sampler.forward.batcher import Payload
from sampler.forward.exporter import Exporter
from sampler.forward.fanout import Fanout
from sampler.telemetry.metrics import Metrics


class Parked(Exporter):
    """An exporter that is never started, so its queue only empties when the test takes from it."""

    kind = "parked"

    async def send(self, payload: Payload) -> int:
        raise AssertionError("not started")

    def take(self) -> Payload:
        payload = self._queue.get_nowait()
        self._queue.task_done()
        return payload


def _exporter(metrics: Metrics, name: str, queue_size: int) -> Parked:
    return Parked(name, metrics, QueueConfig(queue_size=queue_size), None)


def _dropped(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(
        "tail_sampler_exporter_dropped_spans_total", {"exporter": name, "reason": "queue_full"}
    )
    return value or 0.0


def test_queue_full_says_whether_another_batch_fits() -> None:
    exporter = _exporter(Metrics(), "a", queue_size=2)
    assert not exporter.queue_full()
    exporter.enqueue(Payload(b"1", 1))
    assert not exporter.queue_full()
    exporter.enqueue(Payload(b"2", 1))
    assert exporter.queue_full()
    exporter.take()
    assert not exporter.queue_full()


def test_without_holding_a_full_queue_drops_and_counts() -> None:
    metrics = Metrics()
    exporter = _exporter(metrics, "a", queue_size=1)
    fanout = Fanout([exporter], hold_when_full=False)
    fanout.deliver(Payload(b"1", 3))
    fanout.deliver(Payload(b"2", 5))
    assert _dropped(metrics, "a") == 5
    assert not fanout.backed_up()


def test_holding_keeps_batches_for_the_full_exporter_only_and_releases_them_in_order() -> None:
    metrics = Metrics()
    slow, fast = _exporter(metrics, "slow", queue_size=1), _exporter(metrics, "fast", queue_size=10)
    fanout = Fanout([slow, fast], hold_when_full=True)
    assert fanout.has_room()
    batches = [Payload(bytes([index]), 1) for index in range(3)]
    for payload in batches:
        fanout.deliver(payload)
    assert [fast.take() for _ in range(3)] == batches
    assert not fanout.has_room() and fanout.backed_up()
    assert _dropped(metrics, "slow") == 0
    assert slow.take() == batches[0]
    assert fanout.backed_up()  # batches[1] moved in; batches[2] still waits
    assert slow.take() == batches[1]
    assert not fanout.backed_up()
    assert not fanout.has_room()  # batches[2] fills the queue
    assert slow.take() == batches[2]
    assert fanout.has_room()
    assert _dropped(metrics, "slow") == 0


async def test_drain_gives_up_at_the_deadline_and_counts_what_is_left() -> None:
    metrics = Metrics()
    exporter = _exporter(metrics, "a", queue_size=1)
    fanout = Fanout([exporter], hold_when_full=True)
    for index in range(3):
        fanout.deliver(Payload(bytes([index]), 2))
    started = time.monotonic()
    await fanout.drain(started + 0.2)
    assert time.monotonic() - started >= 0.2
    assert _dropped(metrics, "a") == 4
    assert not fanout.backed_up()
