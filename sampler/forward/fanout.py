"""Hands every batch of kept spans to every exporter.

Without backpressure a batch meeting a full exporter queue is dropped there
(counted as queue_full). With `block_on_overflow` it is held here instead and
moved into the queue as room appears; meanwhile the sampler stops deciding
(`has_room`) and the receivers stop accepting (`backed_up`), so what is held
stays bounded: at most the batches of the decisions under way when the queue
filled.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from sampler.clock import Clock, monotonic
from sampler.forward.batcher import Payload
from sampler.forward.exporter import Exporter

_DRAIN_INTERVAL = 0.05


class Fanout:
    def __init__(self, exporters: Sequence[Exporter], hold_when_full: bool, clock: Clock = monotonic) -> None:
        self._exporters = tuple(exporters)
        self._hold_when_full = hold_when_full
        self._clock = clock
        self._held: dict[Exporter, deque[Payload]] = {exporter: deque() for exporter in self._exporters}

    def deliver(self, payload: Payload) -> None:
        if payload.receipt is not None:
            if not self._exporters:
                payload.receipt.expect()
                payload.receipt.settle()
            payload.receipt.expect(len(self._exporters))
        for exporter in self._exporters:
            held = self._held[exporter]
            if self._hold_when_full and (held or exporter.queue_full()):
                held.append(payload)
            else:
                exporter.enqueue(payload)

    def release(self) -> None:
        """Move held batches, oldest first, into queues that have room again."""
        for exporter, held in self._held.items():
            while held and not exporter.queue_full():
                exporter.enqueue(held.popleft())

    def has_room(self) -> bool:
        self.release()
        return not any(self._held.values()) and not any(exporter.queue_full() for exporter in self._exporters)

    def backed_up(self) -> bool:
        self.release()
        return any(self._held.values())

    async def drain(self, deadline: float) -> None:
        """Shutdown: wait for room for the held batches until `deadline` (on the clock); whatever
        is still held then goes to its exporter, which counts it as dropped for a full queue."""
        while self.backed_up() and self._clock() < deadline:
            await asyncio.sleep(_DRAIN_INTERVAL)
        for exporter, held in self._held.items():
            while held:
                exporter.enqueue(held.popleft())
