"""Exporter queue throughput, in memory and on disk, and how long the event loop stalls meanwhile.

Run:  python tests/bench/disk_queue_bench.py
      python tests/bench/disk_queue_bench.py --batches 2000 --batch-kib 64 --repeats 5 --modes memory

(`--modes memory` also runs against a checkout without the persistent queue, to compare
the in-memory path before and after.)

A real Exporter whose send() accepts at once (so the queue is what is measured) takes
`--batches` batches of `--batch-kib` KiB from the batcher's side (enqueue) and delivers
them with two consumers; the run ends when every batch is acknowledged. Modes: the
in-memory queue, and the persistent queue with fsync never / interval (1s) / always,
in a temporary directory on the disk holding the system temp dir.

Reported per mode, medians over the repeats:
  - batches/s and MiB/s from the first enqueue to the last acknowledgement;
  - the longest event-loop stall seen by a 1 ms ticker during the run (file I/O runs in
    worker threads, so this stays near the ticker's own resolution).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from sampler.config.exporters import QueueConfig, QueueStorageConfig
from sampler.forward.batcher import Payload
from sampler.forward.exporter import Exporter
from sampler.telemetry.metrics import Metrics

MODES = ("memory", "disk/never", "disk/interval", "disk/always")


class AcceptingExporter(Exporter):
    kind = "bench"

    def __init__(self, queue: QueueConfig, metrics: Metrics, expected: int) -> None:
        super().__init__("bench", metrics, queue, retry=None)
        self.expected = expected
        self.delivered = 0
        self.done = asyncio.Event()

    async def send(self, payload: Payload) -> int:
        self.delivered += 1
        if self.delivered >= self.expected:
            self.done.set()
        return 0


async def _ticker(stalls: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.001)
        stalls.append(loop.time() - before - 0.001)


async def run_once(mode: str, batches: int, batch_bytes: int, directory: Path) -> tuple[float, float]:
    if mode == "memory":
        queue = QueueConfig(num_consumers=2, queue_size=batches)
    else:
        storage = QueueStorageConfig(directory=str(directory), max_size_mib=4096, fsync=mode.split("/")[1])
        queue = QueueConfig(num_consumers=2, storage=storage)
    exporter = AcceptingExporter(queue, Metrics(), batches)
    await exporter.start()
    payloads = [Payload(bytes([index % 251]) * batch_bytes, 100) for index in range(batches)]
    stalls: list[float] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(stalls, stop))
    await asyncio.sleep(0.01)
    began = time.perf_counter()
    for index, payload in enumerate(payloads):
        exporter.enqueue(payload)
        if index % 50 == 49:
            await asyncio.sleep(0)  # the batcher hands over batches between other work
    await exporter.done.wait()
    elapsed = time.perf_counter() - began
    stop.set()
    await ticker
    await exporter.shutdown(time.monotonic() + 30)
    return batches / elapsed, max(stalls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--batch-kib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=MODES)
    args = parser.parse_args()
    batch_bytes = args.batch_kib * 1024
    print(f"{args.batches} batches of {args.batch_kib} KiB, 2 consumers, {args.repeats} repeats (medians)")
    for mode in args.modes:
        rates, stalls = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as scratch:
                rate, stall = asyncio.run(run_once(mode, args.batches, batch_bytes, Path(scratch)))
            rates.append(rate)
            stalls.append(stall)
        rate = statistics.median(rates)
        print(
            f"{mode:>14}: {rate:9.0f} batches/s  {rate * batch_bytes / 2**20:8.1f} MiB/s  "
            f"longest loop stall {statistics.median(stalls) * 1000:6.1f} ms"
        )


if __name__ == "__main__":
    main()
